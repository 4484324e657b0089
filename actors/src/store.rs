//! The storage trait the server and the actors call.
//!
//! Implementations live with the server (`parley::storage`: SQLite and
//! PostgreSQL, via sqlx). Methods are grouped by record and ordered
//! create → read → update → delete, the same order in every implementation.
//! Times are UTC and stored with millisecond precision.

use std::collections::BTreeMap;
use std::net::IpAddr;

#[cfg(any(test, feature = "test-util"))]
pub mod memory;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::settings::UserSettings;

use crate::domain::{
    AuditId, Email, Emoji, InviteId, InviteStatus, MessageBody, MessageId, ReportId, ReportReason,
    Role, RoomId, RoomName, RoomRole, RoomTopic, SessionId, UserId, UserStatus, Username,
    Visibility,
};

/// What can go wrong in storage.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A unique key is already taken; `field` names it (`username`, `email`, …).
    #[error("{field} is already taken")]
    Conflict {
        /// The public name of the field whose value is taken.
        field: &'static str,
    },
    /// The database could not be reached or answered with an error.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// Anything else (a row that does not decode, a failed migration …).
    #[error("storage error: {0}")]
    Other(String),
}

/// Result alias for storage calls.
pub type StoreResult<T> = Result<T, StoreError>;

/// An account as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Its id.
    pub id: UserId,
    /// The username.
    pub username: Username,
    /// Email address.
    pub email: Email,
    /// PHC string (Argon2id).
    pub password_hash: String,
    /// Display name.
    pub display_name: Option<String>,
    /// Short biography.
    pub bio: Option<String>,
    /// Avatar URL.
    pub avatar_url: Option<String>,
    /// The role in the room.
    pub role: Role,
    /// The status.
    pub status: UserStatus,
    /// Whether two-factor authentication is on.
    pub two_factor_enabled: bool,
    /// Whether the email address has been verified (a mailed token spent).
    pub email_verified: bool,
    /// Consecutive failed logins since the last success or lockout.
    pub failed_logins: u32,
    /// Logins are refused until then.
    pub locked_until: Option<DateTime<Utc>>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

/// What `create_user` needs.
#[derive(Debug, Clone)]
pub struct NewUser {
    /// Its id.
    pub id: UserId,
    /// The username.
    pub username: Username,
    /// Email address.
    pub email: Email,
    /// The password's hash (PHC string).
    pub password_hash: String,
    /// The role in the room.
    pub role: Role,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

/// A change to a profile; `None` leaves a field alone, `Some(None)` clears it.
#[derive(Debug, Clone, Default)]
pub struct ProfilePatch {
    /// Display name (validated by the caller: trimmed, at most 64 characters).
    pub display_name: Option<Option<String>>,
    /// Biography (validated by the caller: trimmed, at most 500 characters).
    pub bio: Option<Option<String>>,
}

/// A user's two-factor state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TotpState {
    /// Base32 TOTP secret: set up (maybe not yet enabled), or `None`.
    pub secret: Option<String>,
    /// Whether login needs a second factor.
    pub enabled: bool,
    /// The last TOTP step accepted (a step is accepted once).
    pub last_step: Option<u64>,
}

/// A one-time token sent by mail, as stored (hashed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAccountToken {
    /// Hex SHA-256 of the token.
    pub token_hash: String,
    /// Whose token it is.
    pub user_id: UserId,
    /// `verify_email` or `password_reset`.
    pub purpose: String,
    /// Digest of the user's password hash when made: a changed password
    /// makes the token useless.
    pub password_stamp: String,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// When it stops working.
    pub expires_at: DateTime<Utc>,
}

/// A connection pool's figures at one instant, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// Connections open (in use plus idle).
    pub size: u32,
    /// Open connections nobody holds.
    pub idle: u32,
    /// The most connections the pool opens.
    pub max: u32,
}

/// Filters of the admin user list ([`Store::list_users`]); `None` means any.
#[derive(Debug, Clone, Default)]
pub struct UserFilter {
    /// Case-insensitive substring of the username, email or display name.
    pub q: Option<String>,
    /// Only users with this status.
    pub status: Option<UserStatus>,
    /// Only users with this role.
    pub role: Option<Role>,
}

/// A user with the activity figures the admin user list shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserActivity {
    /// The account.
    pub user: User,
    /// The latest `last_seen_at` of any of the user's sessions.
    pub last_seen_at: Option<DateTime<Utc>>,
    /// Sessions not revoked.
    pub open_sessions: u64,
    /// Messages the user has written (deleted ones included).
    pub messages: u64,
}

/// The outcome of recording one failed login.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginFailure {
    /// Failures in a row, counting this one (reset to 0 when it locks).
    pub failed_logins: u32,
    /// Set when this failure locked the account.
    pub locked_until: Option<DateTime<Utc>>,
}

/// A login session (one device), as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// Its id.
    pub id: SessionId,
    /// The user.
    pub user_id: UserId,
    /// The client's User-Agent.
    pub user_agent: Option<String>,
    /// The client's IP address.
    pub ip: Option<IpAddr>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When the user was last seen online.
    pub last_seen_at: DateTime<Utc>,
    /// Set once revoked; a revoked session never comes back.
    pub revoked_at: Option<DateTime<Utc>>,
    /// Why it was revoked (`logout`, `revoked`, `password_change`,
    /// `refresh_reuse`, `suspended`, …).
    pub revoked_reason: Option<String>,
}

/// What `create_session` needs.
#[derive(Debug, Clone)]
pub struct NewSession {
    /// Its id.
    pub id: SessionId,
    /// The user.
    pub user_id: UserId,
    /// The client's User-Agent.
    pub user_agent: Option<String>,
    /// The client's IP address.
    pub ip: Option<IpAddr>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

/// A refresh token to store. Only its SHA-256 hash is kept.
#[derive(Debug, Clone)]
pub struct NewRefreshToken {
    /// Hex SHA-256 of the opaque token the client holds.
    pub token_hash: String,
    /// The session.
    pub session_id: SessionId,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it expires.
    pub expires_at: DateTime<Utc>,
}

/// What happened when a refresh token was presented.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefreshOutcome {
    /// The token was live: it is now spent and `new` replaces it.
    Rotated {
        /// The session, with `last_seen_at` updated.
        session: Session,
    },
    /// The token had been spent already: the whole session has been revoked
    /// (reason `refresh_reuse`) in the same transaction.
    Reused {
        /// The session.
        session_id: SessionId,
        /// The user.
        user_id: UserId,
    },
    /// The token is past its expiry or its session is revoked; nothing changed.
    Dead,
    /// No such token.
    Unknown,
}

/// Filters of the audit log list ([`Store::list_audit_page`]); `None`
/// means any.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// Only entries by this actor.
    pub actor_id: Option<UserId>,
    /// Only entries with this action.
    pub action: Option<String>,
    /// Only entries about this target id.
    pub target_id: Option<String>,
    /// Only entries at or after this instant.
    pub from: Option<DateTime<Utc>>,
    /// Only entries before this instant.
    pub to: Option<DateTime<Utc>>,
}

/// A row for the audit log.
#[derive(Debug, Clone, Serialize)]
pub struct NewAuditEntry {
    /// Its id.
    pub id: AuditId,
    /// When.
    pub at: DateTime<Utc>,
    /// Who did it.
    pub actor_id: Option<UserId>,
    /// e.g. `register`, `login`, `login_failed`, `lockout`, `logout`,
    /// `refresh_reuse`, `password_change`, `session_revoke`.
    pub action: String,
    /// What kind of thing it was done to.
    pub target_type: Option<String>,
    /// What it was done to (id).
    pub target_id: Option<String>,
    /// The client's IP address.
    pub ip: Option<IpAddr>,
    /// The client's User-Agent.
    pub user_agent: Option<String>,
    /// The HTTP request id.
    pub request_id: Option<String>,
    /// Free-form details (JSON).
    pub details: serde_json::Value,
}

/// An audit log entry as stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditEntry {
    /// Its id.
    pub id: AuditId,
    /// When.
    pub at: DateTime<Utc>,
    /// Who did it.
    pub actor_id: Option<UserId>,
    /// What was done.
    pub action: String,
    /// What kind of thing it was done to.
    pub target_type: Option<String>,
    /// What it was done to (id).
    pub target_id: Option<String>,
    /// The client's IP address.
    pub ip: Option<IpAddr>,
    /// The client's User-Agent.
    pub user_agent: Option<String>,
    /// The HTTP request id.
    pub request_id: Option<String>,
    /// Free-form details (JSON).
    pub details: serde_json::Value,
}

/// A report of a user, for the moderators' queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// Its id.
    pub id: ReportId,
    /// Who reported.
    pub reporter_id: UserId,
    /// Who is reported.
    pub reported_id: UserId,
    /// Why.
    pub reason: ReportReason,
    /// The message that shows it, if any.
    pub message_id: Option<MessageId>,
    /// The reporter's words, if any.
    pub details: Option<String>,
    /// `open` until a moderator acts on it.
    pub status: String,
    /// When it was made.
    pub created_at: DateTime<Utc>,
}

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

/// Rooms, members, invites, messages, reactions, read markers and blocks.
#[async_trait]
pub trait ChatStore: Send + Sync + std::fmt::Debug + 'static {
    // ---- rooms ----------------------------------------------------------

    /// Inserts a room and its owner's membership, in one transaction.
    async fn create_room(&self, new: NewRoom) -> StoreResult<Room>;

    /// The direct room between `a` and `b` (either order), created with id
    /// `id` and both as members (role `member`) when missing. `true` when
    /// created now.
    async fn get_or_create_direct_room(
        &self,
        id: RoomId,
        a: UserId,
        b: UserId,
        at: DateTime<Utc>,
    ) -> StoreResult<(Room, bool)>;

    /// A room by id.
    async fn room_by_id(&self, id: RoomId) -> StoreResult<Option<Room>>;

    /// Public rooms whose name starts with or contains `q`
    /// (case-insensitive), newest first, after the cursor room.
    async fn list_public_rooms(
        &self,
        q: Option<&str>,
        after: Option<RoomId>,
        limit: u32,
    ) -> StoreResult<Vec<Room>>;

    /// Every room the user is a member of, with role and unread count.
    async fn list_memberships(&self, user_id: UserId) -> StoreResult<Vec<Membership>>;

    /// The last seq of every room the user is a member of: a cheap second
    /// look after a socket subscribed (see `Realtime::connect`).
    async fn member_last_seqs(&self, user_id: UserId) -> StoreResult<Vec<(RoomId, i64)>>;

    /// Applies a patch; `None` when the room does not exist.
    async fn update_room(
        &self,
        id: RoomId,
        patch: RoomPatch,
        at: DateTime<Utc>,
    ) -> StoreResult<Option<Room>>;

    /// Deletes a room with its members, invites, messages and reactions.
    async fn delete_room(&self, id: RoomId) -> StoreResult<bool>;

    // ---- members --------------------------------------------------------

    /// Adds a member; `false` when already a member (role unchanged).
    async fn add_member(
        &self,
        room_id: RoomId,
        user_id: UserId,
        role: RoomRole,
        at: DateTime<Utc>,
    ) -> StoreResult<bool>;

    /// One membership.
    async fn member(&self, room_id: RoomId, user_id: UserId) -> StoreResult<Option<Member>>;

    /// Every member of a room, oldest first.
    async fn list_members(&self, room_id: RoomId) -> StoreResult<Vec<Member>>;

    /// Users who share at least one room with `user_id` (not including them).
    async fn users_sharing_rooms(&self, user_id: UserId) -> StoreResult<Vec<UserId>>;

    /// Sets a member's role; `false` when not a member.
    async fn update_member_role(
        &self,
        room_id: RoomId,
        user_id: UserId,
        role: RoomRole,
    ) -> StoreResult<bool>;

    /// Moves the read marker forward to `seq` (never back, never past the
    /// room's last seq). Returns the marker now stored, `None` when not a
    /// member.
    async fn set_read_marker(
        &self,
        room_id: RoomId,
        user_id: UserId,
        seq: i64,
    ) -> StoreResult<Option<i64>>;

    /// Removes a member; `false` when not a member.
    async fn remove_member(&self, room_id: RoomId, user_id: UserId) -> StoreResult<bool>;

    /// Bans a user from a room (removing the membership); `false` when
    /// already banned.
    async fn ban_member(
        &self,
        room_id: RoomId,
        user_id: UserId,
        banned_by: UserId,
        at: DateTime<Utc>,
    ) -> StoreResult<bool>;

    /// Whether the user is banned from the room.
    async fn is_banned(&self, room_id: RoomId, user_id: UserId) -> StoreResult<bool>;

    /// Lifts a ban; `false` when there was none.
    async fn unban_member(&self, room_id: RoomId, user_id: UserId) -> StoreResult<bool>;

    // ---- invites --------------------------------------------------------

    /// Stores a pending invite. A pending invite for the same room and
    /// invitee already there is `Conflict { field: "user_id" }`.
    async fn create_invite(&self, new: NewInvite) -> StoreResult<Invite>;

    /// An invite by id.
    async fn invite_by_id(&self, id: InviteId) -> StoreResult<Option<Invite>>;

    /// A user's pending invites, newest first.
    async fn list_pending_invites(&self, invitee_id: UserId) -> StoreResult<Vec<Invite>>;

    /// Accepts or declines a pending invite; `false` when it is not pending.
    async fn respond_invite(
        &self,
        id: InviteId,
        status: InviteStatus,
        at: DateTime<Utc>,
    ) -> StoreResult<bool>;

    // ---- messages and reactions -----------------------------------------

    /// Stores a message under the room's next seq, atomically and without
    /// gaps, and moves the author's read marker to it. With a `client_id`
    /// the author already used in this room, stores nothing and returns
    /// `Existing` with the earlier message.
    async fn create_message(&self, new: NewMessage) -> StoreResult<Created<Message>> {
        self.create_messages(vec![new])
            .await?
            .pop()
            .ok_or_else(|| StoreError::Other("no message stored".to_owned()))
    }

    /// [`Self::create_message`] for several messages of one room in one
    /// transaction (group commit): they get consecutive seqs in the order
    /// given, and the answer has one entry per message, in that order. A
    /// `client_id` repeated within the batch is stored once; the later
    /// entries get `Existing`.
    async fn create_messages(&self, batch: Vec<NewMessage>) -> StoreResult<Vec<Created<Message>>>;

    /// [`Self::create_messages`] for several rooms at once, in as few
    /// transactions as the store can (group commit across rooms): one
    /// answer per group, in order. A group that cannot be stored fails
    /// alone.
    async fn create_message_groups(
        &self,
        groups: Vec<Vec<NewMessage>>,
    ) -> Vec<StoreResult<Vec<Created<Message>>>> {
        let mut out = Vec::with_capacity(groups.len());
        for group in groups {
            out.push(self.create_messages(group).await);
        }
        out
    }

    /// A message by id.
    async fn message_by_id(&self, id: MessageId) -> StoreResult<Option<Message>>;

    /// A page of history: newest first, or oldest first when `after_seq`
    /// is given. Deleted messages are included (as tombstones).
    async fn list_messages(
        &self,
        room_id: RoomId,
        query: HistoryQuery,
    ) -> StoreResult<Vec<Message>>;

    /// Full-text search over the rooms `user_id` is a member of (or just
    /// `room_id`, if they are a member of it), best match first; deleted
    /// messages and messages by users they blocked are left out.
    async fn search_messages(
        &self,
        user_id: UserId,
        query: &str,
        room_id: Option<RoomId>,
        limit: u32,
    ) -> StoreResult<Vec<Message>>;

    /// Replaces a body and sets `edited_at`; `None` when missing or deleted.
    async fn update_message_body(
        &self,
        id: MessageId,
        body: MessageBody,
        at: DateTime<Utc>,
    ) -> StoreResult<Option<Message>>;

    /// Adds a reaction; `false` when this user already reacted so.
    async fn add_reaction(
        &self,
        message_id: MessageId,
        user_id: UserId,
        emoji: &Emoji,
        at: DateTime<Utc>,
    ) -> StoreResult<bool>;

    /// Removes a reaction; `false` when there was none.
    async fn remove_reaction(
        &self,
        message_id: MessageId,
        user_id: UserId,
        emoji: &Emoji,
    ) -> StoreResult<bool>;

    /// Soft-deletes: the body is erased, reactions removed, `deleted` set;
    /// the seq stays. `None` when missing or already deleted.
    async fn delete_message(
        &self,
        id: MessageId,
        at: DateTime<Utc>,
    ) -> StoreResult<Option<Message>>;

    // ---- blocks ---------------------------------------------------------

    /// `blocker` blocks `blocked`; `false` when already so.
    async fn create_block(
        &self,
        blocker_id: UserId,
        blocked_id: UserId,
        at: DateTime<Utc>,
    ) -> StoreResult<bool>;

    /// Whom `blocker` blocked, newest first.
    async fn list_blocks(&self, blocker_id: UserId) -> StoreResult<Vec<Block>>;

    /// Every block, to build the in-memory view at start.
    async fn all_blocks(&self) -> StoreResult<Vec<(UserId, UserId)>>;

    /// Lifts a block; `false` when there was none.
    async fn delete_block(&self, blocker_id: UserId, blocked_id: UserId) -> StoreResult<bool>;
}

/// Everything Parley keeps durably.
#[async_trait]
pub trait Store: ChatStore + Send + Sync + std::fmt::Debug + 'static {
    // ---- health ---------------------------------------------------------

    /// A cheap round trip (`select 1`), for readiness.
    async fn ping(&self) -> StoreResult<()>;

    /// Closes the pool; every later call fails with `Unavailable`.
    async fn close(&self);

    /// The connection pool's figures now (all zero for a store without one).
    fn pool_stats(&self) -> PoolStats;

    /// Takes a connection from the pool and gives it straight back;
    /// returns how long the wait for it took (the pool's acquire latency,
    /// sampled).
    async fn acquire_wait(&self) -> StoreResult<std::time::Duration>;

    // ---- users ----------------------------------------------------------

    /// Inserts a user. A taken username or email is `Conflict { field }`.
    async fn create_user(&self, new: NewUser) -> StoreResult<User>;

    /// A user by id.
    async fn user_by_id(&self, id: UserId) -> StoreResult<Option<User>>;

    /// A user by username or by email (both stored lowercase; `login` is
    /// lowercased by the caller).
    async fn user_by_login(&self, login: &str) -> StoreResult<Option<User>>;

    /// Active users whose username or display name starts with `prefix`
    /// (lowercase; matched case-insensitively), by username, after the
    /// username `after` (cursor), at most `limit`. Leaves out `viewer`
    /// and anyone `viewer` blocked or is blocked by.
    async fn search_users(
        &self,
        viewer: UserId,
        prefix: &str,
        after: Option<&str>,
        limit: u32,
    ) -> StoreResult<Vec<User>>;

    /// Users ordered by username, at most `limit`, starting after the user
    /// `after` (cursor) when given, with their activity figures.
    async fn list_users(
        &self,
        filter: &UserFilter,
        after: Option<UserId>,
        limit: u32,
    ) -> StoreResult<Vec<UserActivity>>;

    /// How many users are active admins (the last one may not be demoted,
    /// suspended or banned).
    async fn count_active_admins(&self) -> StoreResult<u64>;

    /// Counts one failed login. When the count reaches `max_failures` the
    /// account is locked until `lock_until` and the count starts again.
    async fn record_login_failure(
        &self,
        id: UserId,
        max_failures: u32,
        lock_until: DateTime<Utc>,
    ) -> StoreResult<LoginFailure>;

    /// Resets the failure count and any lock (after a successful login).
    async fn clear_login_failures(&self, id: UserId) -> StoreResult<()>;

    /// Replaces the password hash.
    async fn update_password_hash(
        &self,
        id: UserId,
        password_hash: &str,
        at: DateTime<Utc>,
    ) -> StoreResult<()>;

    /// Sets role and/or status (CLI and, later, the admin API).
    async fn update_user_role_status(
        &self,
        id: UserId,
        role: Option<Role>,
        status: Option<UserStatus>,
        at: DateTime<Utc>,
    ) -> StoreResult<()>;

    /// Applies a profile patch; `None` when the user does not exist.
    async fn update_user_profile(
        &self,
        id: UserId,
        patch: ProfilePatch,
        at: DateTime<Utc>,
    ) -> StoreResult<Option<User>>;

    // ---- settings -------------------------------------------------------

    /// A user's stored settings; `None` when they never saved any (the
    /// defaults apply).
    async fn user_settings(&self, id: UserId) -> StoreResult<Option<UserSettings>>;

    /// Every stored settings document, to build the privacy view at start.
    async fn all_user_settings(&self) -> StoreResult<Vec<(UserId, UserSettings)>>;

    /// Stores a user's whole settings document (insert or replace).
    async fn put_user_settings(
        &self,
        id: UserId,
        settings: &UserSettings,
        at: DateTime<Utc>,
    ) -> StoreResult<()>;
    // ---- two-factor authentication (after the user methods) -------------

    /// The user's TOTP state; `None` for an unknown user.
    async fn totp_state(&self, user_id: UserId) -> StoreResult<Option<TotpState>>;

    /// Stores a new TOTP secret while 2FA is off (setup); false when it is on.
    async fn set_totp_secret(
        &self,
        user_id: UserId,
        secret: &str,
        at: DateTime<Utc>,
    ) -> StoreResult<bool>;

    /// Turns 2FA on (secret set up, 2FA off): `step` counts as used and the
    /// recovery codes (hashes) replace any earlier ones. False when it was
    /// on already or never set up.
    async fn enable_totp(
        &self,
        user_id: UserId,
        step: u64,
        recovery_code_hashes: &[String],
        at: DateTime<Utc>,
    ) -> StoreResult<bool>;

    /// Records `step` as the last accepted TOTP step if it is later than
    /// the stored one, atomically; false: accepted before (a replay).
    async fn claim_totp_step(&self, user_id: UserId, step: u64) -> StoreResult<bool>;

    /// Spends an unused recovery code; false when unknown or spent.
    async fn use_recovery_code(
        &self,
        user_id: UserId,
        code_hash: &str,
        at: DateTime<Utc>,
    ) -> StoreResult<bool>;

    /// Unused recovery codes of a user.
    async fn recovery_codes_left(&self, user_id: UserId) -> StoreResult<u32>;

    /// Turns 2FA off: secret, last step and recovery codes are removed.
    async fn disable_totp(&self, user_id: UserId, at: DateTime<Utc>) -> StoreResult<()>;

    // ---- mailed one-time tokens, email verification ----------------------

    /// Stores a one-time token (its hash).
    async fn create_account_token(&self, new: NewAccountToken) -> StoreResult<()>;

    /// Spends the unused, unexpired token of `purpose` with this hash,
    /// atomically; returns its user and password stamp.
    async fn consume_account_token(
        &self,
        token_hash: &str,
        purpose: &str,
        at: DateTime<Utc>,
    ) -> StoreResult<Option<(UserId, String)>>;

    /// Marks the user's email address verified.
    async fn mark_email_verified(&self, user_id: UserId, at: DateTime<Utc>) -> StoreResult<()>;

    // ---- sessions and refresh tokens ------------------------------------

    /// Inserts a session together with its first refresh token.
    async fn create_session(
        &self,
        new: NewSession,
        refresh: NewRefreshToken,
    ) -> StoreResult<Session>;

    /// A session by id (revoked ones included).
    async fn session_by_id(&self, id: SessionId) -> StoreResult<Option<Session>>;

    /// A user's live (not revoked) sessions, newest first, at most `limit`,
    /// starting after the session `after` (cursor) when given.
    async fn list_live_sessions(
        &self,
        user_id: UserId,
        after: Option<SessionId>,
        limit: u32,
    ) -> StoreResult<Vec<Session>>;

    /// Sessions revoked at or after `since`: `(session, user)` pairs, to
    /// rebuild the in-memory revocation view at start.
    async fn sessions_revoked_since(
        &self,
        since: DateTime<Utc>,
    ) -> StoreResult<Vec<(SessionId, UserId)>>;

    /// The session a refresh token (spent or not) belongs to.
    async fn session_by_refresh_token(&self, token_hash: &str) -> StoreResult<Option<Session>>;

    /// Live sessions not seen since `before`, oldest first, at most `limit`.
    async fn idle_sessions(&self, before: DateTime<Utc>, limit: u32)
    -> StoreResult<Vec<SessionId>>;

    /// Spends the refresh token whose hash is `token_hash` and stores
    /// `replacement` in its place, atomically: two concurrent calls with the
    /// same token cannot both rotate. A token already spent revokes its
    /// session (see [`RefreshOutcome::Reused`]). The caller cannot know the
    /// session beforehand: `replacement.session_id` is ignored and the new
    /// token belongs to the presented token's session.
    async fn rotate_refresh_token(
        &self,
        token_hash: &str,
        replacement: NewRefreshToken,
        now: DateTime<Utc>,
    ) -> StoreResult<RefreshOutcome>;

    /// Notes activity on a session.
    async fn touch_session(
        &self,
        id: SessionId,
        at: DateTime<Utc>,
        ip: Option<IpAddr>,
    ) -> StoreResult<()>;

    /// Revokes one session; `false` when it was already revoked or is unknown.
    async fn revoke_session(
        &self,
        id: SessionId,
        reason: &str,
        at: DateTime<Utc>,
    ) -> StoreResult<bool>;

    /// Revokes every live session of a user except `keep`; returns the ids
    /// it revoked.
    async fn revoke_user_sessions(
        &self,
        user_id: UserId,
        keep: Option<SessionId>,
        reason: &str,
        at: DateTime<Utc>,
    ) -> StoreResult<Vec<SessionId>>;

    // ---- reports --------------------------------------------------------

    /// Stores a report (status `open`).
    async fn create_report(&self, report: Report) -> StoreResult<Report>;

    /// Reports, newest first, at most `limit` (the moderators' queue).
    async fn list_reports(&self, limit: u32) -> StoreResult<Vec<Report>>;

    // ---- audit log ------------------------------------------------------

    /// Appends one entry.
    async fn create_audit_entry(&self, entry: NewAuditEntry) -> StoreResult<()>;

    /// Entries, newest first, optionally only one action; for tests and,
    /// later, the admin API.
    async fn list_audit_entries(
        &self,
        action: Option<&str>,
        limit: u32,
    ) -> StoreResult<Vec<AuditEntry>>;

    /// Entries matching `filter`, newest first, at most `limit`, starting
    /// after the entry `after` (cursor) when given (the admin API).
    async fn list_audit_page(
        &self,
        filter: &AuditFilter,
        after: Option<AuditId>,
        limit: u32,
    ) -> StoreResult<Vec<AuditEntry>>;
}
