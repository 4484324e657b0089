//! The wire shapes of messages, rooms, invites and users that frames and REST bodies share.

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

use crate::domain::{MessageId, RoomId, UserId};
use crate::store::{Invite, Message, Room};

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

/// A user as others see them (`user.updated`): no email, no settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicUser {
    /// Its id.
    pub id: UserId,
    /// The username.
    pub username: String,
    /// Display name.
    pub display_name: Option<String>,
    /// Short biography.
    pub bio: Option<String>,
    /// Avatar URL.
    pub avatar_url: Option<String>,
}
