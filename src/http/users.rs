//! `/users/*`: my profile, public profiles, the user search and blocks
//! (settings: `settings.rs`).

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use parley_actors::domain::UserId;
use parley_actors::protocol::PublicUser;
use parley_actors::protocol::wire_time;
use parley_actors::store::User;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::dto::{ErrorEnvelope, Profile};
use super::error::ApiError;
use super::extract::{ApiJson, AuthUser};
use super::pagination::{Page, PageParams};
use super::rooms::double_option;
use super::rooms::{UserRef, path_id};
use super::state::AppState;
use crate::accounts::{Client, ProfileChange};

/// Routes (authenticated).
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(profile, update_profile))
        .routes(routes!(search))
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

/// `PUT /users/profile`: omitted fields stay; `null` or an empty text
/// clears one.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProfileUpdate {
    /// At most 64 characters, trimmed, no control characters.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>, max_length = 64)]
    pub display_name: Option<Option<String>>,
    /// At most 500 characters, trimmed, line breaks allowed, no other
    /// control characters.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>, max_length = 500)]
    pub bio: Option<Option<String>>,
}

/// Changes my display name and/or bio; members of rooms I share, and my
/// other devices, get `user.updated` at once.
#[utoipa::path(put, path = "/users/profile", tag = "users", security(("bearer" = [])), request_body = ProfileUpdate,
    responses((status = 200, body = Profile), (status = 422, body = ErrorEnvelope)))]
#[tracing::instrument(skip_all, fields(user = %auth.user_id))]
async fn update_profile(
    State(state): State<AppState>,
    auth: AuthUser,
    client: Client,
    ApiJson(body): ApiJson<ProfileUpdate>,
) -> Result<Json<Profile>, ApiError> {
    let change = ProfileChange {
        display_name: body.display_name,
        bio: body.bio,
    };
    let user = state
        .accounts
        .update_profile(auth.user_id, change, &client)
        .await?;
    // Stored already: a failure to tell others is logged, not the answer.
    if let Err(e) = state.realtime.profile_changed(public_user(&user)).await {
        tracing::warn!(error = %e, "user.updated not published");
    }
    Ok(Json(user.into()))
}

/// The public part of a user, as `user.updated` carries it.
fn public_user(user: &User) -> PublicUser {
    PublicUser {
        id: user.id,
        username: user.username.to_string(),
        display_name: user.display_name.clone(),
        bio: user.bio.clone(),
        avatar_url: user.avatar_url.clone(),
    }
}

/// `GET /users/search` parameters.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SearchQuery {
    /// A prefix of the username or display name (case-insensitive), 1–64
    /// characters.
    pub q: Option<String>,
    /// 1–200, default 50.
    #[param(value_type = Option<u32>)]
    pub limit: Option<String>,
    /// `next_cursor` from the previous page.
    pub cursor: Option<String>,
}

/// Longest search prefix accepted.
const MAX_QUERY_CHARS: usize = 64;

/// Finds users to message or invite by username or display-name prefix,
/// ordered by username. Leaves out me, users on either side of a block
/// with me, and suspended or banned users.
#[utoipa::path(get, path = "/users/search", tag = "users", security(("bearer" = [])), params(SearchQuery),
    responses((status = 200, body = Page<PublicProfile>), (status = 422, body = ErrorEnvelope)))]
#[tracing::instrument(skip_all, fields(user = %auth.user_id))]
async fn search(
    State(state): State<AppState>,
    auth: AuthUser,
    Query(query): Query<SearchQuery>,
) -> Result<Json<Page<PublicProfile>>, ApiError> {
    let q = query.q.as_deref().unwrap_or_default().trim().to_lowercase();
    if q.is_empty() || q.chars().count() > MAX_QUERY_CHARS || q.chars().any(char::is_control) {
        return Err(ApiError::field(
            "q",
            "invalid_value",
            format!("q must be 1–{MAX_QUERY_CHARS} characters without control characters"),
        ));
    }
    let page = PageParams {
        limit: query.limit,
        cursor: query.cursor,
    };
    let limit = page.limit()?;
    let after: Option<String> = page.cursor()?;
    let users = state
        .store
        .search_users(auth.user_id, &q, after.as_deref(), limit + 1)
        .await?;
    let items = users
        .into_iter()
        .map(|u| public_profile_of(&state, auth.user_id, u))
        .collect();
    Ok(Json(Page::from_overfetch(
        items,
        limit,
        |p: &PublicProfile| p.username.clone(),
    )))
}

/// Another user as `viewer` sees them.
fn public_profile_of(state: &AppState, viewer: UserId, user: User) -> PublicProfile {
    PublicProfile {
        presence: state
            .realtime
            .presence()
            .shown_to(viewer, user.id)
            .status
            .to_string(),
        id: user.id.to_string(),
        username: user.username.to_string(),
        display_name: user.display_name,
        bio: user.bio,
        avatar_url: user.avatar_url,
        role: user.role.to_string(),
        created_at: wire_time(user.created_at),
    }
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
    Ok(Json(public_profile_of(&state, auth.user_id, user)))
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
