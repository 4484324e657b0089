//! The chat-side records: rooms, members, invites, messages and blocks.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use crate::domain::{
    InviteId, InviteStatus, MessageBody, MessageId, RoomId, RoomName, RoomRole, RoomTopic, UserId,
    Visibility,
};

/// A room as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Room {
    /// Its id.
    pub id: RoomId,
    /// Its name.
    pub name: String,
    /// Its topic.
    pub topic: Option<String>,
    /// Who may see and join it.
    pub visibility: Visibility,
    /// The creator; `None` once that account is deleted.
    pub created_by: Option<UserId>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
    /// The seq of the newest message (0 when none); seqs run 1, 2, 3 … with
    /// no gaps.
    pub last_seq: i64,
}

/// What `create_room` needs. The owner becomes its first member.
#[derive(Debug, Clone)]
pub struct NewRoom {
    /// Its id.
    pub id: RoomId,
    /// Its name.
    pub name: RoomName,
    /// Its topic.
    pub topic: Option<RoomTopic>,
    /// `Public` or `Private` (direct rooms come from `get_or_create_direct_room`).
    pub visibility: Visibility,
    /// The owner.
    pub owner: UserId,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

/// A change to a room; `None` leaves a field alone.
#[derive(Debug, Clone, Default)]
pub struct RoomPatch {
    /// Its name.
    pub name: Option<RoomName>,
    /// `Some(None)` clears the topic.
    pub topic: Option<Option<RoomTopic>>,
}

/// A membership row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The room.
    pub room_id: RoomId,
    /// The user.
    pub user_id: UserId,
    /// The role in the room.
    pub role: RoomRole,
    /// When the member joined.
    pub joined_at: DateTime<Utc>,
    /// The member's read marker: the highest seq they have read (0: none).
    pub last_read_seq: i64,
}

/// One of a user's rooms, as `GET /rooms` and `ready` list them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Membership {
    /// The room.
    pub room: Room,
    /// The role in the room.
    pub role: RoomRole,
    /// The member's read marker.
    pub last_read_seq: i64,
    /// Messages after the read marker, not deleted, not written by the user
    /// and not written by someone the user blocked, among the room's newest
    /// [`UNREAD_WINDOW`].
    pub unread_count: i64,
}

/// An invitation to a room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invite {
    /// Its id.
    pub id: InviteId,
    /// The room.
    pub room_id: RoomId,
    /// The user who invited.
    pub inviter_id: UserId,
    /// The user invited.
    pub invitee_id: UserId,
    /// The status.
    pub status: InviteStatus,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When the invitee answered.
    pub responded_at: Option<DateTime<Utc>>,
}

/// What `create_invite` needs.
#[derive(Debug, Clone)]
pub struct NewInvite {
    /// Its id.
    pub id: InviteId,
    /// The room.
    pub room_id: RoomId,
    /// The user who invited.
    pub inviter_id: UserId,
    /// The user invited.
    pub invitee_id: UserId,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

/// A message as stored, with its reaction counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Its id.
    pub id: MessageId,
    /// The room.
    pub room_id: RoomId,
    /// The seq (per room, increasing).
    pub seq: i64,
    /// `None` once the author's account is deleted ("deleted user").
    pub author_id: Option<UserId>,
    /// Empty once deleted.
    pub body: String,
    /// The message this one replies to.
    pub reply_to: Option<MessageId>,
    /// The sender's idempotency key, if given.
    pub client_id: Option<String>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it was last edited.
    pub edited_at: Option<DateTime<Utc>>,
    /// Whether it was deleted (the body is then empty).
    pub deleted: bool,
    /// Emoji → how many users reacted with it.
    pub reactions: BTreeMap<String, i64>,
}

/// Unread messages are counted among a room's newest this many messages:
/// a member further behind sees at most this count (clients show "99+").
/// It keeps `GET /rooms` and `ready` cheap however long a room's backlog.
pub const UNREAD_WINDOW: i64 = 100;

/// What `create_message` needs; the store assigns `seq`.
#[derive(Debug, Clone)]
pub struct NewMessage {
    /// Its id.
    pub id: MessageId,
    /// The room.
    pub room_id: RoomId,
    /// The author (`None` once the account is gone).
    pub author_id: UserId,
    /// The message text.
    pub body: MessageBody,
    /// The message this one replies to.
    pub reply_to: Option<MessageId>,
    /// At most 64 characters; unique per (room, author) when given.
    pub client_id: Option<String>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

/// Whether `create_*` made a new row or found the one an idempotency key
/// already names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Created<T> {
    /// Inserted now.
    New(T),
    /// Already there (same client id): nothing was written.
    Existing(T),
}

impl<T> Created<T> {
    /// The row either way.
    pub fn into_inner(self) -> T {
        match self {
            Self::New(t) | Self::Existing(t) => t,
        }
    }
}

/// Which messages `list_messages` returns.
#[derive(Debug, Clone, Copy)]
pub struct HistoryQuery {
    /// Only seqs below this.
    pub before_seq: Option<i64>,
    /// Only seqs above this; when set, the order is oldest first.
    pub after_seq: Option<i64>,
    /// At most this many.
    pub limit: u32,
    /// Messages by users this viewer blocked are left out, and their
    /// reactions are not counted. `None`: no filtering (resume and fan-out
    /// filter per recipient themselves).
    pub viewer: Option<UserId>,
}

/// One block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    /// The user who blocks.
    pub blocker_id: UserId,
    /// The user blocked.
    pub blocked_id: UserId,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}
