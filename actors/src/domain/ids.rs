//! Identifiers: UUID newtypes for users, sessions, rooms, messages and the rest.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! uuid_id {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            /// A fresh, time-sortable id (UUIDv7).
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }
            /// The underlying UUID.
            pub fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl From<Uuid> for $name {
            fn from(id: Uuid) -> Self {
                Self(id)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }
    };
}

uuid_id!(
    /// A user's id.
    UserId
);
uuid_id!(
    /// A login session's id (the `sid` claim).
    SessionId
);
uuid_id!(
    /// An audit log entry's id.
    AuditId
);
uuid_id!(
    /// A room's id.
    RoomId
);
uuid_id!(
    /// A message's id.
    MessageId
);
uuid_id!(
    /// A report's id.
    ReportId
);
uuid_id!(
    /// An invite's id.
    InviteId
);
uuid_id!(
    /// A WebSocket connection's id (never stored).
    ConnectionId
);
