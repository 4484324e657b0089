//! Moderation: kick, ban, unban and setting a member's role.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use parley_actors::domain::{RoomId, RoomRole, UserId};
use serde::Deserialize;
use utoipa::ToSchema;

use crate::http::dto::ErrorEnvelope;
use crate::http::error::ApiError;
use crate::http::extract::{ApiJson, AuthUser};
use crate::http::state::AppState;

use super::path_id;

/// What a moderator does to one member.
#[derive(Debug, Clone, Copy)]
enum Moderation {
    Kick,
    Ban,
    Unban,
}

/// Asks a room to act on one of its members (`{id}` and `{user_id}` paths).
async fn moderate(
    state: &AppState,
    auth: &AuthUser,
    (room, user): (String, String),
    action: Moderation,
) -> Result<StatusCode, ApiError> {
    let (room, target): (RoomId, UserId) = (path_id(&room)?, path_id(&user)?);
    let actor = auth.user_id;
    let rooms = state.realtime.rooms();
    let room = rooms.room(room);
    match action {
        Moderation::Kick => room.kick(actor, target).await?,
        Moderation::Ban => room.ban(actor, target).await?,
        Moderation::Unban => room.unban(actor, target).await?,
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Removes a member (admin+ over lower roles).
#[utoipa::path(post, path = "/rooms/{id}/members/{user_id}/kick", tag = "rooms", security(("bearer" = [])),
    params(("id" = String, Path), ("user_id" = String, Path)), responses((status = 204), (status = 403, body = ErrorEnvelope)))]
pub(super) async fn kick(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(path): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    moderate(&state, &auth, path, Moderation::Kick).await
}

/// Bans a user from the room (admin+ over lower roles).
#[utoipa::path(post, path = "/rooms/{id}/members/{user_id}/ban", tag = "rooms", security(("bearer" = [])),
    params(("id" = String, Path), ("user_id" = String, Path)), responses((status = 204), (status = 403, body = ErrorEnvelope)))]
pub(super) async fn ban(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(path): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    moderate(&state, &auth, path, Moderation::Ban).await
}

/// Lifts a ban (admin+).
#[utoipa::path(delete, path = "/rooms/{id}/members/{user_id}/ban", tag = "rooms", security(("bearer" = [])),
    params(("id" = String, Path), ("user_id" = String, Path)), responses((status = 204), (status = 404, body = ErrorEnvelope)))]
pub(super) async fn unban(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(path): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    moderate(&state, &auth, path, Moderation::Unban).await
}

/// `{role: admin|member}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleBody {
    pub role: String,
}

/// Sets a member's role (owner).
#[utoipa::path(put, path = "/rooms/{id}/members/{user_id}/role", tag = "rooms", security(("bearer" = [])), request_body = RoleBody,
    params(("id" = String, Path), ("user_id" = String, Path)), responses((status = 204), (status = 403, body = ErrorEnvelope)))]
pub(super) async fn set_role(
    State(state): State<AppState>,
    auth: AuthUser,
    Path((room, user)): Path<(String, String)>,
    ApiJson(body): ApiJson<RoleBody>,
) -> Result<StatusCode, ApiError> {
    let (room, target): (RoomId, UserId) = (path_id(&room)?, path_id(&user)?);
    let role = match body.role.as_str() {
        "admin" => RoomRole::Admin,
        "member" => RoomRole::Member,
        _ => {
            return Err(ApiError::field(
                "role",
                "invalid_value",
                "role must be admin or member",
            ));
        }
    };
    let actor = auth.user_id;
    state
        .realtime
        .rooms()
        .room(room)
        .set_role(actor, target, role)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
