//! `/auth/*`: register, login, refresh, logout, password change.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::dto::{ErrorEnvelope, RevokedCount, TokenResponse};
use super::error::ApiError;
use super::extract::{ApiJson, AuthUser};
use super::state::AppState;
use crate::accounts::Client;

/// Public routes (each limited per IP by the caller of this function).
pub fn register_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(register))
}

/// Login and refresh (limited per IP together).
pub fn login_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(login))
        .routes(routes!(refresh))
}

/// Routes that need an access token.
pub fn authed_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(logout))
        .routes(routes!(change_password))
}

/// `POST /auth/register`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    /// 3–32 of `[a-z0-9_.-]`; folded to lowercase.
    pub username: String,
    pub email: String,
    /// 8–128 chars with upper, lower and a digit; not a common password.
    pub password: String,
}

/// Creates an account and signs it in.
#[utoipa::path(post, path = "/auth/register", tag = "auth", request_body = RegisterRequest,
    responses(
        (status = 201, body = TokenResponse),
        (status = 409, description = "username or email taken", body = ErrorEnvelope),
        (status = 422, description = "validation failed", body = ErrorEnvelope),
        (status = 429, description = "rate limited", body = ErrorEnvelope),
    ))]
#[tracing::instrument(skip_all, fields(username = %body.username))]
async fn register(
    State(state): State<AppState>,
    client: Client,
    ApiJson(body): ApiJson<RegisterRequest>,
) -> Result<(StatusCode, Json<TokenResponse>), ApiError> {
    let issued = state
        .accounts
        .register(&body.username, &body.email, &body.password, &client)
        .await?;
    Ok((StatusCode::CREATED, Json(issued.into())))
}

/// `POST /auth/login`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// Username or email, case-insensitive.
    pub login: String,
    pub password: String,
    /// Required once two-factor authentication is on: a current 6-digit
    /// code, or an unused recovery code.
    pub totp_code: Option<String>,
}

/// Signs in by username or email.
#[utoipa::path(post, path = "/auth/login", tag = "auth", request_body = LoginRequest,
    responses(
        (status = 200, body = TokenResponse),
        (status = 401, description = "invalid_credentials / totp_required / invalid_totp", body = ErrorEnvelope),
        (status = 403, description = "account_suspended / account_banned / email_not_verified", body = ErrorEnvelope),
        (status = 423, description = "account_locked, with details.retry_after", body = ErrorEnvelope),
        (status = 429, description = "rate limited", body = ErrorEnvelope),
    ))]
#[tracing::instrument(skip_all)]
async fn login(
    State(state): State<AppState>,
    client: Client,
    ApiJson(body): ApiJson<LoginRequest>,
) -> Result<Json<TokenResponse>, ApiError> {
    let issued = state
        .accounts
        .login(
            &body.login,
            &body.password,
            body.totp_code.as_deref(),
            &client,
        )
        .await?;
    Ok(Json(issued.into()))
}

/// `POST /auth/refresh`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    pub refresh_token: String,
}

/// Spends a refresh token for a new access + refresh token. A spent token
/// presented again revokes the whole session.
#[utoipa::path(post, path = "/auth/refresh", tag = "auth", request_body = RefreshRequest,
    responses(
        (status = 200, body = TokenResponse),
        (status = 401, description = "invalid_refresh_token", body = ErrorEnvelope),
    ))]
#[tracing::instrument(skip_all)]
async fn refresh(
    State(state): State<AppState>,
    client: Client,
    ApiJson(body): ApiJson<RefreshRequest>,
) -> Result<Json<TokenResponse>, ApiError> {
    let issued = state.accounts.refresh(&body.refresh_token, &client).await?;
    Ok(Json(issued.into()))
}

/// Ends the current session: its access and refresh tokens stop working at once.
#[utoipa::path(post, path = "/auth/logout", tag = "auth", security(("bearer" = [])),
    responses((status = 204), (status = 401, body = ErrorEnvelope)))]
#[tracing::instrument(skip_all, fields(user = %auth.user_id))]
async fn logout(
    State(state): State<AppState>,
    auth: AuthUser,
    client: Client,
) -> Result<StatusCode, ApiError> {
    state
        .accounts
        .logout(auth.user_id, auth.session_id, &client)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /auth/password`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordChangeRequest {
    pub current_password: String,
    pub new_password: String,
}

/// Changes my password; every other session is revoked.
#[utoipa::path(post, path = "/auth/password", tag = "auth", security(("bearer" = [])),
    request_body = PasswordChangeRequest,
    responses(
        (status = 200, body = RevokedCount),
        (status = 403, description = "invalid_password: current password wrong", body = ErrorEnvelope),
        (status = 422, body = ErrorEnvelope),
    ))]
#[tracing::instrument(skip_all, fields(user = %auth.user_id))]
async fn change_password(
    State(state): State<AppState>,
    auth: AuthUser,
    client: Client,
    ApiJson(body): ApiJson<PasswordChangeRequest>,
) -> Result<Json<RevokedCount>, ApiError> {
    let revoked_sessions = state
        .accounts
        .change_password(
            auth.user_id,
            auth.session_id,
            &body.current_password,
            &body.new_password,
            &client,
        )
        .await?;
    Ok(Json(RevokedCount { revoked_sessions }))
}
