//! The error type of the HTTP layer and the contract's error envelope.
//!
//! Handlers return `ApiError`. Its `IntoResponse` sets the status and
//! attaches an [`ErrorBody`] extension; the [`envelope`] middleware, which
//! knows the request id, renders every error response — ours, axum's own
//! rejections, the router's 404/405 and tower-http's layers alike — as
//! `{"error": {"code", "message", "details"?}, "request_id"}`.

use std::time::Duration;

use axum::Json;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use parley_actors::store::StoreError;
use serde_json::{Value, json};

use crate::accounts::AccountError;

/// One error a client can see. Each variant's doc names its status.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the body is not valid JSON (or otherwise unreadable).
    #[error("{0}")]
    Malformed(String),
    /// 401: no credentials were presented.
    #[error("authentication required")]
    Unauthenticated,
    /// 401: the access token is malformed, expired or revoked.
    #[error("{0}")]
    InvalidToken(&'static str),
    /// 401: wrong login or password (same answer whether the user exists).
    #[error("invalid login or password")]
    InvalidCredentials,
    /// 401: the refresh token is unknown, spent, expired or revoked.
    #[error("refresh token is invalid or has been used")]
    InvalidRefreshToken,
    /// 403: the current password given for a sensitive change is wrong.
    #[error("current password is incorrect")]
    InvalidPassword,
    /// 403: not allowed.
    #[error("{0}")]
    Forbidden(&'static str),
    /// 401 `totp_required`: 2FA is on and no code was given.
    #[error("this account needs a two-factor code")]
    TotpRequired,
    /// 401 or 403 `invalid_totp`: a wrong or reused second factor (401 at
    /// login, 403 on signed-in requests).
    #[error("the two-factor code is invalid")]
    InvalidTotp(StatusCode),
    /// 403 `email_not_verified`.
    #[error("verify your email address before signing in")]
    EmailNotVerified,
    /// 403 `two_factor_required`: `admin_require_2fa` is on and this admin
    /// has no 2FA.
    #[error("turn on two-factor authentication to use the admin routes")]
    TwoFactorRequired,
    /// 400 `invalid_token`: a mailed one-time token that is unknown, used,
    /// expired or superseded.
    #[error("the token is invalid, used or expired")]
    InvalidOneTimeToken,
    /// 403: the account is suspended.
    #[error("this account is suspended")]
    AccountSuspended,
    /// 403: the account is banned.
    #[error("this account is banned")]
    AccountBanned,
    /// 404: no such thing, or not one the caller may know of.
    #[error("not found")]
    NotFound,
    /// 409: a unique value is taken; names the field.
    #[error("{field} is already taken")]
    Conflict {
        /// Public field name.
        field: &'static str,
    },
    /// 409: the state does not allow it (already a member, invite pending …).
    #[error("{0}")]
    ConflictWith(&'static str),
    /// 409 `last_admin`: the change would leave no active admin.
    #[error("the last active admin cannot be demoted, suspended or banned")]
    LastAdmin,
    /// 413: the body is larger than allowed.
    #[error("request body is too large")]
    PayloadTooLarge,
    /// 415: the body is not `application/json`.
    #[error("expected content type application/json")]
    UnsupportedMediaType,
    /// 422: fields failed validation; `fields` maps each to `{code, message}`.
    #[error("validation failed")]
    Validation {
        /// `{field: {code, message}}`.
        fields: serde_json::Map<String, Value>,
    },
    /// 423: too many failed logins.
    #[error("account locked after too many failed logins; try again later")]
    AccountLocked {
        /// Time until the lock lifts.
        retry_after: Duration,
    },
    /// 429: a rate limit was hit.
    #[error("too many requests; slow down")]
    RateLimited {
        /// Time until the next request is allowed.
        retry_after: Duration,
    },
    /// 503: temporarily unavailable (connection cap, an actor not answering).
    #[error("{0}")]
    Unavailable(&'static str),
    /// 503: a dependency is down (readiness).
    #[error("{message}")]
    NotReady {
        /// Sentence for the operator.
        message: String,
        /// Per-component checks.
        checks: Value,
    },
    /// 500: anything unexpected. The cause is logged, never shown.
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl ApiError {
    /// A 422 naming one field.
    pub fn field(field: &str, code: &str, message: impl Into<String>) -> Self {
        let mut fields = serde_json::Map::new();
        fields.insert(
            field.to_owned(),
            json!({"code": code, "message": message.into()}),
        );
        Self::Validation { fields }
    }

    /// A 500 from any error.
    pub fn internal(e: impl Into<anyhow::Error>) -> Self {
        Self::Internal(e.into())
    }

    fn status_code_details(&self) -> (StatusCode, &'static str, Option<Value>) {
        use ApiError::*;
        match self {
            Malformed(_) => (StatusCode::BAD_REQUEST, "malformed_json", None),
            Unauthenticated => (StatusCode::UNAUTHORIZED, "unauthenticated", None),
            InvalidToken(_) => (StatusCode::UNAUTHORIZED, "invalid_token", None),
            InvalidCredentials => (StatusCode::UNAUTHORIZED, "invalid_credentials", None),
            InvalidRefreshToken => (StatusCode::UNAUTHORIZED, "invalid_refresh_token", None),
            InvalidPassword => (StatusCode::FORBIDDEN, "invalid_password", None),
            TotpRequired => (StatusCode::UNAUTHORIZED, "totp_required", None),
            InvalidTotp(status) => (*status, "invalid_totp", None),
            EmailNotVerified => (StatusCode::FORBIDDEN, "email_not_verified", None),
            TwoFactorRequired => (StatusCode::FORBIDDEN, "two_factor_required", None),
            InvalidOneTimeToken => (StatusCode::BAD_REQUEST, "invalid_token", None),
            Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden", None),
            Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable", None),
            AccountSuspended => (StatusCode::FORBIDDEN, "account_suspended", None),
            AccountBanned => (StatusCode::FORBIDDEN, "account_banned", None),
            NotFound => (StatusCode::NOT_FOUND, "not_found", None),
            Conflict { field } => (
                StatusCode::CONFLICT,
                "conflict",
                Some(json!({ "field": field })),
            ),
            ConflictWith(_) => (StatusCode::CONFLICT, "conflict", None),
            LastAdmin => (StatusCode::CONFLICT, "last_admin", None),
            PayloadTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", None),
            UnsupportedMediaType => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                None,
            ),
            Validation { fields } => (
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation_failed",
                Some(json!({ "fields": fields })),
            ),
            AccountLocked { retry_after } => (
                StatusCode::LOCKED,
                "account_locked",
                Some(json!({ "retry_after": ceil_secs(*retry_after) })),
            ),
            RateLimited { retry_after } => (
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                Some(json!({ "retry_after": ceil_secs(*retry_after) })),
            ),
            NotReady { checks, .. } => (
                StatusCode::SERVICE_UNAVAILABLE,
                "not_ready",
                Some(json!({ "checks": checks })),
            ),
            Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal", None),
        }
    }
}

/// Whole seconds, rounded up, at least 1: what `Retry-After` carries.
pub fn ceil_secs(d: Duration) -> u64 {
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    secs.max(1)
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Conflict { field } => Self::Conflict { field },
            other => Self::Internal(other.into()),
        }
    }
}

impl From<parley_actors::ChatError> for ApiError {
    fn from(e: parley_actors::ChatError) -> Self {
        use parley_actors::ChatError as C;
        match e {
            C::NotFound(_) => Self::NotFound,
            C::Forbidden(why) => Self::Forbidden(why),
            // Not revealing whether a room one is not in exists (private rooms).
            C::NotMember => Self::NotFound,
            C::Conflict(why) => Self::ConflictWith(why),
            C::Invalid {
                field,
                code,
                message,
            } => Self::field(field, code, message),
            C::Unavailable(_) => Self::Unavailable("temporarily unavailable; try again"),
        }
    }
}

/// The one place account errors become the HTTP envelope.
impl From<AccountError> for ApiError {
    fn from(e: AccountError) -> Self {
        use AccountError as A;
        match e {
            A::InvalidToken(why) => Self::InvalidToken(why),
            A::Unauthenticated => Self::Unauthenticated,
            A::InvalidCredentials => Self::InvalidCredentials,
            A::InvalidRefreshToken => Self::InvalidRefreshToken,
            A::InvalidPassword => Self::InvalidPassword,
            A::AccountSuspended => Self::AccountSuspended,
            A::AccountBanned => Self::AccountBanned,
            A::NotFound => Self::NotFound,
            A::Conflict { field } => Self::Conflict { field },
            A::Validation(failed) => {
                let fields = failed
                    .into_iter()
                    .map(|f| {
                        (
                            f.field.to_owned(),
                            json!({"code": f.code, "message": f.message}),
                        )
                    })
                    .collect();
                Self::Validation { fields }
            }
            A::AccountLocked { retry_after } => Self::AccountLocked { retry_after },
            A::TotpRequired => Self::TotpRequired,
            A::InvalidTotp { login: true } => Self::InvalidTotp(StatusCode::UNAUTHORIZED),
            A::InvalidTotp { login: false } => Self::InvalidTotp(StatusCode::FORBIDDEN),
            A::EmailNotVerified => Self::EmailNotVerified,
            A::TwoFactorAlreadyOn => Self::ConflictWith("two-factor authentication is already on"),
            A::TwoFactorNotSetUp => Self::ConflictWith("set up two-factor authentication first"),
            A::TwoFactorNotOn => Self::ConflictWith("two-factor authentication is not on"),
            A::InvalidOneTimeToken => Self::InvalidOneTimeToken,
            A::RateLimited { retry_after } => Self::RateLimited { retry_after },
            A::Internal(cause) => Self::Internal(cause),
        }
    }
}

/// The envelope's content, carried as a response extension until the
/// [`envelope`] middleware adds the request id and renders it.
#[derive(Debug, Clone)]
pub struct ErrorBody {
    /// snake_case code.
    pub code: String,
    /// Human sentence.
    pub message: String,
    /// Optional structured details.
    pub details: Option<Value>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code, details) = self.status_code_details();
        let message = match &self {
            ApiError::Internal(cause) => {
                tracing::error!(error = ?cause, "internal error");
                "internal error".to_owned()
            }
            other => other.to_string(),
        };
        let mut response = status.into_response();
        if status == StatusCode::UNAUTHORIZED {
            // RFC 9110: a 401 names the scheme that would work.
            let challenge = match &self {
                ApiError::InvalidToken(_) => "Bearer error=\"invalid_token\"",
                _ => "Bearer",
            };
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge),
            );
        }
        if let ApiError::AccountLocked { retry_after } | ApiError::RateLimited { retry_after } =
            &self
        {
            response.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from(ceil_secs(*retry_after)),
            );
        }
        response.extensions_mut().insert(ErrorBody {
            code: code.to_owned(),
            message,
            details,
        });
        response
    }
}

/// Code and message for an error response that carries no [`ErrorBody`]
/// (axum's and tower-http's own).
fn fallback_body(status: StatusCode) -> ErrorBody {
    let (code, message) = match status {
        StatusCode::NOT_FOUND => ("not_found", "no such route"),
        StatusCode::METHOD_NOT_ALLOWED => {
            ("method_not_allowed", "method not allowed on this route")
        }
        StatusCode::PAYLOAD_TOO_LARGE => ("payload_too_large", "request body is too large"),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => (
            "unsupported_media_type",
            "expected content type application/json",
        ),
        StatusCode::REQUEST_TIMEOUT => ("timeout", "the request took too long"),
        StatusCode::BAD_REQUEST => ("bad_request", "the request could not be read"),
        StatusCode::UNPROCESSABLE_ENTITY => ("validation_failed", "the request is not valid"),
        StatusCode::UNAUTHORIZED => ("unauthenticated", "authentication required"),
        StatusCode::FORBIDDEN => ("forbidden", "not allowed"),
        s if s.is_server_error() => ("internal", "internal error"),
        _ => ("error", "the request failed"),
    };
    ErrorBody {
        code: code.to_owned(),
        message: message.to_owned(),
        details: None,
    }
}

/// Renders every error response as the contract's envelope, with the
/// request id set by the request-id layer.
pub async fn envelope(request: Request, next: Next) -> Response {
    let request_id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let response = next.run(request).await;
    let status = response.status();
    let body = response.extensions().get::<ErrorBody>().cloned();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    let body = match body {
        Some(body) => body,
        None if status.is_client_error() || status.is_server_error() => {
            if is_json {
                // Already an envelope (or a handler's own JSON error).
                return response;
            }
            fallback_body(status)
        }
        None => return response,
    };
    let (mut parts, _) = response.into_parts();
    let mut error = json!({"code": body.code, "message": body.message});
    if let Some(details) = body.details {
        error["details"] = details;
    }
    let rendered = Json(json!({"error": error, "request_id": request_id})).into_response();
    let (new_parts, new_body) = rendered.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    parts.headers.insert(
        header::CONTENT_TYPE,
        new_parts
            .headers
            .get(header::CONTENT_TYPE)
            .cloned()
            .unwrap_or(HeaderValue::from_static("application/json")),
    );
    Response::from_parts(parts, new_body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::accounts::FieldError;

    /// Status and code of the envelope an account error becomes.
    fn mapped(e: AccountError) -> (u16, String, Option<Value>) {
        let response = ApiError::from(e).into_response();
        let body = response
            .extensions()
            .get::<ErrorBody>()
            .cloned()
            .expect("an error body");
        (response.status().as_u16(), body.code, body.details)
    }

    #[test]
    fn each_account_error_maps_to_the_status_its_doc_names() {
        let cases = [
            (AccountError::InvalidToken("x"), 401, "invalid_token"),
            (AccountError::Unauthenticated, 401, "unauthenticated"),
            (AccountError::InvalidCredentials, 401, "invalid_credentials"),
            (
                AccountError::InvalidRefreshToken,
                401,
                "invalid_refresh_token",
            ),
            (AccountError::InvalidPassword, 403, "invalid_password"),
            (AccountError::AccountSuspended, 403, "account_suspended"),
            (AccountError::AccountBanned, 403, "account_banned"),
            (AccountError::NotFound, 404, "not_found"),
            (AccountError::Conflict { field: "email" }, 409, "conflict"),
            (
                AccountError::Validation(Vec::new()),
                422,
                "validation_failed",
            ),
            (
                AccountError::AccountLocked {
                    retry_after: Duration::from_millis(1500),
                },
                423,
                "account_locked",
            ),
            (
                AccountError::internal(anyhow::anyhow!("disk on fire")),
                500,
                "internal",
            ),
        ];
        for (error, status, code) in cases {
            let shown = format!("{error:?}");
            let (got_status, got_code, _) = mapped(error);
            assert_eq!((got_status, got_code.as_str()), (status, code), "{shown}");
        }
    }

    #[test]
    fn account_details_reach_the_envelope() {
        let (_, _, details) = mapped(AccountError::Validation(vec![
            FieldError {
                field: "username",
                code: "too_short",
                message: "at least 3".to_owned(),
            },
            FieldError {
                field: "password",
                code: "too_weak",
                message: "weak".to_owned(),
            },
        ]));
        assert_eq!(
            details,
            Some(json!({"fields": {
                "username": {"code": "too_short", "message": "at least 3"},
                "password": {"code": "too_weak", "message": "weak"},
            }}))
        );
        let (_, _, details) = mapped(AccountError::Conflict { field: "username" });
        assert_eq!(details, Some(json!({"field": "username"})));
        let (_, _, details) = mapped(AccountError::AccountLocked {
            retry_after: Duration::from_millis(1500),
        });
        assert_eq!(details, Some(json!({"retry_after": 2})));
    }
}
