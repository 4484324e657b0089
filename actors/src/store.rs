//! The storage trait the server and the actors call.
//!
//! Implementations live with the server (`parley::storage`: SQLite and
//! PostgreSQL, via sqlx). Methods are grouped by record and ordered
//! create → read → update → delete, the same order in every implementation.
//! Times are UTC and stored with millisecond precision.

use std::net::IpAddr;

mod accounts;
mod chat;
#[cfg(any(test, feature = "test-util"))]
pub mod memory;

pub use self::accounts::*;
pub use self::chat::*;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::settings::UserSettings;

use crate::domain::{
    AuditId, Emoji, InviteId, InviteStatus, MessageBody, MessageId, Role, RoomId, RoomRole,
    SessionId, UserId, UserStatus,
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
