//! Direct rooms between two users.

use axum::Json;
use axum::extract::State;
use parley_actors::protocol::RoomView;

use crate::http::dto::ErrorEnvelope;
use crate::http::error::ApiError;
use crate::http::extract::{ApiJson, AuthUser};
use crate::http::state::AppState;

use super::{RoomBody, UserRef};

/// The direct room between me and another user, created on first use.
#[utoipa::path(post, path = "/dm", tag = "rooms", security(("bearer" = [])), request_body = UserRef,
    responses((status = 200, body = RoomBody), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
pub(super) async fn open_dm(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiJson(body): ApiJson<UserRef>,
) -> Result<Json<RoomView>, ApiError> {
    let other = body.id()?;
    let room = state.realtime.open_direct(auth.user_id, other).await?;
    Ok(Json(RoomView::from(&room)))
}
