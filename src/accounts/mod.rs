//! Accounts and sessions: the rules behind `/auth/*`, `/sessions` and the
//! profile, independent of HTTP. Callers pass plain values (a user id, a
//! session id, the [`Client`] a request came from) and get an
//! [`AccountError`] back; the HTTP layer maps it to its envelope.
//!
//! Every revocation goes through [`Accounts::revoked`] after the store has
//! it, so an access token of a revoked session fails on the very next
//! request without a database read.
//!
//! - `credentials.rs`: register, login, refresh, password change;
//! - `sessions.rs`: logout, listing and revoking sessions, the profile;
//! - `profile.rs`: profile changes and settings;
//! - `error.rs`: [`AccountError`].

mod credentials;
mod email;
mod error;
mod policy;
mod profile;
mod sessions;
mod two_factor;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use parley_actors::domain::{AuditId, Role, SessionId, UserId};
use parley_actors::store::{NewAuditEntry, NewRefreshToken, NewSession, Store, User};
use serde_json::Value;

pub use self::error::{AccountError, FieldError};
pub use self::policy::Policy;
pub use self::profile::ProfileChange;
pub use self::two_factor::{RECOVERY_CODES, TotpSetup};
use crate::auth::hourly::HourlyLimit;
use crate::auth::tokens::{TokenError, hash_refresh_token, new_refresh_token};
use crate::auth::{LoginGuard, PasswordHasher, RevokedSessions, TokenKeys};
use crate::config::Settings;
use crate::mail::Outbox;
use crate::telemetry;

/// Where a request came from, for sessions and the audit log.
#[derive(Debug, Clone, Default)]
pub struct Client {
    /// The client's address, when known.
    pub ip: Option<IpAddr>,
    /// Its `User-Agent`, truncated.
    pub user_agent: Option<String>,
    /// The request id, to find the request in the logs.
    pub request_id: Option<String>,
}

/// The holder of a valid access token, as [`Accounts::authenticate`]
/// found it.
#[derive(Debug, Clone)]
pub struct Identity {
    /// The token's user.
    pub user_id: UserId,
    /// The user's name when the token was issued.
    pub username: String,
    /// The user's role when the token was issued.
    pub role: Role,
    /// The live session the token belongs to.
    pub session_id: SessionId,
}

/// Tokens handed to a client after register, login or refresh.
#[derive(Debug, Clone)]
pub struct Issued {
    pub user: User,
    pub session_id: SessionId,
    pub access_token: String,
    pub refresh_token: String,
    pub expires_in: u64,
}

/// The account service.
#[derive(Debug, Clone)]
pub struct Accounts {
    store: Arc<dyn Store>,
    hasher: PasswordHasher,
    keys: TokenKeys,
    revoked: RevokedSessions,
    /// Live sessions seen by this process: session → its user. A token's
    /// `sid` must name a live session of its `sub`; known sessions are
    /// checked in memory, unknown ones once against the store.
    live: Arc<dashmap::DashMap<SessionId, UserId>>,
    /// Failed logins per login string, known or not (see [`LoginGuard`]).
    logins: LoginGuard,
    /// The settings' account policy.
    policy: Policy,
    /// Where mail goes (sent after the request that asked for it).
    outbox: Outbox,
    /// Password reset requests per address (`password_forgot_per_address_per_hour`).
    forgot_limit: HourlyLimit<String>,
    /// Verification mails per user (`email_resend_per_hour`).
    resend_limit: HourlyLimit<UserId>,
    /// When each session was last written as used (idle policy only).
    touched: Arc<dashmap::DashMap<SessionId, std::time::Instant>>,
    refresh_ttl: Duration,
}

fn later(d: Duration) -> DateTime<Utc> {
    Utc::now() + chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

impl Accounts {
    /// Builds the service; `revoked` must already hold the store's recent
    /// revocations (see [`RevokedSessions::load`]).
    pub fn new(
        settings: &Settings,
        store: Arc<dyn Store>,
        hasher: PasswordHasher,
        keys: TokenKeys,
        revoked: RevokedSessions,
        outbox: Outbox,
    ) -> Self {
        let lockout = Duration::from_secs(settings.login_lockout_secs);
        Self {
            store,
            hasher,
            keys,
            revoked,
            live: Arc::default(),
            logins: LoginGuard::new(settings.login_max_failures, lockout),
            policy: Policy::from_settings(settings),
            outbox,
            forgot_limit: HourlyLimit::new(settings.password_forgot_per_address_per_hour),
            resend_limit: HourlyLimit::new(settings.email_resend_per_hour),
            touched: Arc::default(),
            refresh_ttl: Duration::from_secs(settings.refresh_token_ttl_secs),
        }
    }

    /// The access-token keys.
    pub fn keys(&self) -> &TokenKeys {
        &self.keys
    }

    /// The account policy in force.
    pub fn policy(&self) -> &Policy {
        &self.policy
    }

    /// The mail outbox (flushed at shutdown).
    pub fn outbox(&self) -> &Outbox {
        &self.outbox
    }

    /// A user that must exist (the caller's own account).
    async fn user(&self, id: UserId) -> Result<User, AccountError> {
        self.store
            .user_by_id(id)
            .await?
            .ok_or(AccountError::Unauthenticated)
    }

    /// The in-memory revocation view.
    pub fn revoked(&self) -> &RevokedSessions {
        &self.revoked
    }

    /// A revoked session: out of the live view, into the revoked one (which
    /// closes its sockets).
    fn forget(&self, session: SessionId) {
        self.live.remove(&session);
        self.revoked.insert(session);
    }

    /// Periodic upkeep: prune the in-memory views.
    pub fn prune(&self) {
        self.revoked.prune(self.keys.ttl());
        self.logins.prune();
        self.forgot_limit.prune();
        self.resend_limit.prune();
    }

    /// Checks an access token: signature, expiry, issuer, audience, that its
    /// session has not been revoked, and that `sid` names a live session of
    /// `sub` (defence in depth: a token forged with a leaked secret still
    /// needs a real session). Only the first request of a session this
    /// process has not seen reads the store.
    pub async fn authenticate(&self, token: &str) -> Result<Identity, AccountError> {
        let claims = self.keys.verify(token).map_err(|e| {
            let reason = match e {
                TokenError::Expired => "expired",
                TokenError::Invalid(_) => "invalid",
            };
            metrics::counter!(telemetry::AUTH_FAILURES, "reason" => reason).increment(1);
            AccountError::InvalidToken(match e {
                TokenError::Expired => "access token has expired",
                TokenError::Invalid(_) => "access token is invalid",
            })
        })?;
        let revoked = || {
            metrics::counter!(telemetry::AUTH_FAILURES, "reason" => "revoked").increment(1);
            AccountError::InvalidToken("session has been revoked")
        };
        if self.revoked.contains(&claims.sid) {
            return Err(revoked());
        }
        let owner = match self.live.get(&claims.sid).map(|u| *u) {
            Some(owner) => owner,
            None => match self.store.session_by_id(claims.sid).await? {
                Some(s) if s.revoked_at.is_none() => {
                    self.live.insert(s.id, s.user_id);
                    s.user_id
                }
                _ => return Err(revoked()),
            },
        };
        if owner != claims.sub {
            metrics::counter!(telemetry::AUTH_FAILURES, "reason" => "invalid").increment(1);
            return Err(AccountError::InvalidToken("access token is invalid"));
        }
        self.touch(claims.sid).await;
        Ok(Identity {
            user_id: claims.sub,
            username: claims.username,
            role: claims.role,
            session_id: claims.sid,
        })
    }

    async fn audit(
        &self,
        action: &str,
        actor: Option<UserId>,
        target: Option<(&str, String)>,
        client: &Client,
        details: Value,
    ) {
        let (target_type, target_id) =
            target.map_or((None, None), |(t, id)| (Some(t.to_owned()), Some(id)));
        let entry = NewAuditEntry {
            id: AuditId::new(),
            at: Utc::now(),
            actor_id: actor,
            action: action.to_owned(),
            target_type,
            target_id,
            ip: client.ip,
            user_agent: client.user_agent.clone(),
            request_id: client.request_id.clone(),
            details,
        };
        if let Err(e) = self.store.create_audit_entry(entry).await {
            tracing::error!(error = %e, action, "could not write audit entry");
        }
    }

    /// Records a user's action on another user (a report) in the audit log.
    pub async fn audit_user_action(
        &self,
        action: &str,
        actor: UserId,
        target: (&str, String),
        client: &Client,
        details: Value,
    ) {
        self.audit(action, Some(actor), Some(target), client, details)
            .await;
    }

    /// Records an admin action on `target` (`(kind, id)`, e.g. `("user",
    /// id)`) in the audit log.
    pub async fn audit_admin(
        &self,
        action: &str,
        admin: UserId,
        target: (&str, String),
        client: &Client,
        details: Value,
    ) {
        self.audit(action, Some(admin), Some(target), client, details)
            .await;
    }

    async fn open_session(&self, user: User, client: &Client) -> Result<Issued, AccountError> {
        self.make_room_for_a_session(user.id, client).await?;
        let now = Utc::now();
        let session_id = SessionId::new();
        let refresh_token = new_refresh_token();
        self.store
            .create_session(
                NewSession {
                    id: session_id,
                    user_id: user.id,
                    user_agent: client.user_agent.clone(),
                    ip: client.ip,
                    created_at: now,
                },
                NewRefreshToken {
                    token_hash: hash_refresh_token(&refresh_token),
                    session_id,
                    created_at: now,
                    expires_at: later(self.refresh_ttl),
                },
            )
            .await?;
        self.live.insert(session_id, user.id);
        self.issue(user, session_id, refresh_token)
    }

    fn issue(
        &self,
        user: User,
        session_id: SessionId,
        refresh_token: String,
    ) -> Result<Issued, AccountError> {
        let access_token = self
            .keys
            .issue(user.id, user.username.as_str(), user.role, session_id)
            .map_err(|e| AccountError::internal(anyhow::anyhow!("{e}")))?;
        Ok(Issued {
            user,
            session_id,
            access_token,
            refresh_token,
            expires_in: self.keys.ttl().as_secs(),
        })
    }
}
