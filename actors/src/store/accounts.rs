//! The account-side records: users, sessions and refresh tokens, two-factor
//! state, mailed tokens, the audit log, reports, and the admin views.

use std::net::IpAddr;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::domain::{
    AuditId, Email, MessageId, ReportId, ReportReason, Role, SessionId, UserId, UserStatus,
    Username,
};

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
