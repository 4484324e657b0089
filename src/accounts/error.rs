//! What can go wrong in an account operation. The HTTP layer turns each
//! variant into its status and code in one place
//! (`impl From<AccountError> for ApiError` in `http::error`); the status
//! each variant maps to is named in its doc.

use std::time::Duration;

use parley_actors::domain::Invalid;
use parley_actors::store::StoreError;

use crate::auth::passwords::HashError;

/// One field that failed validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// Public field name (`username`, `new_password` …).
    pub field: &'static str,
    /// snake_case code from the domain's validation.
    pub code: &'static str,
    /// Human sentence.
    pub message: String,
}

impl FieldError {
    /// A field's validation failure.
    pub fn new(field: &'static str, invalid: Invalid) -> Self {
        Self {
            field,
            code: invalid.code,
            message: invalid.message,
        }
    }
}

/// An account operation that did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    /// 401 `invalid_token`: the access token is malformed, expired, revoked
    /// or names a session that is not its user's. The text says which.
    #[error("{0}")]
    InvalidToken(&'static str),
    /// 401 `unauthenticated`: the caller's account no longer exists.
    #[error("authentication required")]
    Unauthenticated,
    /// 401 `invalid_credentials`: wrong login or password (the same answer
    /// whether the user exists).
    #[error("invalid login or password")]
    InvalidCredentials,
    /// 401 `invalid_refresh_token`: unknown, spent, expired or revoked.
    #[error("refresh token is invalid or has been used")]
    InvalidRefreshToken,
    /// 403 `invalid_password`: the current password given for a sensitive
    /// change is wrong.
    #[error("current password is incorrect")]
    InvalidPassword,
    /// 401 `totp_required`: the password is right and the account has 2FA
    /// on, but no `totp_code` came with it.
    #[error("this account needs a two-factor code")]
    TotpRequired,
    /// `invalid_totp`: the code is wrong, or its step (or the recovery
    /// code) was used before. 401 at login, 403 on the 2FA routes (the
    /// caller is signed in; the code is what is wrong).
    #[error("the two-factor code is invalid")]
    InvalidTotp {
        /// Whether this was a login (401) rather than a signed-in request (403).
        login: bool,
    },
    /// 403 `email_not_verified`: `require_verified_email` is on and the
    /// address is not verified yet.
    #[error("verify your email address before signing in")]
    EmailNotVerified,
    /// 409 `conflict`: 2FA is already on.
    #[error("two-factor authentication is already on")]
    TwoFactorAlreadyOn,
    /// 409 `conflict`: 2FA enable before setup.
    #[error("set up two-factor authentication first")]
    TwoFactorNotSetUp,
    /// 409 `conflict`: 2FA is off.
    #[error("two-factor authentication is not on")]
    TwoFactorNotOn,
    /// 400 `invalid_token`: a mailed token (verification, reset) that is
    /// unknown, used, expired or superseded by a password change.
    #[error("the token is invalid, used or expired")]
    InvalidOneTimeToken,
    /// 429 `rate_limited`: a per-address or per-user hourly limit.
    #[error("too many requests; slow down")]
    RateLimited {
        /// Time until the next request is allowed.
        retry_after: Duration,
    },
    /// 403 `account_suspended`.
    #[error("this account is suspended")]
    AccountSuspended,
    /// 403 `account_banned`.
    #[error("this account is banned")]
    AccountBanned,
    /// 404 `not_found`: no such session or account of the caller's.
    #[error("not found")]
    NotFound,
    /// 409 `conflict`: a unique value (username, email) is taken.
    #[error("{field} is already taken")]
    Conflict {
        /// Public field name.
        field: &'static str,
    },
    /// 422 `validation_failed`: every field that failed, at once.
    #[error("validation failed")]
    Validation(Vec<FieldError>),
    /// 423 `account_locked`: too many failed logins; `Retry-After` says
    /// when to try again.
    #[error("account locked after too many failed logins; try again later")]
    AccountLocked {
        /// Time until the lock lifts.
        retry_after: Duration,
    },
    /// 500 `internal`: storage, hashing or signing failed. The cause is
    /// logged, never shown.
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl AccountError {
    /// A 500 from any error.
    pub fn internal(e: impl Into<anyhow::Error>) -> Self {
        Self::Internal(e.into())
    }
}

impl From<StoreError> for AccountError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict { field } => Self::Conflict { field },
            other => Self::internal(other),
        }
    }
}

impl From<HashError> for AccountError {
    fn from(e: HashError) -> Self {
        Self::internal(e)
    }
}
