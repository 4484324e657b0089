//! Email verification and password reset: one-time tokens sent by mail.
//!
//! A token is 256 random bits, mailed to the user and stored only as its
//! SHA-256, with a purpose, an expiry and a digest of the password hash at
//! the time (the *stamp*). Spending one is a single atomic update (unused,
//! unexpired, of this purpose), so it works once; a stamp that no longer
//! matches the user's password hash makes it useless after a password
//! change. Forged, spent, expired and superseded tokens all get the same
//! 400 `invalid_token`.
//!
//! A reset request answers the same for known and unknown addresses, after
//! the same work (one lookup, the limits, one audit entry): the token is
//! made and the mail sent by the mail outbox's worker, after the answer.

use chrono::Utc;
use parley_actors::domain::{Email, Password, UserId};
use parley_actors::store::{NewAccountToken, User};
use serde_json::json;
use sha2::{Digest, Sha256};

use super::{AccountError, Accounts, Client, FieldError, later};
use crate::auth::tokens::{hash_refresh_token, new_refresh_token};
use crate::mail::Mail;

/// `account_tokens.purpose` of an email verification token.
pub const VERIFY_EMAIL: &str = "verify_email";
/// `account_tokens.purpose` of a password reset token.
pub const PASSWORD_RESET: &str = "password_reset";

/// The digest of a password hash that a token is bound to.
pub(super) fn password_stamp(password_hash: &str) -> String {
    let digest = Sha256::digest(format!("stamp:{password_hash}").as_bytes());
    digest[..16].iter().map(|b| format!("{b:02x}")).collect()
}

impl Accounts {
    /// Makes a one-time token for `user` and the mail that carries it.
    /// Runs on the mail outbox's worker; a failure is logged there.
    async fn token_mail(&self, user: &User, purpose: &'static str) -> Option<Mail> {
        let token = new_refresh_token();
        let (ttl, subject, body) = match purpose {
            VERIFY_EMAIL => (
                self.policy.email_verify_ttl,
                "Confirm your email address",
                format!(
                    "Hello {name},\n\n\
                     please confirm that this address belongs to your account by sending \
                     this token to POST /api/v1/auth/email/verify (your client may do it \
                     for you):\n\n{token}\n\n\
                     It is valid for {hours} hours and works once. If you did not create \
                     an account, ignore this mail.\n",
                    name = user.username,
                    hours = self.policy.email_verify_ttl.as_secs() / 3600,
                ),
            ),
            _ => (
                self.policy.password_reset_ttl,
                "Reset your password",
                format!(
                    "Hello {name},\n\n\
                     someone asked to reset the password of your account. To choose a new \
                     one, send this token with the new password to \
                     POST /api/v1/auth/password/reset (your client may do it for you):\n\n\
                     {token}\n\n\
                     It is valid for {minutes} minutes and works once. Resetting signs \
                     you out everywhere. If you did not ask for this, ignore this mail: \
                     your password stays as it is.\n",
                    name = user.username,
                    minutes = self.policy.password_reset_ttl.as_secs() / 60,
                ),
            ),
        };
        let now = Utc::now();
        let stored = self
            .store
            .create_account_token(NewAccountToken {
                token_hash: hash_refresh_token(&token),
                user_id: user.id,
                purpose: purpose.to_owned(),
                password_stamp: password_stamp(&user.password_hash),
                created_at: now,
                expires_at: later(ttl),
            })
            .await;
        if let Err(e) = stored {
            tracing::error!(error = %e, purpose, user = %user.id, "token not stored; no mail sent");
            return None;
        }
        Some(Mail {
            to: user.email.as_str().to_owned(),
            subject: subject.to_owned(),
            body,
            kind: purpose,
        })
    }

    /// Queues a verification mail for `user` (made and sent after the
    /// caller's answer).
    pub(super) fn queue_verification_mail(&self, user: User) {
        let this = self.clone();
        self.outbox
            .send_later(async move { this.token_mail(&user, VERIFY_EMAIL).await });
    }

    /// Spends a verification token: the address is verified.
    pub async fn verify_email(&self, token: &str, client: &Client) -> Result<(), AccountError> {
        let user = self.spend_token(token, VERIFY_EMAIL).await?;
        self.store.mark_email_verified(user.id, Utc::now()).await?;
        self.audit(
            "email_verified",
            Some(user.id),
            Some(("user", user.id.to_string())),
            client,
            json!({"email": user.email.as_str()}),
        )
        .await;
        Ok(())
    }

    /// Sends a new verification mail (at most `email_resend_per_hour` per
    /// user); nothing when the address is verified already.
    pub async fn resend_verification(
        &self,
        user_id: UserId,
        client: &Client,
    ) -> Result<(), AccountError> {
        let user = self.user(user_id).await?;
        if user.email_verified {
            return Ok(());
        }
        self.resend_limit
            .check(&user_id)
            .map_err(|retry_after| AccountError::RateLimited { retry_after })?;
        self.audit(
            "email_verification_sent",
            Some(user_id),
            Some(("user", user_id.to_string())),
            client,
            json!({}),
        )
        .await;
        self.queue_verification_mail(user);
        Ok(())
    }

    /// A password reset request. The same answer and work whether or not
    /// the address is known; a known one gets a reset mail.
    pub async fn forgot_password(&self, email: &str, client: &Client) -> Result<(), AccountError> {
        let email = Email::parse(email)
            .map_err(|e| AccountError::Validation(vec![FieldError::new("email", e)]))?;
        self.forgot_limit
            .check(&email.as_str().to_owned())
            .map_err(|retry_after| AccountError::RateLimited { retry_after })?;
        let user = self
            .store
            .user_by_login(email.as_str())
            .await?
            .filter(|u| u.email == email);
        self.audit(
            "password_forgot",
            user.as_ref().map(|u| u.id),
            Some(("email", email.as_str().to_owned())),
            client,
            json!({"known": user.is_some()}),
        )
        .await;
        if let Some(user) = user {
            let this = self.clone();
            self.outbox
                .send_later(async move { this.token_mail(&user, PASSWORD_RESET).await });
        }
        Ok(())
    }

    /// Sets a new password with a reset token: every session is revoked
    /// (their sockets close), the lockout cleared, and the token spent.
    pub async fn reset_password(
        &self,
        token: &str,
        new_password: &str,
        client: &Client,
    ) -> Result<usize, AccountError> {
        // The password rules first: a refused password must not spend the
        // token.
        let new_password = Password::parse(new_password)
            .map_err(|e| AccountError::Validation(vec![FieldError::new("new_password", e)]))?;
        let user = self.spend_token(token, PASSWORD_RESET).await?;
        let hash = self.hasher.hash(new_password.expose()).await?;
        self.store
            .update_password_hash(user.id, &hash, Utc::now())
            .await?;
        let revoked = self.revoke_all_sessions(user.id, "password_reset").await?;
        self.logins
            .clear([user.username.as_str(), user.email.as_str()]);
        self.audit(
            "password_reset",
            Some(user.id),
            Some(("user", user.id.to_string())),
            client,
            json!({"revoked_sessions": revoked}),
        )
        .await;
        Ok(revoked)
    }

    /// Spends a token of `purpose`; its user, if the token was unused,
    /// unexpired and made for the password the user still has.
    async fn spend_token(&self, token: &str, purpose: &str) -> Result<User, AccountError> {
        let spent = self
            .store
            .consume_account_token(&hash_refresh_token(token.trim()), purpose, Utc::now())
            .await?;
        let Some((user_id, stamp)) = spent else {
            return Err(AccountError::InvalidOneTimeToken);
        };
        match self.store.user_by_id(user_id).await? {
            Some(user) if password_stamp(&user.password_hash) == stamp => Ok(user),
            _ => Err(AccountError::InvalidOneTimeToken),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stamp_follows_the_password_hash() {
        let a = password_stamp("$argon2id$v=19$m=19456,t=2,p=1$aaaa$bbbb");
        let b = password_stamp("$argon2id$v=19$m=19456,t=2,p=1$cccc$dddd");
        assert_eq!(a.len(), 32);
        assert_ne!(a, b);
        assert_eq!(
            a,
            password_stamp("$argon2id$v=19$m=19456,t=2,p=1$aaaa$bbbb")
        );
    }
}
