//! What a realtime or chat operation can refuse with. The HTTP layer maps
//! these to statuses, the WebSocket layer to `error` frames.

use crate::domain::Invalid;
use crate::store::StoreError;

/// A refused or failed chat operation.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ChatError {
    /// 404 / `not_found`: no such room or message, or not one the caller may see.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// 403 / `forbidden`: the caller may not do this.
    #[error("{0}")]
    Forbidden(&'static str),
    /// 403 / `not_member`: the caller is not in the room.
    #[error("you are not a member of this room")]
    NotMember,
    /// 409 / `conflict`: already so (e.g. a pending invite exists).
    #[error("{0}")]
    Conflict(&'static str),
    /// 422 / `validation_failed`: a field is invalid.
    #[error("{field}: {message}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// Machine code.
        code: &'static str,
        /// Human sentence.
        message: String,
    },
    /// 503 / `unavailable`: storage or an actor is not answering.
    #[error("temporarily unavailable: {0}")]
    Unavailable(String),
}

impl ChatError {
    /// A validation error for `field`.
    pub fn invalid(field: &'static str, e: Invalid) -> Self {
        Self::Invalid {
            field,
            code: e.code,
            message: e.message,
        }
    }

    /// The snake_case code for error frames and envelopes.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NotFound(_) => "not_found",
            Self::Forbidden(_) => "forbidden",
            Self::NotMember => "not_member",
            Self::Conflict(_) => "conflict",
            Self::Invalid { .. } => "validation_failed",
            Self::Unavailable(_) => "unavailable",
        }
    }
}

impl From<StoreError> for ChatError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict { .. } => Self::Conflict("already exists"),
            other => {
                tracing::error!(error = %other, "storage failed");
                Self::Unavailable("storage".to_owned())
            }
        }
    }
}

impl<T> From<ractor::MessagingErr<T>> for ChatError {
    fn from(e: ractor::MessagingErr<T>) -> Self {
        tracing::warn!(error = %e, "actor call failed");
        Self::Unavailable("actor".to_owned())
    }
}
