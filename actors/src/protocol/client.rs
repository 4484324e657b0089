//! Frames from the client: `ClientFrame` and the `type` values it may carry.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::domain::{MessageId, PresenceStatus, RoomId};

/// A frame from a client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", deny_unknown_fields)]
pub enum ClientFrame {
    /// Authenticate a socket opened without an `Authorization` header.
    #[serde(rename = "auth")]
    Auth {
        /// An access token.
        token: String,
    },
    /// Liveness check; answered with `pong`.
    #[serde(rename = "ping")]
    Ping {
        /// The client's `ref`, echoed in the answer.
        #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
    },
    /// Post a message; acked with the stored message.
    #[serde(rename = "message.send")]
    MessageSend {
        /// The room.
        room_id: RoomId,
        /// The message text.
        body: String,
        /// The message this one replies to.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reply_to: Option<MessageId>,
        /// The client's idempotency key for a send.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client_id: Option<String>,
        /// The client's `ref`, echoed in the answer.
        #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
    },
    /// Edit one of my messages.
    #[serde(rename = "message.edit")]
    MessageEdit {
        /// The room.
        room_id: RoomId,
        /// The message.
        message_id: MessageId,
        /// The message text.
        body: String,
        /// The client's `ref`, echoed in the answer.
        #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
    },
    /// Delete a message (mine, or any as room admin).
    #[serde(rename = "message.delete")]
    MessageDelete {
        /// The room.
        room_id: RoomId,
        /// The message.
        message_id: MessageId,
        /// The client's `ref`, echoed in the answer.
        #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
    },
    /// React to a message.
    #[serde(rename = "reaction.add")]
    ReactionAdd {
        /// The room.
        room_id: RoomId,
        /// The message.
        message_id: MessageId,
        /// The emoji.
        emoji: String,
        /// The client's `ref`, echoed in the answer.
        #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
    },
    /// Take a reaction back.
    #[serde(rename = "reaction.remove")]
    ReactionRemove {
        /// The room.
        room_id: RoomId,
        /// The message.
        message_id: MessageId,
        /// The emoji.
        emoji: String,
        /// The client's `ref`, echoed in the answer.
        #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
    },
    /// I am typing in a room.
    #[serde(rename = "typing")]
    Typing {
        /// The room.
        room_id: RoomId,
        /// The client's `ref`, echoed in the answer.
        #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
    },
    /// Move my read marker.
    #[serde(rename = "read")]
    Read {
        /// The room.
        room_id: RoomId,
        /// The read marker to set (it never moves backwards).
        seq: i64,
        /// The client's `ref`, echoed in the answer.
        #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
    },
    /// Set my presence.
    #[serde(rename = "presence.set")]
    PresenceSet {
        /// The chosen status.
        status: PresenceStatus,
        /// The client's `ref`, echoed in the answer.
        #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
    },
    /// Replay what I missed: room → the last seq I have.
    #[serde(rename = "resume")]
    Resume {
        /// Each room to resume, with the last seq the client has.
        rooms: BTreeMap<RoomId, i64>,
        /// The client's `ref`, echoed in the answer.
        #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
    },
}

impl ClientFrame {
    /// The client's `ref`, if any.
    pub fn reference(&self) -> Option<&str> {
        match self {
            Self::Auth { .. } => None,
            Self::Ping { reference }
            | Self::MessageSend { reference, .. }
            | Self::MessageEdit { reference, .. }
            | Self::MessageDelete { reference, .. }
            | Self::ReactionAdd { reference, .. }
            | Self::ReactionRemove { reference, .. }
            | Self::Typing { reference, .. }
            | Self::Read { reference, .. }
            | Self::PresenceSet { reference, .. }
            | Self::Resume { reference, .. } => reference.as_deref(),
        }
    }

    /// The `type` string, for metrics labels.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Auth { .. } => "auth",
            Self::Ping { .. } => "ping",
            Self::MessageSend { .. } => "message.send",
            Self::MessageEdit { .. } => "message.edit",
            Self::MessageDelete { .. } => "message.delete",
            Self::ReactionAdd { .. } => "reaction.add",
            Self::ReactionRemove { .. } => "reaction.remove",
            Self::Typing { .. } => "typing",
            Self::Read { .. } => "read",
            Self::PresenceSet { .. } => "presence.set",
            Self::Resume { .. } => "resume",
        }
    }

    /// Whether the per-connection event rate limit counts this frame
    /// (messages, edits, reactions, typing, read markers, presence).
    pub fn is_rate_limited(&self) -> bool {
        !matches!(
            self,
            Self::Auth { .. } | Self::Ping { .. } | Self::Resume { .. }
        )
    }
}

/// The `type` values a client may send.
pub const CLIENT_TYPES: &[&str] = &[
    "auth",
    "ping",
    "message.send",
    "message.edit",
    "message.delete",
    "reaction.add",
    "reaction.remove",
    "typing",
    "read",
    "presence.set",
    "resume",
];
