//! `/users/*` (for now: my profile, read-only).

use axum::Json;
use axum::extract::State;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::dto::Profile;
use super::error::ApiError;
use super::extract::AuthUser;
use crate::startup::AppState;

/// Routes (authenticated).
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(profile))
}

/// Who am I: my own profile.
#[utoipa::path(get, path = "/users/profile", tag = "users", security(("bearer" = [])),
    responses((status = 200, body = Profile)))]
#[tracing::instrument(skip_all, fields(user = %auth.user_id))]
async fn profile(State(state): State<AppState>, auth: AuthUser) -> Result<Json<Profile>, ApiError> {
    Ok(Json(state.accounts.profile(&auth).await?.into()))
}
