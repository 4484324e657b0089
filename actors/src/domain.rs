//! Domain types, validated when parsed.
//!
//! Handlers and actors see `Username`, `Email`, `Password`, never a raw
//! `String`: once a value of these types exists it is known to satisfy the
//! API's rules (`docs/api.md`, "Field rules").

/// Why a value was refused: a short machine code plus a human sentence.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Invalid {
    /// snake_case code, e.g. `too_short`.
    pub code: &'static str,
    /// Human sentence for the client.
    pub message: String,
}

impl Invalid {
    fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

mod account;
mod ids;
mod kinds;
#[cfg(test)]
mod tests;
mod text;

pub use account::{Email, Password, Username};
pub use ids::{AuditId, ConnectionId, InviteId, MessageId, ReportId, RoomId, SessionId, UserId};
pub use kinds::{
    InviteStatus, PresenceStatus, ReportReason, Role, RoomRole, UserStatus, Visibility,
};
pub use text::{
    Bio, DisplayName, Emoji, MessageBody, ReportDetails, RoomName, RoomTopic, nul_field, refuse_nul,
};
