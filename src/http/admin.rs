//! `/admin/*` (role `admin`). For now: changing a user's status and role,
//! which is what suspension and bans need; the rest of the admin API is not
//! built yet.

use axum::Json;
use axum::extract::{Path, State};
use chrono::Utc;
use parley_actors::domain::{Role, UserId, UserStatus};
use parley_actors::protocol::close;
use serde::Deserialize;
use serde_json::json;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::dto::{ErrorEnvelope, Profile};
use super::error::ApiError;
use super::extract::{ApiJson, AuthUser};
use super::rooms::path_id;
use super::state::AppState;
use crate::accounts::Client;

/// Routes (authenticated; each handler checks the admin role in the store,
/// not only in the token, so a demoted admin loses access at once).
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(update_user))
}

async fn require_admin(state: &AppState, auth: &AuthUser) -> Result<(), ApiError> {
    match state.store.user_by_id(auth.user_id).await? {
        Some(user) if user.role == Role::Admin && user.status == UserStatus::Active => {
            // `admin_require_2fa`: turning 2FA on (`/auth/2fa/*`) is not an
            // admin route, so an admin can always get out of this.
            if state.settings.admin_require_2fa && !user.two_factor_enabled {
                return Err(ApiError::TwoFactorRequired);
            }
            Ok(())
        }
        _ => Err(ApiError::Forbidden("admin role required")),
    }
}

/// `PATCH /admin/users/{id}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateUser {
    /// `active`, `suspended` or `banned`.
    pub status: Option<String>,
    /// `user`, `moderator` or `admin`.
    pub role: Option<String>,
}

/// Sets a user's status and/or role. Suspending or banning revokes every
/// session of the user and closes their sockets (4003) at once.
#[utoipa::path(patch, path = "/admin/users/{id}", tag = "admin", security(("bearer" = [])), request_body = UpdateUser,
    params(("id" = String, Path)),
    responses((status = 200, body = Profile), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
#[tracing::instrument(skip_all, fields(admin = %auth.user_id))]
async fn update_user(
    State(state): State<AppState>,
    auth: AuthUser,
    client: Client,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<UpdateUser>,
) -> Result<Json<Profile>, ApiError> {
    require_admin(&state, &auth).await?;
    let id: UserId = path_id(&id)?;
    let status = body
        .status
        .as_deref()
        .map(|s| {
            s.parse::<UserStatus>()
                .map_err(|e| ApiError::field("status", e.code, e.message))
        })
        .transpose()?;
    let role = body
        .role
        .as_deref()
        .map(|r| {
            r.parse::<Role>()
                .map_err(|e| ApiError::field("role", e.code, e.message))
        })
        .transpose()?;
    if state.store.user_by_id(id).await?.is_none() {
        return Err(ApiError::NotFound);
    }
    state
        .store
        .update_user_role_status(id, role, status, Utc::now())
        .await?;
    let mut revoked = 0;
    if let Some(status @ (UserStatus::Suspended | UserStatus::Banned)) = status {
        revoked = state
            .accounts
            .revoke_all_sessions(id, status.as_str())
            .await?;
        state
            .realtime
            .close_user(id, close::REVOKED, &format!("account {status}"));
    }
    state
        .accounts
        .audit_admin(
            "admin_user_update",
            auth.user_id,
            id,
            &client,
            json!({"status": status.map(|s| s.to_string()), "role": role.map(|r| r.to_string()), "revoked_sessions": revoked}),
        )
        .await;
    let user = state
        .store
        .user_by_id(id)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(Json(user.into()))
}
