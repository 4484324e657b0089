//! `/auth/2fa/*`: turning two-factor authentication (TOTP) on and off.

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

/// Routes that need an access token.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(setup))
        .routes(routes!(enable))
        .routes(routes!(disable))
}

/// The secret of a new 2FA setup: shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub struct TotpSetupResponse {
    /// Base32 secret (RFC 6238: SHA-1, 6 digits, 30 s steps).
    pub secret: String,
    /// The same as an `otpauth://totp/…` URL, for a QR code.
    pub otpauth_url: String,
}

/// Starts 2FA setup: a new secret for an authenticator app. Nothing changes
/// at login until `/auth/2fa/enable` confirms a code.
#[utoipa::path(post, path = "/auth/2fa/setup", tag = "auth", security(("bearer" = [])),
    responses(
        (status = 200, body = TotpSetupResponse),
        (status = 409, description = "conflict: 2FA is already on", body = ErrorEnvelope),
    ))]
#[tracing::instrument(skip_all, fields(user = %auth.user_id))]
async fn setup(
    State(state): State<AppState>,
    auth: AuthUser,
    client: Client,
) -> Result<Json<TotpSetupResponse>, ApiError> {
    let setup = state.accounts.totp_setup(auth.user_id, &client).await?;
    Ok(Json(TotpSetupResponse {
        secret: setup.secret,
        otpauth_url: setup.otpauth_url,
    }))
}

/// `POST /auth/2fa/enable`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EnableRequest {
    /// A current 6-digit code from the authenticator.
    pub code: String,
}

/// The recovery codes: shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub struct RecoveryCodes {
    /// Ten single-use codes (`xxxxx-xxxxx`); each can replace a TOTP code
    /// once, at login or to turn 2FA off.
    pub recovery_codes: Vec<String>,
}

/// Turns 2FA on with a code that proves the authenticator holds the secret.
#[utoipa::path(post, path = "/auth/2fa/enable", tag = "auth", security(("bearer" = [])),
    request_body = EnableRequest,
    responses(
        (status = 200, body = RecoveryCodes),
        (status = 403, description = "invalid_totp: the code is wrong or was used before", body = ErrorEnvelope),
        (status = 409, description = "conflict: 2FA is on already, or was never set up", body = ErrorEnvelope),
    ))]
#[tracing::instrument(skip_all, fields(user = %auth.user_id))]
async fn enable(
    State(state): State<AppState>,
    auth: AuthUser,
    client: Client,
    ApiJson(body): ApiJson<EnableRequest>,
) -> Result<Json<RecoveryCodes>, ApiError> {
    let recovery_codes = state
        .accounts
        .totp_enable(auth.user_id, &body.code, &client)
        .await?;
    Ok(Json(RecoveryCodes { recovery_codes }))
}

/// `POST /auth/2fa/disable`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DisableRequest {
    /// The account's password.
    pub password: String,
    /// A current 6-digit code, or an unused recovery code.
    pub code: String,
}

/// Turns 2FA off (password and a code or recovery code).
#[utoipa::path(post, path = "/auth/2fa/disable", tag = "auth", security(("bearer" = [])),
    request_body = DisableRequest,
    responses(
        (status = 204),
        (status = 403, description = "invalid_password / invalid_totp", body = ErrorEnvelope),
        (status = 409, description = "conflict: 2FA is off", body = ErrorEnvelope),
    ))]
#[tracing::instrument(skip_all, fields(user = %auth.user_id))]
async fn disable(
    State(state): State<AppState>,
    auth: AuthUser,
    client: Client,
    ApiJson(body): ApiJson<DisableRequest>,
) -> Result<StatusCode, ApiError> {
    state
        .accounts
        .totp_disable(auth.user_id, &body.password, &body.code, &client)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
