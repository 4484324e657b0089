//! Membership: joining, leaving and listing a room's members.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use parley_actors::domain::{RoomId, UserId, Visibility};
use parley_actors::protocol::wire_time;
use serde::Serialize;
use utoipa::ToSchema;

use crate::http::dto::ErrorEnvelope;
use crate::http::error::ApiError;
use crate::http::extract::AuthUser;
use crate::http::pagination::{Page, PageParams};
use crate::http::state::AppState;

use super::path_id;

/// My role after joining.
#[derive(Debug, Serialize, ToSchema)]
pub struct Joined {
    #[schema(format = Uuid)]
    pub room_id: String,
    pub my_role: String,
}

/// Joins a public room.
#[utoipa::path(post, path = "/rooms/{id}/join", tag = "rooms", security(("bearer" = [])),
    params(("id" = String, Path)), responses((status = 200, body = Joined), (status = 404, body = ErrorEnvelope)))]
pub(super) async fn join_room(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
) -> Result<Json<Joined>, ApiError> {
    let id: RoomId = path_id(&id)?;
    let user = auth.user_id;
    let role = state.realtime.rooms().room(id).join(user).await?;
    Ok(Json(Joined {
        room_id: id.to_string(),
        my_role: role.to_string(),
    }))
}

/// Leaves a room.
#[utoipa::path(post, path = "/rooms/{id}/leave", tag = "rooms", security(("bearer" = [])),
    params(("id" = String, Path)), responses((status = 204), (status = 403, body = ErrorEnvelope)))]
pub(super) async fn leave_room(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id: RoomId = path_id(&id)?;
    let user = auth.user_id;
    state.realtime.rooms().room(id).leave(user).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A member with role and presence.
#[derive(Debug, Serialize, ToSchema)]
pub struct MemberView {
    #[schema(format = Uuid)]
    pub user_id: String,
    pub username: Option<String>,
    pub display_name: Option<String>,
    pub role: String,
    /// `online`, `away`, `dnd` or `offline` (invisible shows as offline).
    pub presence: String,
    #[schema(format = DateTime)]
    pub joined_at: String,
}

/// Members of a room I am in, with role and presence.
#[utoipa::path(get, path = "/rooms/{id}/members", tag = "rooms", security(("bearer" = [])),
    params(("id" = String, Path), PageParams), responses((status = 200, body = Page<MemberView>), (status = 404, body = ErrorEnvelope)))]
pub(super) async fn list_members(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
    Query(page): Query<PageParams>,
) -> Result<Json<Page<MemberView>>, ApiError> {
    let id: RoomId = path_id(&id)?;
    let limit = page.limit()?;
    let after: Option<UserId> = page.cursor()?;
    let room = state
        .store
        .room_by_id(id)
        .await?
        .ok_or(ApiError::NotFound)?;
    let is_member = state.store.member(id, auth.user_id).await?.is_some();
    if !is_member && room.visibility != Visibility::Public {
        return Err(ApiError::NotFound);
    }
    let mut members = state.store.list_members(id).await?;
    members.sort_by_key(|m| m.user_id);
    let blocks = state.realtime.blocks();
    let mut items = Vec::new();
    for m in members
        .iter()
        .filter(|m| after.is_none_or(|a| m.user_id > a))
        .take(limit as usize + 1)
    {
        let user = state.store.user_by_id(m.user_id).await?;
        let hidden = blocks.either(auth.user_id, m.user_id);
        let presence = if hidden {
            "offline".to_owned()
        } else {
            state
                .realtime
                .presence()
                .shown_to(auth.user_id, m.user_id)
                .status
                .to_string()
        };
        items.push(MemberView {
            user_id: m.user_id.to_string(),
            username: user.as_ref().map(|u| u.username.to_string()),
            display_name: user.and_then(|u| u.display_name),
            role: m.role.to_string(),
            presence,
            joined_at: wire_time(m.joined_at),
        });
    }
    Ok(Json(Page::from_overfetch(items, limit, |m| {
        m.user_id.clone()
    })))
}
