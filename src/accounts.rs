//! Accounts and sessions: the rules behind `/auth/*`, `/sessions` and the
//! profile, independent of HTTP.
//!
//! Every revocation goes through [`Accounts::revoked`] after the store has
//! it, so an access token of a revoked session fails on the very next
//! request without a database read.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use parley_actors::domain::{
    AuditId, Email, Password, Role, SessionId, UserId, UserStatus, Username,
};
use parley_actors::store::{
    NewAuditEntry, NewRefreshToken, NewSession, NewUser, RefreshOutcome, Session, Store, User,
};
use serde_json::{Value, json};

use crate::auth::lockout::Failure;
use crate::auth::tokens::{TokenError, hash_refresh_token, new_refresh_token};
use crate::auth::{LoginGuard, PasswordHasher, RevokedSessions, TokenKeys};
use crate::config::Settings;
use crate::http::error::ApiError;
use crate::http::extract::{AuthUser, ClientInfo};
use crate::telemetry;

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
    ) -> Self {
        let lockout = Duration::from_secs(settings.login_lockout_secs);
        Self {
            store,
            hasher,
            keys,
            revoked,
            live: Arc::default(),
            logins: LoginGuard::new(settings.login_max_failures, lockout),
            refresh_ttl: Duration::from_secs(settings.refresh_token_ttl_secs),
        }
    }

    /// The access-token keys.
    pub fn keys(&self) -> &TokenKeys {
        &self.keys
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
    }

    /// Checks an access token: signature, expiry, issuer, audience, that its
    /// session has not been revoked, and that `sid` names a live session of
    /// `sub` (defence in depth: a token forged with a leaked secret still
    /// needs a real session). Only the first request of a session this
    /// process has not seen reads the store.
    pub async fn authenticate(&self, token: &str) -> Result<AuthUser, ApiError> {
        let claims = self.keys.verify(token).map_err(|e| {
            let reason = match e {
                TokenError::Expired => "expired",
                TokenError::Invalid(_) => "invalid",
            };
            metrics::counter!(telemetry::AUTH_FAILURES, "reason" => reason).increment(1);
            ApiError::InvalidToken(match e {
                TokenError::Expired => "access token has expired",
                TokenError::Invalid(_) => "access token is invalid",
            })
        })?;
        let revoked = || {
            metrics::counter!(telemetry::AUTH_FAILURES, "reason" => "revoked").increment(1);
            ApiError::InvalidToken("session has been revoked")
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
            return Err(ApiError::InvalidToken("access token is invalid"));
        }
        Ok(AuthUser {
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
        client: &ClientInfo,
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

    async fn open_session(&self, user: User, client: &ClientInfo) -> Result<Issued, ApiError> {
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
    ) -> Result<Issued, ApiError> {
        let access_token = self
            .keys
            .issue(user.id, user.username.as_str(), user.role, session_id)
            .map_err(|e| ApiError::internal(anyhow::anyhow!("{e}")))?;
        Ok(Issued {
            user,
            session_id,
            access_token,
            refresh_token,
            expires_in: self.keys.ttl().as_secs(),
        })
    }

    /// Creates an account (validating every field at once) and its first
    /// session.
    pub async fn register(
        &self,
        username: &str,
        email: &str,
        password: &str,
        client: &ClientInfo,
    ) -> Result<Issued, ApiError> {
        let mut fields = serde_json::Map::new();
        let mut check = |field: &str, result: Result<(), parley_actors::domain::Invalid>| {
            if let Err(e) = result {
                fields.insert(
                    field.to_owned(),
                    json!({"code": e.code, "message": e.message}),
                );
            }
        };
        let username_v = Username::parse(username);
        let email_v = Email::parse(email);
        let password_v = Password::parse(password);
        check(
            "username",
            username_v.as_ref().map(|_| ()).map_err(Clone::clone),
        );
        check("email", email_v.as_ref().map(|_| ()).map_err(Clone::clone));
        check(
            "password",
            password_v.as_ref().map(|_| ()).map_err(Clone::clone),
        );
        let (Ok(username), Ok(email), Ok(password)) = (username_v, email_v, password_v) else {
            return Err(ApiError::Validation { fields });
        };
        let user = self
            .create_user(username, email, &password, Role::User)
            .await?;
        self.audit(
            "register",
            Some(user.id),
            Some(("user", user.id.to_string())),
            client,
            json!({}),
        )
        .await;
        self.open_session(user, client).await
    }

    /// Creates an account without a session (the CLI's `user create`).
    pub async fn create_user(
        &self,
        username: Username,
        email: Email,
        password: &Password,
        role: Role,
    ) -> Result<User, ApiError> {
        let password_hash = self.hasher.hash(password.expose()).await?;
        Ok(self
            .store
            .create_user(NewUser {
                id: UserId::new(),
                username,
                email,
                password_hash,
                role,
                created_at: Utc::now(),
            })
            .await?)
    }

    /// Logs in by username or email.
    ///
    /// Failures count per login string whether or not it names an account
    /// (see [`LoginGuard`]), so a known and an unknown login fail, lock and
    /// unlock alike.
    pub async fn login(
        &self,
        login: &str,
        password: &str,
        client: &ClientInfo,
    ) -> Result<Issued, ApiError> {
        let login = login.trim().to_lowercase();
        if let Some(left) = self.logins.locked_for(&login) {
            metrics::counter!(telemetry::AUTH_FAILURES, "reason" => "locked").increment(1);
            return Err(ApiError::AccountLocked { retry_after: left });
        }
        let user = self.store.user_by_login(&login).await?;
        // The same hashing work either way, so timing does not tell.
        let verified = self
            .hasher
            .verify(password, user.as_ref().map(|u| u.password_hash.as_str()))
            .await?;
        let user = match user {
            Some(user) if verified => user,
            user => {
                self.login_failed(&login, user.as_ref(), client).await;
                return Err(ApiError::InvalidCredentials);
            }
        };
        match user.status {
            UserStatus::Active => {}
            UserStatus::Suspended => return Err(ApiError::AccountSuspended),
            UserStatus::Banned => return Err(ApiError::AccountBanned),
        }
        self.logins
            .clear([user.username.as_str(), user.email.as_str(), login.as_str()]);
        self.audit(
            "login",
            Some(user.id),
            Some(("user", user.id.to_string())),
            client,
            json!({}),
        )
        .await;
        self.open_session(user, client).await
    }

    /// Counts a failed login (wrong password or second factor) against the
    /// login string, and audits it (and the lockout it may cause).
    async fn login_failed(&self, login: &str, user: Option<&User>, client: &ClientInfo) {
        metrics::counter!(telemetry::AUTH_FAILURES, "reason" => "invalid_credentials").increment(1);
        let target = match user {
            Some(user) => ("user", user.id.to_string()),
            None => ("login", login.to_owned()),
        };
        let locked = self.logins.record_failure(login);
        self.audit(
            "login_failed",
            None,
            Some((target.0, target.1.clone())),
            client,
            json!({}),
        )
        .await;
        if let Failure::Locked(_) = locked {
            metrics::counter!(telemetry::LOCKOUTS).increment(1);
            let until = later(self.logins.lockout());
            self.audit(
                "lockout",
                None,
                Some(target),
                client,
                json!({"locked_until": until.to_rfc3339(), "login": login}),
            )
            .await;
        }
    }

    /// Spends a refresh token for a new pair. A token presented twice
    /// revokes its whole session.
    pub async fn refresh(
        &self,
        refresh_token: &str,
        client: &ClientInfo,
    ) -> Result<Issued, ApiError> {
        let now = Utc::now();
        let replacement = new_refresh_token();
        let outcome = self
            .store
            .rotate_refresh_token(
                &hash_refresh_token(refresh_token),
                NewRefreshToken {
                    token_hash: hash_refresh_token(&replacement),
                    // Ignored by the store: the token's own session is used.
                    session_id: SessionId::new(),
                    created_at: now,
                    expires_at: later(self.refresh_ttl),
                },
                now,
            )
            .await?;
        match outcome {
            RefreshOutcome::Rotated { session } => {
                let user = self
                    .store
                    .user_by_id(session.user_id)
                    .await?
                    .ok_or(ApiError::InvalidRefreshToken)?;
                if user.status != UserStatus::Active {
                    self.revoke(session.id, "suspended").await?;
                    return Err(match user.status {
                        UserStatus::Banned => ApiError::AccountBanned,
                        _ => ApiError::AccountSuspended,
                    });
                }
                self.issue(user, session.id, replacement)
            }
            RefreshOutcome::Reused {
                session_id,
                user_id,
            } => {
                self.forget(session_id);
                metrics::counter!(telemetry::AUTH_FAILURES, "reason" => "refresh_reuse")
                    .increment(1);
                tracing::warn!(%session_id, %user_id, "refresh token reused; session revoked");
                self.audit(
                    "refresh_reuse",
                    Some(user_id),
                    Some(("session", session_id.to_string())),
                    client,
                    json!({"reason": "a spent refresh token was presented again"}),
                )
                .await;
                Err(ApiError::InvalidRefreshToken)
            }
            RefreshOutcome::Dead | RefreshOutcome::Unknown => {
                metrics::counter!(telemetry::AUTH_FAILURES, "reason" => "invalid_refresh_token")
                    .increment(1);
                Err(ApiError::InvalidRefreshToken)
            }
        }
    }

    async fn revoke(&self, session: SessionId, reason: &str) -> Result<bool, ApiError> {
        let revoked = self
            .store
            .revoke_session(session, reason, Utc::now())
            .await?;
        self.forget(session);
        Ok(revoked)
    }

    /// Ends the caller's session.
    pub async fn logout(&self, auth: &AuthUser, client: &ClientInfo) -> Result<(), ApiError> {
        self.revoke(auth.session_id, "logout").await?;
        self.audit(
            "logout",
            Some(auth.user_id),
            Some(("session", auth.session_id.to_string())),
            client,
            json!({}),
        )
        .await;
        Ok(())
    }

    /// Changes the password and revokes every other session; returns how
    /// many were revoked.
    pub async fn change_password(
        &self,
        auth: &AuthUser,
        current: &str,
        new: &str,
        client: &ClientInfo,
    ) -> Result<usize, ApiError> {
        // The current password first: only its holder learns whether the new
        // one would pass the rules.
        let user = self
            .store
            .user_by_id(auth.user_id)
            .await?
            .ok_or(ApiError::Unauthenticated)?;
        if !self
            .hasher
            .verify(current, Some(&user.password_hash))
            .await?
        {
            metrics::counter!(telemetry::AUTH_FAILURES, "reason" => "invalid_password")
                .increment(1);
            return Err(ApiError::InvalidPassword);
        }
        let new =
            Password::parse(new).map_err(|e| ApiError::field("new_password", e.code, e.message))?;

        let hash = self.hasher.hash(new.expose()).await?;
        self.store
            .update_password_hash(user.id, &hash, Utc::now())
            .await?;
        let revoked = self.revoke_others(auth, "password_change").await?;
        self.audit(
            "password_change",
            Some(user.id),
            Some(("user", user.id.to_string())),
            client,
            json!({"revoked_sessions": revoked}),
        )
        .await;
        Ok(revoked)
    }

    async fn revoke_others(&self, auth: &AuthUser, reason: &str) -> Result<usize, ApiError> {
        let ids = self
            .store
            .revoke_user_sessions(auth.user_id, Some(auth.session_id), reason, Utc::now())
            .await?;
        for id in &ids {
            self.forget(*id);
        }
        Ok(ids.len())
    }

    /// Revokes every session of a user (suspension, ban); returns how many.
    pub async fn revoke_all_sessions(&self, user: UserId, reason: &str) -> Result<usize, ApiError> {
        let ids = self
            .store
            .revoke_user_sessions(user, None, reason, Utc::now())
            .await?;
        for id in &ids {
            self.forget(*id);
        }
        Ok(ids.len())
    }

    /// Records an admin action in the audit log.
    pub async fn audit_admin(
        &self,
        action: &str,
        admin: UserId,
        target: UserId,
        client: &ClientInfo,
        details: Value,
    ) {
        self.audit(
            action,
            Some(admin),
            Some(("user", target.to_string())),
            client,
            details,
        )
        .await;
    }

    /// The caller's live sessions, newest first.
    pub async fn sessions(
        &self,
        auth: &AuthUser,
        after: Option<SessionId>,
        limit: u32,
    ) -> Result<Vec<Session>, ApiError> {
        Ok(self
            .store
            .list_live_sessions(auth.user_id, after, limit)
            .await?)
    }

    /// Revokes one of the caller's sessions (404 when it is not theirs).
    pub async fn revoke_session(
        &self,
        auth: &AuthUser,
        session: SessionId,
        client: &ClientInfo,
    ) -> Result<(), ApiError> {
        let found = self.store.session_by_id(session).await?;
        match found {
            Some(s) if s.user_id == auth.user_id && s.revoked_at.is_none() => {}
            _ => return Err(ApiError::NotFound),
        }
        self.revoke(session, "revoked").await?;
        self.audit(
            "session_revoke",
            Some(auth.user_id),
            Some(("session", session.to_string())),
            client,
            json!({}),
        )
        .await;
        Ok(())
    }

    /// Revokes every session of the caller but the current one.
    pub async fn revoke_other_sessions(
        &self,
        auth: &AuthUser,
        client: &ClientInfo,
    ) -> Result<usize, ApiError> {
        let revoked = self.revoke_others(auth, "revoked").await?;
        self.audit(
            "session_revoke",
            Some(auth.user_id),
            Some(("user", auth.user_id.to_string())),
            client,
            json!({"revoked_sessions": revoked, "all_but_current": true}),
        )
        .await;
        Ok(revoked)
    }

    /// The caller's own account.
    pub async fn profile(&self, auth: &AuthUser) -> Result<User, ApiError> {
        self.store
            .user_by_id(auth.user_id)
            .await?
            .ok_or(ApiError::NotFound)
    }
}
