//! The storage trait the server and the actors call.
//!
//! Implementations live with the server (`parley::storage`: SQLite and
//! PostgreSQL, via sqlx). Methods are grouped by record and ordered
//! create → read → update → delete, the same order in every implementation.
//! Times are UTC and stored with millisecond precision.

use std::net::IpAddr;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::domain::{AuditId, Email, Role, SessionId, UserId, UserStatus, Username};

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
    pub id: UserId,
    pub username: Username,
    pub email: Email,
    /// PHC string (Argon2id).
    pub password_hash: String,
    pub display_name: Option<String>,
    pub bio: Option<String>,
    pub avatar_url: Option<String>,
    pub role: Role,
    pub status: UserStatus,
    pub two_factor_enabled: bool,
    /// Consecutive failed logins since the last success or lockout.
    pub failed_logins: u32,
    /// Logins are refused until then.
    pub locked_until: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What `create_user` needs.
#[derive(Debug, Clone)]
pub struct NewUser {
    pub id: UserId,
    pub username: Username,
    pub email: Email,
    pub password_hash: String,
    pub role: Role,
    pub created_at: DateTime<Utc>,
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
    pub id: SessionId,
    pub user_id: UserId,
    pub user_agent: Option<String>,
    pub ip: Option<IpAddr>,
    pub created_at: DateTime<Utc>,
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
    pub id: SessionId,
    pub user_id: UserId,
    pub user_agent: Option<String>,
    pub ip: Option<IpAddr>,
    pub created_at: DateTime<Utc>,
}

/// A refresh token to store. Only its SHA-256 hash is kept.
#[derive(Debug, Clone)]
pub struct NewRefreshToken {
    /// Hex SHA-256 of the opaque token the client holds.
    pub token_hash: String,
    pub session_id: SessionId,
    pub created_at: DateTime<Utc>,
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
        session_id: SessionId,
        user_id: UserId,
    },
    /// The token is past its expiry or its session is revoked; nothing changed.
    Dead,
    /// No such token.
    Unknown,
}

/// A row for the audit log.
#[derive(Debug, Clone, Serialize)]
pub struct NewAuditEntry {
    pub id: AuditId,
    pub at: DateTime<Utc>,
    pub actor_id: Option<UserId>,
    /// e.g. `register`, `login`, `login_failed`, `lockout`, `logout`,
    /// `refresh_reuse`, `password_change`, `session_revoke`.
    pub action: String,
    pub target_type: Option<String>,
    pub target_id: Option<String>,
    pub ip: Option<IpAddr>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
    pub details: serde_json::Value,
}

/// An audit log entry as stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditEntry {
    pub id: AuditId,
    pub at: DateTime<Utc>,
    pub actor_id: Option<UserId>,
    pub action: String,
    pub target_type: Option<String>,
    pub target_id: Option<String>,
    pub ip: Option<IpAddr>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
    pub details: serde_json::Value,
}

/// Everything Parley keeps durably.
#[async_trait]
pub trait Store: Send + Sync + std::fmt::Debug + 'static {
    // ---- health ---------------------------------------------------------

    /// A cheap round trip (`select 1`), for readiness.
    async fn ping(&self) -> StoreResult<()>;

    /// Closes the pool; every later call fails with `Unavailable`.
    async fn close(&self);

    // ---- users ----------------------------------------------------------

    /// Inserts a user. A taken username or email is `Conflict { field }`.
    async fn create_user(&self, new: NewUser) -> StoreResult<User>;

    /// A user by id.
    async fn user_by_id(&self, id: UserId) -> StoreResult<Option<User>>;

    /// A user by username or by email (both stored lowercase; `login` is
    /// lowercased by the caller).
    async fn user_by_login(&self, login: &str) -> StoreResult<Option<User>>;

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
}
