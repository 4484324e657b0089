//! Two-factor authentication (TOTP, RFC 6238) and its recovery codes.
//!
//! Setup stores a fresh secret and shows it once; enable proves the
//! authenticator has it (one valid code) and turns 2FA on with ten
//! single-use recovery codes, stored hashed and shown once; disable needs
//! the password and a code or a recovery code. At login, a user with 2FA on
//! needs `totp_code`: a current code whose step has not been accepted
//! before (the store records the last accepted step atomically, so a code
//! seen by someone else, or sent twice, is refused), or an unused recovery
//! code. Wrong codes at login count toward the lockout like wrong
//! passwords.

use chrono::Utc;
use parley_actors::domain::UserId;
use parley_actors::store::User;
use serde_json::json;

use super::{AccountError, Accounts, Client};
use crate::auth::tokens::hash_refresh_token;
use crate::auth::totp;
use crate::telemetry;

/// How many recovery codes enabling 2FA hands out.
pub const RECOVERY_CODES: usize = 10;
/// Characters of a recovery code (two groups of five, `-` between).
const RECOVERY_ALPHABET: &[u8; 32] = b"abcdefghijkmnpqrstuvwxyz23456789";

/// What setup hands the client: shown once, never again.
#[derive(Debug, Clone)]
pub struct TotpSetup {
    /// Base32 secret, for typing into an authenticator app.
    pub secret: String,
    /// The same as an `otpauth://` URL (for a QR code).
    pub otpauth_url: String,
}

/// How a second factor was proven.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum SecondFactor {
    /// A TOTP code.
    Code,
    /// A recovery code (now spent).
    RecoveryCode,
}

/// A new recovery code: 50 random bits, `xxxxx-xxxxx`, from an alphabet
/// without look-alikes (no `l`, `o`, `0`, `1`).
fn new_recovery_code() -> String {
    let bytes: [u8; 10] = rand::random();
    let chars: String = bytes
        .iter()
        .map(|b| char::from(RECOVERY_ALPHABET[usize::from(b & 31)]))
        .collect();
    format!("{}-{}", &chars[..5], &chars[5..])
}

/// The form a recovery code is hashed in: lowercase, no separators, so
/// `ABCDE-FGHIJ`, `abcdefghij` and `abcde fghij` are one code.
fn recovery_hash(code: &str) -> String {
    let normalised: String = code
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect();
    hash_refresh_token(&format!("recovery:{normalised}"))
}

/// Whether `code` looks like a TOTP code rather than a recovery code.
fn is_totp_shaped(code: &str) -> bool {
    let code = code.trim();
    code.len() == usize::from(totp::DIGITS) && code.bytes().all(|b| b.is_ascii_digit())
}

fn now_secs() -> u64 {
    u64::try_from(Utc::now().timestamp()).unwrap_or(0)
}

impl Accounts {
    /// Starts 2FA setup: a new secret (replacing one set up but never
    /// enabled). 409 while 2FA is on.
    pub async fn totp_setup(
        &self,
        user_id: UserId,
        client: &Client,
    ) -> Result<TotpSetup, AccountError> {
        let user = self.user(user_id).await?;
        if user.two_factor_enabled {
            return Err(AccountError::TwoFactorAlreadyOn);
        }
        let secret = totp::generate_secret();
        let otpauth_url =
            totp::otpauth_url(&secret, &self.policy.totp_issuer, user.username.as_str())
                .ok_or_else(|| AccountError::internal(anyhow::anyhow!("otpauth URL not built")))?;
        if !self
            .store
            .set_totp_secret(user_id, &secret, Utc::now())
            .await?
        {
            return Err(AccountError::TwoFactorAlreadyOn);
        }
        self.audit(
            "2fa_setup",
            Some(user_id),
            Some(("user", user_id.to_string())),
            client,
            json!({}),
        )
        .await;
        Ok(TotpSetup {
            secret,
            otpauth_url,
        })
    }

    /// Turns 2FA on once `code` proves the authenticator holds the secret;
    /// returns the recovery codes (shown this once).
    pub async fn totp_enable(
        &self,
        user_id: UserId,
        code: &str,
        client: &Client,
    ) -> Result<Vec<String>, AccountError> {
        let state = self.store.totp_state(user_id).await?;
        let Some(state) = state else {
            return Err(AccountError::Unauthenticated);
        };
        if state.enabled {
            return Err(AccountError::TwoFactorAlreadyOn);
        }
        let Some(secret) = state.secret else {
            return Err(AccountError::TwoFactorNotSetUp);
        };
        let step = totp::verify(&secret, code, now_secs(), state.last_step)
            .ok_or(AccountError::InvalidTotp { login: false })?;
        let codes: Vec<String> = (0..RECOVERY_CODES).map(|_| new_recovery_code()).collect();
        let hashes: Vec<String> = codes.iter().map(|c| recovery_hash(c)).collect();
        if !self
            .store
            .enable_totp(user_id, step, &hashes, Utc::now())
            .await?
        {
            // Enabled meanwhile by another request.
            return Err(AccountError::TwoFactorAlreadyOn);
        }
        self.audit(
            "2fa_enabled",
            Some(user_id),
            Some(("user", user_id.to_string())),
            client,
            json!({"recovery_codes": RECOVERY_CODES}),
        )
        .await;
        Ok(codes)
    }

    /// Turns 2FA off: needs the password and a current code or an unused
    /// recovery code. 409 when it is off.
    pub async fn totp_disable(
        &self,
        user_id: UserId,
        password: &str,
        code: &str,
        client: &Client,
    ) -> Result<(), AccountError> {
        let user = self.user(user_id).await?;
        if !self
            .hasher
            .verify(password, Some(&user.password_hash))
            .await?
        {
            metrics::counter!(telemetry::AUTH_FAILURES, "reason" => "invalid_password")
                .increment(1);
            return Err(AccountError::InvalidPassword);
        }
        if !user.two_factor_enabled {
            return Err(AccountError::TwoFactorNotOn);
        }
        let how = self
            .check_second_factor(&user, code, client)
            .await?
            .ok_or(AccountError::InvalidTotp { login: false })?;
        self.store.disable_totp(user_id, Utc::now()).await?;
        self.audit(
            "2fa_disabled",
            Some(user_id),
            Some(("user", user_id.to_string())),
            client,
            json!({"with_recovery_code": how == SecondFactor::RecoveryCode}),
        )
        .await;
        Ok(())
    }

    /// Checks a second factor of `user` (2FA on): a TOTP code whose step is
    /// new (claimed atomically), or an unused recovery code (spent here,
    /// audited). `None`: neither.
    pub(super) async fn check_second_factor(
        &self,
        user: &User,
        code: &str,
        client: &Client,
    ) -> Result<Option<SecondFactor>, AccountError> {
        if is_totp_shaped(code) {
            let Some(state) = self.store.totp_state(user.id).await? else {
                return Ok(None);
            };
            let Some(secret) = state.secret.filter(|_| state.enabled) else {
                return Ok(None);
            };
            let Some(step) = totp::verify(&secret, code, now_secs(), state.last_step) else {
                return Ok(None);
            };
            // Two requests with the same code race here; one wins.
            let claimed = self.store.claim_totp_step(user.id, step).await?;
            return Ok(claimed.then_some(SecondFactor::Code));
        }
        // Looked up by its SHA-256: what the lookup's timing could reveal
        // is about the hash, which an attacker cannot steer, not the code.
        let hash = recovery_hash(code);
        if !self
            .store
            .use_recovery_code(user.id, &hash, Utc::now())
            .await?
        {
            return Ok(None);
        }
        let left = self.store.recovery_codes_left(user.id).await?;
        self.audit(
            "recovery_code_used",
            Some(user.id),
            Some(("user", user.id.to_string())),
            client,
            json!({"codes_left": left}),
        )
        .await;
        Ok(Some(SecondFactor::RecoveryCode))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovery_codes_are_random_readable_and_hash_in_any_spelling() {
        let code = new_recovery_code();
        assert_eq!(code.len(), 11);
        assert_eq!(&code[5..6], "-");
        assert_ne!(code, new_recovery_code());
        let hash = recovery_hash(&code);
        assert_eq!(recovery_hash(&code.to_uppercase()), hash);
        assert_eq!(recovery_hash(&code.replace('-', " ")), hash);
        assert_ne!(recovery_hash("abcde-fghij"), hash);
    }

    #[test]
    fn six_digits_are_a_totp_code_anything_else_a_recovery_code() {
        assert!(is_totp_shaped("123456"));
        assert!(is_totp_shaped(" 123456 "));
        assert!(!is_totp_shaped("12345"));
        assert!(!is_totp_shaped("abcde-fghij"));
    }
}
