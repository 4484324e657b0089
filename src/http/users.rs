//! `/users/*`: my profile, public profiles and blocks.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use parley_actors::domain::UserId;
use parley_actors::protocol::wire_time;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::dto::{ErrorEnvelope, Profile};
use super::error::ApiError;
use super::extract::{ApiJson, AuthUser};
use super::pagination::{Page, PageParams};
use super::rooms::{UserRef, path_id};
use super::state::AppState;

/// Routes (authenticated).
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(profile))
        .routes(routes!(block))
        .routes(routes!(unblock))
        .routes(routes!(list_blocks))
        .routes(routes!(public_profile))
}

/// Who am I: my own profile.
#[utoipa::path(get, path = "/users/profile", tag = "users", security(("bearer" = [])),
    responses((status = 200, body = Profile)))]
#[tracing::instrument(skip_all, fields(user = %auth.user_id))]
async fn profile(State(state): State<AppState>, auth: AuthUser) -> Result<Json<Profile>, ApiError> {
    Ok(Json(state.accounts.profile(auth.user_id).await?.into()))
}

/// Another user as others see them (no email).
#[derive(Debug, Serialize, ToSchema)]
pub struct PublicProfile {
    #[schema(format = Uuid)]
    pub id: String,
    pub username: String,
    pub display_name: Option<String>,
    pub bio: Option<String>,
    pub avatar_url: Option<String>,
    pub role: String,
    /// `online`, `away`, `dnd` or `offline`.
    pub presence: String,
    #[schema(format = DateTime)]
    pub created_at: String,
}

/// A user's public profile; 404 when either of us blocked the other.
#[utoipa::path(get, path = "/users/{id}", tag = "users", security(("bearer" = [])),
    params(("id" = String, Path)), responses((status = 200, body = PublicProfile), (status = 404, body = ErrorEnvelope)))]
async fn public_profile(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
) -> Result<Json<PublicProfile>, ApiError> {
    let id: UserId = path_id(&id)?;
    if state.realtime.blocks().either(auth.user_id, id) {
        return Err(ApiError::NotFound);
    }
    let user = state
        .store
        .user_by_id(id)
        .await?
        .ok_or(ApiError::NotFound)?;
    Ok(Json(PublicProfile {
        id: user.id.to_string(),
        username: user.username.to_string(),
        display_name: user.display_name,
        bio: user.bio,
        avatar_url: user.avatar_url,
        role: user.role.to_string(),
        presence: state.realtime.presence().shown(id).status.to_string(),
        created_at: wire_time(user.created_at),
    }))
}

/// Blocks a user: their messages, reactions and typing stop reaching me,
/// neither of us sees the other's presence, they cannot DM or invite me.
#[utoipa::path(post, path = "/users/block", tag = "users", security(("bearer" = [])), request_body = UserRef,
    responses((status = 204), (status = 404, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)))]
async fn block(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiJson(body): ApiJson<UserRef>,
) -> Result<StatusCode, ApiError> {
    let target = body.id()?;
    state.realtime.block(auth.user_id, target).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Lifts a block.
#[utoipa::path(delete, path = "/users/block/{user_id}", tag = "users", security(("bearer" = [])),
    params(("user_id" = String, Path)), responses((status = 204), (status = 404, body = ErrorEnvelope)))]
async fn unblock(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let target: UserId = path_id(&id)?;
    if state.realtime.unblock(auth.user_id, target).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound)
    }
}

/// One of my blocks.
#[derive(Debug, Serialize, ToSchema)]
pub struct BlockView {
    #[schema(format = Uuid)]
    pub user_id: String,
    pub username: Option<String>,
    #[schema(format = DateTime)]
    pub created_at: String,
}

/// Whom I blocked, newest first.
#[utoipa::path(get, path = "/users/blocks", tag = "users", security(("bearer" = [])), params(PageParams),
    responses((status = 200, body = Page<BlockView>)))]
async fn list_blocks(
    State(state): State<AppState>,
    auth: AuthUser,
    Query(page): Query<PageParams>,
) -> Result<Json<Page<BlockView>>, ApiError> {
    let limit = page.limit()?;
    let after: Option<UserId> = page.cursor()?;
    let blocks = state.store.list_blocks(auth.user_id).await?;
    let mut skipping = after.is_some();
    let mut items = Vec::new();
    for b in &blocks {
        if skipping {
            skipping = Some(b.blocked_id) != after;
            continue;
        }
        if items.len() > limit as usize {
            break;
        }
        let username = state
            .store
            .user_by_id(b.blocked_id)
            .await?
            .map(|u| u.username.to_string());
        items.push(BlockView {
            user_id: b.blocked_id.to_string(),
            username,
            created_at: wire_time(b.created_at),
        });
    }
    Ok(Json(Page::from_overfetch(items, limit, |b| {
        b.user_id.clone()
    })))
}
