//! The rows both databases return, and their conversion into the store's
//! types.
//!
//! Both schemas store ids as UUID text and times as unix milliseconds, so one
//! row type per table decodes from either database. Each `*_columns!` macro
//! lists the columns its row reads, for `select … ` and `returning …` (a
//! macro, not a constant, so that `concat!` can splice it into a literal).

use std::collections::BTreeMap;
use std::net::IpAddr;

use chrono::{DateTime, Utc};
use parley_actors::domain::UserId;
use parley_actors::store::{
    AuditEntry, Block, Invite, Member, Membership, Message, Room, Session, StoreError, StoreResult,
    User, UserActivity,
};

/// A time as stored: unix milliseconds (sub-millisecond precision is dropped).
pub(super) fn to_ms(at: DateTime<Utc>) -> i64 {
    at.timestamp_millis()
}

/// A stored time back as a `DateTime`.
pub(super) fn from_ms(ms: i64) -> StoreResult<DateTime<Utc>> {
    DateTime::from_timestamp_millis(ms)
        .ok_or_else(|| StoreError::Other(format!("stored time {ms} ms is out of range")))
}

pub(super) fn from_ms_opt(ms: Option<i64>) -> StoreResult<Option<DateTime<Utc>>> {
    ms.map(from_ms).transpose()
}

/// Parses a stored value (id, role, IP …), naming the column when it fails.
pub(super) fn parse_col<T>(column: &str, value: &str) -> StoreResult<T>
where
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    value
        .parse()
        .map_err(|e| StoreError::Other(format!("stored {column} `{value}` does not parse: {e}")))
}

pub(super) fn parse_ip(column: &str, value: Option<&str>) -> StoreResult<Option<IpAddr>> {
    value.map(|v| parse_col(column, v)).transpose()
}

/// The user columns [`UserRow`] reads, for `select` and `returning`.
macro_rules! user_columns {
    () => {
        "id, username, email, password_hash, display_name, bio, avatar_url, role, status, \
         two_factor_enabled, (email_verified_at is not null) as email_verified, failed_logins, \
         locked_until, created_at, updated_at"
    };
}

/// The session columns [`SessionRow`] reads, for `select` and `returning`.
macro_rules! session_columns {
    () => {
        "id, user_id, user_agent, ip, created_at, last_seen_at, revoked_at, revoked_reason"
    };
}

/// A `users` row as both databases return it.
#[derive(Debug, sqlx::FromRow)]
pub(super) struct UserRow {
    id: String,
    username: String,
    email: String,
    password_hash: String,
    display_name: Option<String>,
    bio: Option<String>,
    avatar_url: Option<String>,
    role: String,
    status: String,
    two_factor_enabled: bool,
    email_verified: bool,
    failed_logins: i32,
    locked_until: Option<i64>,
    created_at: i64,
    updated_at: i64,
}

impl UserRow {
    pub(super) fn into_user(self) -> StoreResult<User> {
        // Stored names went through `Username::parse` on the way in, so this
        // only fails if the rules tighten after the fact.
        let username = parley_actors::domain::Username::parse(&self.username)
            .map_err(|e| StoreError::Other(format!("stored username `{}`: {e}", self.username)))?;
        let email = parley_actors::domain::Email::parse(&self.email)
            .map_err(|e| StoreError::Other(format!("stored email of user {}: {e}", self.id)))?;
        Ok(User {
            id: parse_col("users.id", &self.id)?,
            username,
            email,
            password_hash: self.password_hash,
            display_name: self.display_name,
            bio: self.bio,
            avatar_url: self.avatar_url,
            role: parse_col("users.role", &self.role)?,
            status: parse_col("users.status", &self.status)?,
            two_factor_enabled: self.two_factor_enabled,
            email_verified: self.email_verified,
            failed_logins: u32::try_from(self.failed_logins).map_err(|_| {
                StoreError::Other(format!("stored failed_logins {} < 0", self.failed_logins))
            })?,
            locked_until: from_ms_opt(self.locked_until)?,
            created_at: from_ms(self.created_at)?,
            updated_at: from_ms(self.updated_at)?,
        })
    }
}

/// A `users` row with the activity columns of the admin user list.
#[derive(Debug, sqlx::FromRow)]
pub(super) struct UserActivityRow {
    #[sqlx(flatten)]
    user: UserRow,
    last_seen_at: Option<i64>,
    open_sessions: i64,
    messages: i64,
}

impl UserActivityRow {
    pub(super) fn into_activity(self) -> StoreResult<UserActivity> {
        let count = |what: &str, n: i64| {
            u64::try_from(n).map_err(|_| StoreError::Other(format!("{what} count {n} < 0")))
        };
        Ok(UserActivity {
            last_seen_at: from_ms_opt(self.last_seen_at)?,
            open_sessions: count("session", self.open_sessions)?,
            messages: count("message", self.messages)?,
            user: self.user.into_user()?,
        })
    }
}

/// A `sessions` row as both databases return it.
#[derive(Debug, sqlx::FromRow)]
pub(super) struct SessionRow {
    id: String,
    user_id: String,
    user_agent: Option<String>,
    ip: Option<String>,
    created_at: i64,
    last_seen_at: i64,
    revoked_at: Option<i64>,
    revoked_reason: Option<String>,
}

impl SessionRow {
    pub(super) fn into_session(self) -> StoreResult<Session> {
        Ok(Session {
            id: parse_col("sessions.id", &self.id)?,
            user_id: parse_col("sessions.user_id", &self.user_id)?,
            user_agent: self.user_agent,
            ip: parse_ip("sessions.ip", self.ip.as_deref())?,
            created_at: from_ms(self.created_at)?,
            last_seen_at: from_ms(self.last_seen_at)?,
            revoked_at: from_ms_opt(self.revoked_at)?,
            revoked_reason: self.revoked_reason,
        })
    }
}

/// What `rotate_refresh_token` reads about a token it could not spend.
#[derive(Debug, sqlx::FromRow)]
pub(super) struct TokenStateRow {
    pub(super) session_id: String,
    pub(super) user_id: String,
    pub(super) expires_at: i64,
    pub(super) spent_at: Option<i64>,
    pub(super) revoked_at: Option<i64>,
}

/// An `audit_log` row as both databases return it.
#[derive(Debug, sqlx::FromRow)]
pub(super) struct AuditRow {
    id: String,
    at: i64,
    actor_id: Option<String>,
    action: String,
    target_type: Option<String>,
    target_id: Option<String>,
    ip: Option<String>,
    user_agent: Option<String>,
    request_id: Option<String>,
    details: String,
}

impl AuditRow {
    pub(super) fn into_entry(self) -> StoreResult<AuditEntry> {
        Ok(AuditEntry {
            id: parse_col("audit_log.id", &self.id)?,
            at: from_ms(self.at)?,
            actor_id: self
                .actor_id
                .as_deref()
                .map(|id| parse_col("audit_log.actor_id", id))
                .transpose()?,
            action: self.action,
            target_type: self.target_type,
            target_id: self.target_id,
            ip: parse_ip("audit_log.ip", self.ip.as_deref())?,
            user_agent: self.user_agent,
            request_id: self.request_id,
            details: serde_json::from_str(&self.details).map_err(|e| {
                StoreError::Other(format!("stored details of audit entry {}: {e}", self.id))
            })?,
        })
    }
}

/// The room columns [`RoomRow`] reads, for `select` and `returning`.
macro_rules! room_columns {
    () => {
        "id, name, topic, visibility, created_by, created_at, updated_at, last_seq"
    };
}

/// The member columns [`MemberRow`] reads.
macro_rules! member_columns {
    () => {
        "room_id, user_id, role, joined_at, last_read_seq"
    };
}

/// The invite columns [`InviteRow`] reads.
macro_rules! invite_columns {
    () => {
        "id, room_id, inviter_id, invitee_id, status, created_at, responded_at"
    };
}

/// The message columns [`MessageRow`] reads, without a table alias.
macro_rules! message_columns {
    () => {
        "id, room_id, seq, author_id, body, reply_to, client_id, created_at, edited_at, deleted"
    };
}

/// [`message_columns!`] for a query where `messages` is aliased `m`.
macro_rules! m_message_columns {
    () => {
        "m.id, m.room_id, m.seq, m.author_id, m.body, m.reply_to, m.client_id, m.created_at, \
         m.edited_at, m.deleted"
    };
}

/// A `rooms` row as both databases return it.
#[derive(Debug, sqlx::FromRow)]
pub(super) struct RoomRow {
    id: String,
    name: String,
    topic: Option<String>,
    visibility: String,
    created_by: Option<String>,
    created_at: i64,
    updated_at: i64,
    last_seq: i64,
}

impl RoomRow {
    pub(super) fn into_room(self) -> StoreResult<Room> {
        Ok(Room {
            id: parse_col("rooms.id", &self.id)?,
            name: self.name,
            topic: self.topic,
            visibility: parse_col("rooms.visibility", &self.visibility)?,
            created_by: self
                .created_by
                .as_deref()
                .map(|id| parse_col("rooms.created_by", id))
                .transpose()?,
            created_at: from_ms(self.created_at)?,
            updated_at: from_ms(self.updated_at)?,
            last_seq: self.last_seq,
        })
    }
}

/// A room joined with the caller's membership and unread count.
#[derive(Debug, sqlx::FromRow)]
pub(super) struct MembershipRow {
    #[sqlx(flatten)]
    room: RoomRow,
    role: String,
    last_read_seq: i64,
    unread_count: i64,
}

impl MembershipRow {
    pub(super) fn into_membership(self) -> StoreResult<Membership> {
        Ok(Membership {
            role: parse_col("room_members.role", &self.role)?,
            last_read_seq: self.last_read_seq,
            unread_count: self.unread_count,
            room: self.room.into_room()?,
        })
    }
}

/// A `room_members` row.
#[derive(Debug, sqlx::FromRow)]
pub(super) struct MemberRow {
    room_id: String,
    user_id: String,
    role: String,
    joined_at: i64,
    last_read_seq: i64,
}

impl MemberRow {
    pub(super) fn into_member(self) -> StoreResult<Member> {
        Ok(Member {
            room_id: parse_col("room_members.room_id", &self.room_id)?,
            user_id: parse_col("room_members.user_id", &self.user_id)?,
            role: parse_col("room_members.role", &self.role)?,
            joined_at: from_ms(self.joined_at)?,
            last_read_seq: self.last_read_seq,
        })
    }
}

/// An `invites` row.
#[derive(Debug, sqlx::FromRow)]
pub(super) struct InviteRow {
    id: String,
    room_id: String,
    inviter_id: String,
    invitee_id: String,
    status: String,
    created_at: i64,
    responded_at: Option<i64>,
}

impl InviteRow {
    pub(super) fn into_invite(self) -> StoreResult<Invite> {
        Ok(Invite {
            id: parse_col("invites.id", &self.id)?,
            room_id: parse_col("invites.room_id", &self.room_id)?,
            inviter_id: parse_col("invites.inviter_id", &self.inviter_id)?,
            invitee_id: parse_col("invites.invitee_id", &self.invitee_id)?,
            status: parse_col("invites.status", &self.status)?,
            created_at: from_ms(self.created_at)?,
            responded_at: from_ms_opt(self.responded_at)?,
        })
    }
}

/// A `messages` row, without its reactions.
#[derive(Debug, sqlx::FromRow)]
pub(super) struct MessageRow {
    pub(super) id: String,
    room_id: String,
    seq: i64,
    author_id: Option<String>,
    body: String,
    reply_to: Option<String>,
    client_id: Option<String>,
    created_at: i64,
    edited_at: Option<i64>,
    deleted: bool,
}

impl MessageRow {
    pub(super) fn into_message(self, reactions: BTreeMap<String, i64>) -> StoreResult<Message> {
        Ok(Message {
            id: parse_col("messages.id", &self.id)?,
            room_id: parse_col("messages.room_id", &self.room_id)?,
            seq: self.seq,
            author_id: self
                .author_id
                .as_deref()
                .map(|id| parse_col("messages.author_id", id))
                .transpose()?,
            body: self.body,
            reply_to: self
                .reply_to
                .as_deref()
                .map(|id| parse_col("messages.reply_to", id))
                .transpose()?,
            client_id: self.client_id,
            created_at: from_ms(self.created_at)?,
            edited_at: from_ms_opt(self.edited_at)?,
            deleted: self.deleted,
            reactions,
        })
    }
}

/// A `blocks` row.
#[derive(Debug, sqlx::FromRow)]
pub(super) struct BlockRow {
    blocker_id: String,
    blocked_id: String,
    created_at: i64,
}

impl BlockRow {
    pub(super) fn into_block(self) -> StoreResult<Block> {
        Ok(Block {
            blocker_id: parse_col("blocks.blocker_id", &self.blocker_id)?,
            blocked_id: parse_col("blocks.blocked_id", &self.blocked_id)?,
            created_at: from_ms(self.created_at)?,
        })
    }
}

/// The report columns [`ReportRow`] reads.
macro_rules! report_columns {
    () => {
        "id, reporter_id, reported_id, reason, message_id, details, status, created_at"
    };
}

/// A `reports` row.
#[derive(Debug, sqlx::FromRow)]
pub(super) struct ReportRow {
    id: String,
    reporter_id: String,
    reported_id: String,
    reason: String,
    message_id: Option<String>,
    details: Option<String>,
    status: String,
    created_at: i64,
}

impl ReportRow {
    pub(super) fn into_report(self) -> StoreResult<parley_actors::store::Report> {
        Ok(parley_actors::store::Report {
            id: parse_col("reports.id", &self.id)?,
            reporter_id: parse_col("reports.reporter_id", &self.reporter_id)?,
            reported_id: parse_col("reports.reported_id", &self.reported_id)?,
            reason: parse_col("reports.reason", &self.reason)?,
            message_id: self
                .message_id
                .as_deref()
                .map(|m| parse_col("reports.message_id", m))
                .transpose()?,
            details: self.details,
            status: self.status,
            created_at: from_ms(self.created_at)?,
        })
    }
}

/// The key that makes a direct room unique: both ids, smaller first.
pub(super) fn dm_key(a: UserId, b: UserId) -> String {
    let (a, b) = (a.to_string(), b.to_string());
    if a <= b {
        format!("{a}:{b}")
    } else {
        format!("{b}:{a}")
    }
}

/// A `like` pattern (escape character `\`) matching names that contain `q`,
/// lowercased like `lower(name)`. `None` when there is nothing to match.
///
/// SQLite's `lower` folds ASCII letters only, so there names with non-ASCII
/// capitals match only a query spelled with the same capitals lowercased by
/// Rust, i.e. not at all; PostgreSQL folds all of Unicode.
pub(super) fn name_pattern(q: Option<&str>) -> Option<String> {
    let q = q.map(str::trim).filter(|q| !q.is_empty())?;
    let mut pattern = String::with_capacity(q.len() + 2);
    pattern.push('%');
    for c in q.to_lowercase().chars() {
        if matches!(c, '\\' | '%' | '_') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    Some(pattern)
}
