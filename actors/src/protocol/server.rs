//! Frames from the server: `ServerFrame`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::domain::{MessageId, PresenceStatus, RoomId, UserId};

use super::views::{InviteView, MessageView, PublicUser, ReadyRoom, ReadyUser, RoomView};

/// A frame from the server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum ServerFrame {
    /// The socket is authenticated; every room of mine is delivered on it.
    #[serde(rename = "ready")]
    Ready {
        /// The session.
        session_id: String,
        /// The user.
        user: ReadyUser,
        /// The rooms.
        rooms: Vec<ReadyRoom>,
        /// How often the server pings, in milliseconds.
        heartbeat_interval_ms: u64,
    },
    /// A request succeeded.
    #[serde(rename = "ack")]
    Ack {
        /// The client's `ref`, echoed in the answer.
        #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
        /// The message.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message: Option<MessageView>,
    },
    /// A request failed, or a frame could not be read.
    #[serde(rename = "error")]
    Error {
        /// The client's `ref`, echoed in the answer.
        #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
        /// A machine-readable error code.
        code: String,
        /// A sentence for people.
        message: String,
        /// When to try again, in milliseconds.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retry_after_ms: Option<u64>,
    },
    /// A new message.
    #[serde(rename = "message.created")]
    MessageCreated {
        /// The room.
        room_id: RoomId,
        /// The message.
        message: MessageView,
    },
    /// An edited message.
    #[serde(rename = "message.updated")]
    MessageUpdated {
        /// The room.
        room_id: RoomId,
        /// The message.
        message: MessageView,
    },
    /// A deleted message.
    #[serde(rename = "message.deleted")]
    MessageDeleted {
        /// The room.
        room_id: RoomId,
        /// The message.
        message_id: MessageId,
        /// The seq (per room, increasing).
        seq: i64,
    },
    /// Someone reacted.
    #[serde(rename = "reaction.added")]
    ReactionAdded {
        /// The room.
        room_id: RoomId,
        /// The message.
        message_id: MessageId,
        /// The emoji.
        emoji: String,
        /// The user.
        user_id: UserId,
    },
    /// Someone took a reaction back.
    #[serde(rename = "reaction.removed")]
    ReactionRemoved {
        /// The room.
        room_id: RoomId,
        /// The message.
        message_id: MessageId,
        /// The emoji.
        emoji: String,
        /// The user.
        user_id: UserId,
    },
    /// Someone is typing.
    #[serde(rename = "typing")]
    Typing {
        /// The room.
        room_id: RoomId,
        /// The user.
        user_id: UserId,
        /// How long the indicator lasts unless renewed, in milliseconds.
        expires_in_ms: u64,
    },
    /// Someone's presence changed.
    #[serde(rename = "presence")]
    Presence {
        /// The user.
        user_id: UserId,
        /// The status.
        status: PresenceStatus,
        /// When the user was last seen online.
        last_seen_at: Option<String>,
    },
    /// A read marker moved (mine on another device, or a receipt).
    #[serde(rename = "read")]
    Read {
        /// The room.
        room_id: RoomId,
        /// The user.
        user_id: UserId,
        /// The user's read marker now.
        seq: i64,
    },
    /// Someone joined a room (or I was added to one).
    #[serde(rename = "member.joined")]
    MemberJoined {
        /// The room.
        room_id: RoomId,
        /// The user.
        user_id: UserId,
        /// The role in the room.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        role: Option<String>,
    },
    /// Someone left, was kicked or banned, or changed role (`role` set).
    #[serde(rename = "member.left")]
    MemberLeft {
        /// The room.
        room_id: RoomId,
        /// The user.
        user_id: UserId,
        /// Why: `left`, `kicked` or `banned`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// A member's role changed.
    #[serde(rename = "member.updated")]
    MemberUpdated {
        /// The room.
        room_id: RoomId,
        /// The user.
        user_id: UserId,
        /// The role in the room.
        role: String,
    },
    /// A room's name or topic changed.
    #[serde(rename = "room.updated")]
    RoomUpdated {
        /// The room.
        room_id: RoomId,
        /// The room.
        room: RoomView,
    },
    /// A room was deleted.
    #[serde(rename = "room.deleted")]
    RoomDeleted {
        /// The room.
        room_id: RoomId,
    },
    /// I was invited somewhere.
    #[serde(rename = "invite")]
    Invite {
        /// The invite.
        invite: InviteView,
    },
    /// A notification for me.
    #[serde(rename = "notification")]
    Notification {
        /// The notification.
        notification: serde_json::Value,
    },
    /// Progress of one of my jobs.
    #[serde(rename = "job.progress")]
    JobProgress {
        /// The job.
        job_id: String,
        /// The status.
        status: String,
        /// Progress, 0–100.
        percent: u8,
    },
    /// Someone who shares a room with me (or I, on another device) changed
    /// their display name, bio or avatar.
    #[serde(rename = "user.updated")]
    UserUpdated {
        /// The public profile as it is now.
        user: PublicUser,
    },
    /// A message from the operators.
    #[serde(rename = "system")]
    System {
        /// The announcement.
        message: String,
    },
    /// The end of a resume: room → last seq now delivered.
    #[serde(rename = "resumed")]
    Resumed {
        /// The client's `ref`, echoed in the answer.
        #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
        /// The rooms.
        rooms: BTreeMap<RoomId, i64>,
    },
    /// The gap is too large to replay: refetch history over REST.
    #[serde(rename = "resync_required")]
    ResyncRequired {
        /// The room.
        room_id: RoomId,
        /// The room's last message seq.
        last_seq: i64,
    },
    /// Answer to `ping`.
    #[serde(rename = "pong")]
    Pong {
        /// The client's `ref`, echoed in the answer.
        #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
    },
}

impl ServerFrame {
    /// An error frame.
    pub fn error(reference: Option<&str>, code: &str, message: impl Into<String>) -> Self {
        Self::Error {
            reference: reference.map(str::to_owned),
            code: code.to_owned(),
            message: message.into(),
            retry_after_ms: None,
        }
    }

    /// The `type` string, for metrics labels.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Ready { .. } => "ready",
            Self::Ack { .. } => "ack",
            Self::Error { .. } => "error",
            Self::MessageCreated { .. } => "message.created",
            Self::MessageUpdated { .. } => "message.updated",
            Self::MessageDeleted { .. } => "message.deleted",
            Self::ReactionAdded { .. } => "reaction.added",
            Self::ReactionRemoved { .. } => "reaction.removed",
            Self::Typing { .. } => "typing",
            Self::Presence { .. } => "presence",
            Self::Read { .. } => "read",
            Self::MemberJoined { .. } => "member.joined",
            Self::MemberLeft { .. } => "member.left",
            Self::MemberUpdated { .. } => "member.updated",
            Self::RoomUpdated { .. } => "room.updated",
            Self::RoomDeleted { .. } => "room.deleted",
            Self::Invite { .. } => "invite",
            Self::Notification { .. } => "notification",
            Self::JobProgress { .. } => "job.progress",
            Self::UserUpdated { .. } => "user.updated",
            Self::System { .. } => "system",
            Self::Resumed { .. } => "resumed",
            Self::ResyncRequired { .. } => "resync_required",
            Self::Pong { .. } => "pong",
        }
    }

    /// Ephemeral events may be coalesced or shed under backpressure;
    /// everything else is durable and never dropped silently.
    pub fn is_ephemeral(&self) -> bool {
        matches!(self, Self::Typing { .. } | Self::Presence { .. })
    }

    /// Serialises once; the bytes are shared by every recipient.
    pub fn to_bytes(&self) -> bytes::Bytes {
        // Serialising these types cannot fail: no maps with non-string keys,
        // no custom serialisers that error.
        bytes::Bytes::from(serde_json::to_vec(self).unwrap_or_default())
    }
}
