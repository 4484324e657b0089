//! The WebSocket protocol: one JSON object per text frame, discriminated by
//! `"type"` (see `docs/protocol.md`).
//!
//! [`ClientFrame`] is what clients send; [`ServerFrame`] what the server
//! sends. Both derive `Serialize` and `Deserialize`, so the load harness and
//! the tests speak the protocol with the same types as the server.

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::{MessageId, PresenceStatus, RoomId, UserId};
use crate::store::{Invite, Message, Room};

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
        #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
    },
    /// Post a message; acked with the stored message.
    #[serde(rename = "message.send")]
    MessageSend {
        room_id: RoomId,
        body: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reply_to: Option<MessageId>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client_id: Option<String>,
        #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
    },
    /// Edit one of my messages.
    #[serde(rename = "message.edit")]
    MessageEdit {
        room_id: RoomId,
        message_id: MessageId,
        body: String,
        #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
    },
    /// Delete a message (mine, or any as room admin).
    #[serde(rename = "message.delete")]
    MessageDelete {
        room_id: RoomId,
        message_id: MessageId,
        #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
    },
    /// React to a message.
    #[serde(rename = "reaction.add")]
    ReactionAdd {
        room_id: RoomId,
        message_id: MessageId,
        emoji: String,
        #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
    },
    /// Take a reaction back.
    #[serde(rename = "reaction.remove")]
    ReactionRemove {
        room_id: RoomId,
        message_id: MessageId,
        emoji: String,
        #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
    },
    /// I am typing in a room.
    #[serde(rename = "typing")]
    Typing {
        room_id: RoomId,
        #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
    },
    /// Move my read marker.
    #[serde(rename = "read")]
    Read {
        room_id: RoomId,
        seq: i64,
        #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
    },
    /// Set my presence.
    #[serde(rename = "presence.set")]
    PresenceSet {
        status: PresenceStatus,
        #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
    },
    /// Replay what I missed: room → the last seq I have.
    #[serde(rename = "resume")]
    Resume {
        rooms: BTreeMap<RoomId, i64>,
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

/// A message on the wire: the contract's message object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageView {
    pub id: MessageId,
    pub room_id: RoomId,
    pub seq: i64,
    /// `null` for a deleted account.
    pub author_id: Option<UserId>,
    pub body: String,
    pub reply_to: Option<MessageId>,
    /// RFC 3339 UTC.
    pub created_at: String,
    pub edited_at: Option<String>,
    pub deleted: bool,
    pub reactions: BTreeMap<String, i64>,
    /// The sender's idempotency key (only shown to... everyone; it is not
    /// secret, and lets a sender match an echo to its pending send).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
}

/// RFC 3339 UTC with milliseconds, as every time on the wire.
pub fn wire_time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

impl From<&Message> for MessageView {
    fn from(m: &Message) -> Self {
        Self {
            id: m.id,
            room_id: m.room_id,
            seq: m.seq,
            author_id: m.author_id,
            body: m.body.clone(),
            reply_to: m.reply_to,
            created_at: wire_time(m.created_at),
            edited_at: m.edited_at.map(wire_time),
            deleted: m.deleted,
            reactions: m.reactions.clone(),
            client_id: m.client_id.clone(),
        }
    }
}

/// A room on the wire (REST bodies and `room.updated`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoomView {
    pub id: RoomId,
    pub name: String,
    pub topic: Option<String>,
    /// `public`, `private` or `direct`.
    pub visibility: String,
    pub created_by: Option<UserId>,
    pub created_at: String,
    pub updated_at: String,
    pub last_seq: i64,
}

impl From<&Room> for RoomView {
    fn from(r: &Room) -> Self {
        Self {
            id: r.id,
            name: r.name.clone(),
            topic: r.topic.clone(),
            visibility: r.visibility.to_string(),
            created_by: r.created_by,
            created_at: wire_time(r.created_at),
            updated_at: wire_time(r.updated_at),
            last_seq: r.last_seq,
        }
    }
}

/// An invite on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InviteView {
    pub id: crate::domain::InviteId,
    pub room_id: RoomId,
    /// The room's name when the invite was listed or sent.
    #[serde(default)]
    pub room_name: Option<String>,
    pub inviter_id: UserId,
    pub invitee_id: UserId,
    /// `pending`, `accepted` or `declined`.
    pub status: String,
    pub created_at: String,
}

impl InviteView {
    /// The wire form of an invite.
    pub fn new(i: &Invite, room_name: Option<String>) -> Self {
        Self {
            id: i.id,
            room_id: i.room_id,
            room_name,
            inviter_id: i.inviter_id,
            invitee_id: i.invitee_id,
            status: i.status.to_string(),
            created_at: wire_time(i.created_at),
        }
    }
}

/// One room in `ready`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadyRoom {
    pub id: RoomId,
    pub name: String,
    pub last_seq: i64,
    /// Unread messages among the room's newest
    /// [`UNREAD_WINDOW`](crate::store::UNREAD_WINDOW).
    pub unread_count: i64,
}

/// The authenticated user in `ready`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadyUser {
    pub id: UserId,
    pub username: String,
}

/// A frame from the server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum ServerFrame {
    /// The socket is authenticated; every room of mine is delivered on it.
    #[serde(rename = "ready")]
    Ready {
        session_id: String,
        user: ReadyUser,
        rooms: Vec<ReadyRoom>,
        heartbeat_interval_ms: u64,
    },
    /// A request succeeded.
    #[serde(rename = "ack")]
    Ack {
        #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message: Option<MessageView>,
    },
    /// A request failed, or a frame could not be read.
    #[serde(rename = "error")]
    Error {
        #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
        code: String,
        message: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        retry_after_ms: Option<u64>,
    },
    /// A new message.
    #[serde(rename = "message.created")]
    MessageCreated {
        room_id: RoomId,
        message: MessageView,
    },
    /// An edited message.
    #[serde(rename = "message.updated")]
    MessageUpdated {
        room_id: RoomId,
        message: MessageView,
    },
    /// A deleted message.
    #[serde(rename = "message.deleted")]
    MessageDeleted {
        room_id: RoomId,
        message_id: MessageId,
        seq: i64,
    },
    /// Someone reacted.
    #[serde(rename = "reaction.added")]
    ReactionAdded {
        room_id: RoomId,
        message_id: MessageId,
        emoji: String,
        user_id: UserId,
    },
    /// Someone took a reaction back.
    #[serde(rename = "reaction.removed")]
    ReactionRemoved {
        room_id: RoomId,
        message_id: MessageId,
        emoji: String,
        user_id: UserId,
    },
    /// Someone is typing.
    #[serde(rename = "typing")]
    Typing {
        room_id: RoomId,
        user_id: UserId,
        expires_in_ms: u64,
    },
    /// Someone's presence changed.
    #[serde(rename = "presence")]
    Presence {
        user_id: UserId,
        status: PresenceStatus,
        last_seen_at: Option<String>,
    },
    /// A read marker moved (mine on another device, or a receipt).
    #[serde(rename = "read")]
    Read {
        room_id: RoomId,
        user_id: UserId,
        seq: i64,
    },
    /// Someone joined a room (or I was added to one).
    #[serde(rename = "member.joined")]
    MemberJoined {
        room_id: RoomId,
        user_id: UserId,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        role: Option<String>,
    },
    /// Someone left, was kicked or banned, or changed role (`role` set).
    #[serde(rename = "member.left")]
    MemberLeft {
        room_id: RoomId,
        user_id: UserId,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
    /// A member's role changed.
    #[serde(rename = "member.updated")]
    MemberUpdated {
        room_id: RoomId,
        user_id: UserId,
        role: String,
    },
    /// A room's name or topic changed.
    #[serde(rename = "room.updated")]
    RoomUpdated { room_id: RoomId, room: RoomView },
    /// A room was deleted.
    #[serde(rename = "room.deleted")]
    RoomDeleted { room_id: RoomId },
    /// I was invited somewhere.
    #[serde(rename = "invite")]
    Invite { invite: InviteView },
    /// A notification for me.
    #[serde(rename = "notification")]
    Notification { notification: serde_json::Value },
    /// Progress of one of my jobs.
    #[serde(rename = "job.progress")]
    JobProgress {
        job_id: String,
        status: String,
        percent: u8,
    },
    /// A message from the operators.
    #[serde(rename = "system")]
    System { message: String },
    /// The end of a resume: room → last seq now delivered.
    #[serde(rename = "resumed")]
    Resumed {
        #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
        reference: Option<String>,
        rooms: BTreeMap<RoomId, i64>,
    },
    /// The gap is too large to replay: refetch history over REST.
    #[serde(rename = "resync_required")]
    ResyncRequired { room_id: RoomId, last_seq: i64 },
    /// Answer to `ping`.
    #[serde(rename = "pong")]
    Pong {
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

/// WebSocket close codes used by the server.
pub mod close {
    /// The server is shutting down.
    pub const GOING_AWAY: u16 = 1001;
    /// Policy violation: persistent abuse of the rate limit, or too many
    /// connections for one user.
    pub const POLICY: u16 = 1008;
    /// A frame far larger than allowed.
    pub const TOO_BIG: u16 = 1009;
    /// Nothing heard from the client for two heartbeat intervals.
    pub const IDLE: u16 = 4000;
    /// Not authenticated, or the auth timeout passed.
    pub const UNAUTHENTICATED: u16 = 4001;
    /// Session revoked, user suspended or banned.
    pub const REVOKED: u16 = 4003;
    /// The socket fell too far behind (its durable queue filled).
    pub const SLOW_CONSUMER: u16 = 4009;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_frames_parse_by_type_with_ref() {
        let room = RoomId::new();
        let raw = format!(r#"{{"type":"message.send","room_id":"{room}","body":"hi","ref":"r1"}}"#);
        let frame: ClientFrame = serde_json::from_str(&raw).unwrap();
        assert_eq!(frame.reference(), Some("r1"));
        assert_eq!(frame.kind(), "message.send");
        assert!(serde_json::from_str::<ClientFrame>(r#"{"type":"nope"}"#).is_err());
        assert!(
            serde_json::from_str::<ClientFrame>(r#"{"type":"ping","extra":1}"#).is_err(),
            "unknown fields are refused"
        );
        for kind in CLIENT_TYPES {
            assert!(!kind.is_empty());
        }
    }

    #[test]
    fn server_frames_round_trip() {
        let frame = ServerFrame::Typing {
            room_id: RoomId::new(),
            user_id: UserId::new(),
            expires_in_ms: 5000,
        };
        let bytes = frame.to_bytes();
        let back: ServerFrame = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(back, frame);
        assert!(frame.is_ephemeral());
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(v["type"], "typing");
        let ack = ServerFrame::Ack {
            reference: Some("x".into()),
            message: None,
        };
        let v: serde_json::Value = serde_json::from_slice(&ack.to_bytes()).unwrap();
        assert_eq!(v, serde_json::json!({"type": "ack", "ref": "x"}));
    }
}
