//! Invites: sending one, listing mine, accepting and declining.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use parley_actors::domain::{InviteId, RoomId};
use parley_actors::protocol::InviteView;
use serde::Serialize;
use utoipa::ToSchema;

use crate::http::dto::ErrorEnvelope;
use crate::http::error::ApiError;
use crate::http::extract::{ApiJson, AuthUser};
use crate::http::pagination::{Page, PageParams};
use crate::http::state::AppState;

use super::{Joined, UserRef, path_id};

/// Invites a user (admin+ for private rooms, any member for public).
#[utoipa::path(post, path = "/rooms/{id}/invites", tag = "rooms", security(("bearer" = [])), request_body = UserRef,
    params(("id" = String, Path)), responses((status = 201, body = InviteBody), (status = 409, body = ErrorEnvelope)))]
pub(super) async fn invite(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<UserRef>,
) -> Result<(StatusCode, Json<InviteView>), ApiError> {
    let id: RoomId = path_id(&id)?;
    let invitee = body.id()?;
    let inviter = auth.user_id;
    let invite = state
        .realtime
        .rooms()
        .room(id)
        .invite(inviter, invitee)
        .await?;
    let room = state.store.room_by_id(id).await?.map(|r| r.name);
    Ok((StatusCode::CREATED, Json(InviteView::new(&invite, room))))
}

/// The invite object (documentation of [`InviteView`]).
#[derive(Debug, Serialize, ToSchema)]
pub struct InviteBody {
    #[schema(format = Uuid)]
    pub id: String,
    #[schema(format = Uuid)]
    pub room_id: String,
    pub room_name: Option<String>,
    #[schema(format = Uuid)]
    pub inviter_id: String,
    #[schema(format = Uuid)]
    pub invitee_id: String,
    /// `pending`, `accepted` or `declined`.
    pub status: String,
    #[schema(format = DateTime)]
    pub created_at: String,
}

/// My pending invites.
#[utoipa::path(get, path = "/invites", tag = "rooms", security(("bearer" = [])), params(PageParams),
    responses((status = 200, body = Page<InviteBody>)))]
pub(super) async fn list_invites(
    State(state): State<AppState>,
    auth: AuthUser,
    Query(page): Query<PageParams>,
) -> Result<Json<Page<InviteView>>, ApiError> {
    let limit = page.limit()?;
    let after: Option<InviteId> = page.cursor()?;
    let invites = state.store.list_pending_invites(auth.user_id).await?;
    let mut items = Vec::new();
    for invite in invites
        .iter()
        .filter(|i| after.is_none_or(|a| i.id < a))
        .take(limit as usize + 1)
    {
        let name = state
            .store
            .room_by_id(invite.room_id)
            .await?
            .map(|r| r.name);
        items.push(InviteView::new(invite, name));
    }
    Ok(Json(Page::from_overfetch(items, limit, |i| {
        i.id.to_string()
    })))
}

async fn invite_room(
    state: &AppState,
    auth: &AuthUser,
    id: &str,
) -> Result<(InviteId, RoomId), ApiError> {
    let id: InviteId = path_id(id)?;
    match state.store.invite_by_id(id).await? {
        Some(invite) if invite.invitee_id == auth.user_id => Ok((id, invite.room_id)),
        _ => Err(ApiError::NotFound),
    }
}

/// Accepts an invite: I join the room.
#[utoipa::path(post, path = "/invites/{id}/accept", tag = "rooms", security(("bearer" = [])),
    params(("id" = String, Path)), responses((status = 200, body = Joined), (status = 404, body = ErrorEnvelope)))]
pub(super) async fn accept_invite(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
) -> Result<Json<Joined>, ApiError> {
    let (invite_id, room_id) = invite_room(&state, &auth, &id).await?;
    let user = auth.user_id;
    let role = state
        .realtime
        .rooms()
        .room(room_id)
        .accept_invite(user, invite_id)
        .await?;
    Ok(Json(Joined {
        room_id: room_id.to_string(),
        my_role: role.to_string(),
    }))
}

/// Declines an invite.
#[utoipa::path(post, path = "/invites/{id}/decline", tag = "rooms", security(("bearer" = [])),
    params(("id" = String, Path)), responses((status = 204), (status = 404, body = ErrorEnvelope)))]
pub(super) async fn decline_invite(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let (invite_id, _room) = invite_room(&state, &auth, &id).await?;
    let declined = state
        .store
        .respond_invite(
            invite_id,
            parley_actors::domain::InviteStatus::Declined,
            chrono::Utc::now(),
        )
        .await?;
    if declined {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound)
    }
}
