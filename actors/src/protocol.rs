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

/// A message on the wire: the contract's message object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MessageView {
    /// Its id.
    pub id: MessageId,
    /// The room.
    pub room_id: RoomId,
    /// The seq (per room, increasing).
    pub seq: i64,
    /// `null` for a deleted account.
    pub author_id: Option<UserId>,
    /// The message text.
    pub body: String,
    /// The message this one replies to.
    pub reply_to: Option<MessageId>,
    /// RFC 3339 UTC.
    pub created_at: String,
    /// When it was last edited.
    pub edited_at: Option<String>,
    /// Whether it was deleted (the body is then empty).
    pub deleted: bool,
    /// Reactions: emoji → the users who reacted.
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
    /// Its id.
    pub id: RoomId,
    /// Its name.
    pub name: String,
    /// Its topic.
    pub topic: Option<String>,
    /// `public`, `private` or `direct`.
    pub visibility: String,
    /// Who started it.
    pub created_by: Option<UserId>,
    /// When it was created.
    pub created_at: String,
    /// When it last changed.
    pub updated_at: String,
    /// The room's last message seq.
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
    /// Its id.
    pub id: crate::domain::InviteId,
    /// The room.
    pub room_id: RoomId,
    /// The room's name when the invite was listed or sent.
    #[serde(default)]
    pub room_name: Option<String>,
    /// The user who invited.
    pub inviter_id: UserId,
    /// The user invited.
    pub invitee_id: UserId,
    /// `pending`, `accepted` or `declined`.
    pub status: String,
    /// When it was created.
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
    /// Its id.
    pub id: RoomId,
    /// Its name.
    pub name: String,
    /// The room's last message seq.
    pub last_seq: i64,
    /// Unread messages among the room's newest
    /// [`UNREAD_WINDOW`](crate::store::UNREAD_WINDOW).
    pub unread_count: i64,
}

/// The authenticated user in `ready`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadyUser {
    /// Its id.
    pub id: UserId,
    /// The username.
    pub username: String,
}

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
    /// An orderly close (the client said goodbye).
    pub const NORMAL: u16 = 1000;
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
