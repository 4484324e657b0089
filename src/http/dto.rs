//! Response bodies shared by several resources, with their OpenAPI schemas.

use chrono::{DateTime, SecondsFormat, Utc};
use parley_actors::store::User;
use serde::Serialize;
use utoipa::ToSchema;

use crate::accounts::Issued;

/// RFC 3339 UTC with milliseconds, as every time on the wire.
pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// My profile (`GET /users/profile`), also inside token responses.
#[derive(Debug, Serialize, ToSchema)]
pub struct Profile {
    #[schema(format = Uuid)]
    pub id: String,
    pub username: String,
    pub email: String,
    /// Whether the address has been verified (a verification mail's token
    /// was spent).
    pub email_verified: bool,
    pub display_name: Option<String>,
    pub bio: Option<String>,
    pub avatar_url: Option<String>,
    /// `user`, `moderator` or `admin`.
    pub role: String,
    /// `active`, `suspended` or `banned`.
    pub status: String,
    #[schema(format = DateTime)]
    pub created_at: String,
    pub two_factor_enabled: bool,
}

impl From<User> for Profile {
    fn from(u: User) -> Self {
        Self {
            id: u.id.to_string(),
            username: u.username.to_string(),
            email: u.email.to_string(),
            email_verified: u.email_verified,
            display_name: u.display_name,
            bio: u.bio,
            avatar_url: u.avatar_url,
            role: u.role.to_string(),
            status: u.status.to_string(),
            created_at: rfc3339(u.created_at),
            two_factor_enabled: u.two_factor_enabled,
        }
    }
}

/// Tokens for a new or refreshed session.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenResponse {
    pub user: Profile,
    /// JWT (HS256) for `Authorization: Bearer`.
    pub access_token: String,
    /// Opaque; spend it once at `/auth/refresh`.
    pub refresh_token: String,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    /// Always `Bearer`.
    pub token_type: &'static str,
    /// The session these tokens belong to (the `sid` claim).
    #[schema(format = Uuid)]
    pub session_id: String,
}

impl From<Issued> for TokenResponse {
    fn from(i: Issued) -> Self {
        Self {
            user: i.user.into(),
            access_token: i.access_token,
            refresh_token: i.refresh_token,
            expires_in: i.expires_in,
            token_type: "Bearer",
            session_id: i.session_id.to_string(),
        }
    }
}

/// The contract's error envelope (documentation only; see `error.rs`).
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorEnvelope {
    pub error: ErrorDetail,
    pub request_id: String,
}

/// The inside of the error envelope.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// snake_case code, e.g. `validation_failed`.
    pub code: String,
    /// Human sentence.
    pub message: String,
    /// Structured details, e.g. `{"fields": {"password": {"code", "message"}}}`.
    #[schema(value_type = Option<Object>)]
    pub details: Option<serde_json::Value>,
}

/// How many sessions an operation revoked.
#[derive(Debug, Serialize, ToSchema)]
pub struct RevokedCount {
    pub revoked_sessions: usize,
}
