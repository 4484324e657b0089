//! Credentials: creating accounts, logging in, refreshing tokens and
//! changing the password.

use chrono::Utc;
use parley_actors::domain::{Email, Password, Role, SessionId, UserId, UserStatus, Username};
use parley_actors::store::{NewRefreshToken, NewUser, RefreshOutcome, User};
use serde_json::json;

use super::{AccountError, Accounts, Client, FieldError, Issued, later};
use crate::auth::lockout::Failure;
use crate::auth::tokens::{hash_refresh_token, new_refresh_token};
use crate::telemetry;

impl Accounts {
    /// Creates an account (validating every field at once) and its first
    /// session.
    pub async fn register(
        &self,
        username: &str,
        email: &str,
        password: &str,
        client: &Client,
    ) -> Result<Issued, AccountError> {
        let username = Username::parse(username);
        let email = Email::parse(email);
        let password = Password::parse(password);
        let (username, email, password) = match (username, email, password) {
            (Ok(username), Ok(email), Ok(password)) => (username, email, password),
            (username, email, password) => {
                let fields = [
                    ("username", username.err()),
                    ("email", email.err()),
                    ("password", password.err()),
                ]
                .into_iter()
                .filter_map(|(field, e)| e.map(|e| FieldError::new(field, e)))
                .collect();
                return Err(AccountError::Validation(fields));
            }
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
        self.queue_verification_mail(user.clone());
        self.open_session(user, client).await
    }

    /// Creates an account without a session (the CLI's `user create`).
    pub async fn create_user(
        &self,
        username: Username,
        email: Email,
        password: &Password,
        role: Role,
    ) -> Result<User, AccountError> {
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

    /// Logs in by username or email, with the second factor when the
    /// account has 2FA on.
    ///
    /// Failures (wrong password, wrong second factor) count per login
    /// string whether or not it names an account (see [`LoginGuard`]), so a
    /// known and an unknown login fail, lock and unlock alike.
    ///
    /// [`LoginGuard`]: crate::auth::LoginGuard
    pub async fn login(
        &self,
        login: &str,
        password: &str,
        totp_code: Option<&str>,
        client: &Client,
    ) -> Result<Issued, AccountError> {
        let login = login.trim().to_lowercase();
        if let Some(left) = self.logins.locked_for(&login) {
            metrics::counter!(telemetry::AUTH_FAILURES, "reason" => "locked").increment(1);
            return Err(AccountError::AccountLocked { retry_after: left });
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
                return Err(AccountError::InvalidCredentials);
            }
        };
        match user.status {
            UserStatus::Active => {}
            UserStatus::Suspended => return Err(AccountError::AccountSuspended),
            UserStatus::Banned => return Err(AccountError::AccountBanned),
        }
        if user.two_factor_enabled {
            let Some(code) = totp_code.map(str::trim).filter(|c| !c.is_empty()) else {
                metrics::counter!(telemetry::AUTH_FAILURES, "reason" => "totp_required")
                    .increment(1);
                return Err(AccountError::TotpRequired);
            };
            if self
                .check_second_factor(&user, code, client)
                .await?
                .is_none()
            {
                self.login_failed(&login, Some(&user), client).await;
                return Err(AccountError::InvalidTotp { login: true });
            }
        }
        if self.policy.require_verified_email && !user.email_verified {
            metrics::counter!(telemetry::AUTH_FAILURES, "reason" => "email_not_verified")
                .increment(1);
            return Err(AccountError::EmailNotVerified);
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
    async fn login_failed(&self, login: &str, user: Option<&User>, client: &Client) {
        metrics::counter!(telemetry::AUTH_FAILURES, "reason" => "invalid_credentials").increment(1);
        let target = match user {
            Some(user) => ("user", user.id.to_string()),
            None => ("login", login.to_owned()),
        };
        let failure = self.logins.record_failure(login);
        self.audit(
            "login_failed",
            None,
            Some((target.0, target.1.clone())),
            client,
            json!({}),
        )
        .await;
        if let Failure::Locked(_) = failure {
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
        client: &Client,
    ) -> Result<Issued, AccountError> {
        let now = Utc::now();
        let token_hash = hash_refresh_token(refresh_token);
        if self.policy.session_idle.is_some() && self.refresh_of_idle_session(&token_hash).await? {
            metrics::counter!(telemetry::AUTH_FAILURES, "reason" => "idle_session").increment(1);
            return Err(AccountError::InvalidRefreshToken);
        }
        let replacement = new_refresh_token();
        let outcome = self
            .store
            .rotate_refresh_token(
                &token_hash,
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
                    .ok_or(AccountError::InvalidRefreshToken)?;
                if user.status != UserStatus::Active {
                    self.revoke(session.id, "suspended").await?;
                    return Err(match user.status {
                        UserStatus::Banned => AccountError::AccountBanned,
                        _ => AccountError::AccountSuspended,
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
                Err(AccountError::InvalidRefreshToken)
            }
            RefreshOutcome::Dead | RefreshOutcome::Unknown => {
                metrics::counter!(telemetry::AUTH_FAILURES, "reason" => "invalid_refresh_token")
                    .increment(1);
                Err(AccountError::InvalidRefreshToken)
            }
        }
    }

    /// Changes the password of `user` and revokes every session of theirs
    /// but `current`; returns how many were revoked.
    pub async fn change_password(
        &self,
        user: UserId,
        current: SessionId,
        current_password: &str,
        new_password: &str,
        client: &Client,
    ) -> Result<usize, AccountError> {
        // The current password first: only its holder learns whether the new
        // one would pass the rules.
        let user = self
            .store
            .user_by_id(user)
            .await?
            .ok_or(AccountError::Unauthenticated)?;
        if !self
            .hasher
            .verify(current_password, Some(&user.password_hash))
            .await?
        {
            metrics::counter!(telemetry::AUTH_FAILURES, "reason" => "invalid_password")
                .increment(1);
            return Err(AccountError::InvalidPassword);
        }
        let new = Password::parse(new_password)
            .map_err(|e| AccountError::Validation(vec![FieldError::new("new_password", e)]))?;

        let hash = self.hasher.hash(new.expose()).await?;
        self.store
            .update_password_hash(user.id, &hash, Utc::now())
            .await?;
        let revoked = self
            .revoke_others(user.id, current, "password_change")
            .await?;
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
}
