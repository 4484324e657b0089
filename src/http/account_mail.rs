//! The account routes that work by mail: email verification
//! (`/auth/email/*`) and password reset (`/auth/password/forgot`,
//! `/auth/password/reset`).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::dto::ErrorEnvelope;
use super::error::ApiError;
use super::extract::{ApiJson, AuthUser};
use super::state::AppState;
use crate::accounts::Client;

/// Public routes: verify an address, reset a password.
pub fn public_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(verify_email))
        .routes(routes!(reset_password))
}

/// `/auth/password/forgot` (public; limited per IP by the caller).
pub fn forgot_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(forgot_password))
}

/// Routes that need an access token.
pub fn authed_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(resend_verification))
}

/// `POST /auth/email/verify`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerifyEmailRequest {
    /// The token from the verification mail.
    pub token: String,
}

/// Verifies the address a verification mail was sent to.
#[utoipa::path(post, path = "/auth/email/verify", tag = "auth", request_body = VerifyEmailRequest,
    responses(
        (status = 204),
        (status = 400, description = "invalid_token: unknown, used, expired or superseded", body = ErrorEnvelope),
    ))]
#[tracing::instrument(skip_all)]
async fn verify_email(
    State(state): State<AppState>,
    client: Client,
    ApiJson(body): ApiJson<VerifyEmailRequest>,
) -> Result<StatusCode, ApiError> {
    state.accounts.verify_email(&body.token, &client).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The answer to a request that sends mail (or would).
#[derive(Debug, Serialize, ToSchema)]
pub struct Accepted {
    /// `accepted`.
    pub status: &'static str,
}

const ACCEPTED: Accepted = Accepted { status: "accepted" };

/// Sends a new verification mail (nothing if the address is verified).
#[utoipa::path(post, path = "/auth/email/resend", tag = "auth", security(("bearer" = [])),
    responses(
        (status = 202, body = Accepted),
        (status = 429, description = "rate_limited: email_resend_per_hour", body = ErrorEnvelope),
    ))]
#[tracing::instrument(skip_all, fields(user = %auth.user_id))]
async fn resend_verification(
    State(state): State<AppState>,
    auth: AuthUser,
    client: Client,
) -> Result<(StatusCode, Json<Accepted>), ApiError> {
    state
        .accounts
        .resend_verification(auth.user_id, &client)
        .await?;
    Ok((StatusCode::ACCEPTED, Json(ACCEPTED)))
}

/// `POST /auth/password/forgot`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ForgotPasswordRequest {
    /// The account's email address.
    pub email: String,
}

/// Asks for a password reset mail. The answer is the same whether or not
/// an account uses the address.
#[utoipa::path(post, path = "/auth/password/forgot", tag = "auth",
    request_body = ForgotPasswordRequest,
    responses(
        (status = 202, body = Accepted),
        (status = 422, description = "validation_failed: not an email address", body = ErrorEnvelope),
        (status = 429, description = "rate_limited: per address or per IP", body = ErrorEnvelope),
    ))]
#[tracing::instrument(skip_all)]
async fn forgot_password(
    State(state): State<AppState>,
    client: Client,
    ApiJson(body): ApiJson<ForgotPasswordRequest>,
) -> Result<(StatusCode, Json<Accepted>), ApiError> {
    state.accounts.forgot_password(&body.email, &client).await?;
    Ok((StatusCode::ACCEPTED, Json(ACCEPTED)))
}

/// `POST /auth/password/reset`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResetPasswordRequest {
    /// The token from the reset mail.
    pub token: String,
    /// 8–128 chars with upper, lower and a digit; not a common password.
    pub new_password: String,
}

/// Sets a new password with a reset token: every session is revoked (their
/// sockets close with 4003) and the login lockout is cleared.
#[utoipa::path(post, path = "/auth/password/reset", tag = "auth",
    request_body = ResetPasswordRequest,
    responses(
        (status = 204),
        (status = 400, description = "invalid_token: unknown, used, expired or superseded", body = ErrorEnvelope),
        (status = 422, description = "validation_failed: new_password", body = ErrorEnvelope),
    ))]
#[tracing::instrument(skip_all)]
async fn reset_password(
    State(state): State<AppState>,
    client: Client,
    ApiJson(body): ApiJson<ResetPasswordRequest>,
) -> Result<StatusCode, ApiError> {
    state
        .accounts
        .reset_password(&body.token, &body.new_password, &client)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
