//! A room itself: create, list mine and the public ones, read, update, delete.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use parley_actors::domain::{RoomId, RoomName, RoomRole, RoomTopic, Visibility};
use parley_actors::protocol::RoomView;
use parley_actors::store::{Membership, RoomPatch};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::http::dto::ErrorEnvelope;
use crate::http::error::ApiError;
use crate::http::extract::{ApiJson, AuthUser};
use crate::http::pagination::{Page, PageParams};
use crate::http::state::AppState;

use super::{double_option, path_id};

/// A room as listed for its member.
#[derive(Debug, Serialize, ToSchema)]
pub struct MyRoom {
    #[serde(flatten)]
    #[schema(inline, value_type = RoomBody)]
    pub room: RoomView,
    /// Unread messages (not mine, not deleted, not by users I block) among
    /// the room's newest 100: at most 100, meaning "100 or more".
    pub unread_count: i64,
    /// `owner`, `admin` or `member`.
    pub my_role: String,
    pub last_read_seq: i64,
}

/// The room object (documentation of [`RoomView`]).
#[derive(Debug, Serialize, ToSchema)]
pub struct RoomBody {
    #[schema(format = Uuid)]
    pub id: String,
    pub name: String,
    pub topic: Option<String>,
    /// `public`, `private` or `direct`.
    pub visibility: String,
    #[schema(format = Uuid)]
    pub created_by: Option<String>,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub updated_at: String,
    /// Seq of the newest message (0: none).
    pub last_seq: i64,
}

fn my_room(m: &Membership) -> MyRoom {
    MyRoom {
        room: RoomView::from(&m.room),
        unread_count: m.unread_count,
        my_role: m.role.to_string(),
        last_read_seq: m.last_read_seq,
    }
}

/// `POST /rooms`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateRoom {
    /// 1–100 characters.
    pub name: String,
    /// Up to 500 characters.
    pub topic: Option<String>,
    /// `public` (default) or `private`.
    pub visibility: Option<String>,
}

fn parse_visibility(raw: Option<&str>) -> Result<Visibility, ApiError> {
    match raw.unwrap_or("public") {
        "public" => Ok(Visibility::Public),
        "private" => Ok(Visibility::Private),
        _ => Err(ApiError::field(
            "visibility",
            "invalid_value",
            "visibility must be public or private",
        )),
    }
}

fn parse_topic(raw: Option<&str>) -> Result<Option<RoomTopic>, ApiError> {
    raw.map(|t| RoomTopic::parse(t).map_err(|e| ApiError::field("topic", e.code, e.message)))
        .transpose()
}

/// Creates a room; I am its owner.
#[utoipa::path(post, path = "/rooms", tag = "rooms", security(("bearer" = [])), request_body = CreateRoom,
    responses((status = 201, body = MyRoom), (status = 422, body = ErrorEnvelope)))]
#[tracing::instrument(skip_all, fields(user = %auth.user_id))]
pub(super) async fn create_room(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiJson(body): ApiJson<CreateRoom>,
) -> Result<(StatusCode, Json<MyRoom>), ApiError> {
    let mut fields = serde_json::Map::new();
    let name = RoomName::parse(&body.name);
    if let Err(e) = &name {
        fields.insert(
            "name".into(),
            serde_json::json!({"code": e.code, "message": e.message}),
        );
    }
    let topic = parse_topic(body.topic.as_deref());
    let visibility = parse_visibility(body.visibility.as_deref());
    for err in [topic.as_ref().err(), visibility.as_ref().err()]
        .into_iter()
        .flatten()
    {
        if let ApiError::Validation { fields: more } = err {
            fields.extend(more.clone());
        }
    }
    let (Ok(name), Ok(topic), Ok(visibility)) = (name, topic, visibility) else {
        return Err(ApiError::Validation { fields });
    };
    let room = state
        .realtime
        .create_room(auth.user_id, name, topic, visibility)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(MyRoom {
            room: RoomView::from(&room),
            unread_count: 0,
            my_role: RoomRole::Owner.to_string(),
            last_read_seq: 0,
        }),
    ))
}

/// Rooms I am a member of.
#[utoipa::path(get, path = "/rooms", tag = "rooms", security(("bearer" = [])), params(PageParams),
    responses((status = 200, body = Page<MyRoom>)))]
#[tracing::instrument(skip_all, fields(user = %auth.user_id))]
pub(super) async fn list_my_rooms(
    State(state): State<AppState>,
    auth: AuthUser,
    Query(page): Query<PageParams>,
) -> Result<Json<Page<MyRoom>>, ApiError> {
    let limit = page.limit()?;
    let after: Option<RoomId> = page.cursor()?;
    let mut rooms = state.realtime.memberships(auth.user_id).await?;
    rooms.sort_by_key(|m| std::cmp::Reverse(m.room.id));
    let items = rooms
        .iter()
        .filter(|m| after.is_none_or(|a| m.room.id < a))
        .take(limit as usize + 1)
        .map(my_room)
        .collect();
    Ok(Json(Page::from_overfetch(items, limit, |r| {
        r.room.id.to_string()
    })))
}

/// `?q=` plus paging.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PublicQuery {
    /// Name contains this (case-insensitive).
    pub q: Option<String>,
    #[param(value_type = Option<u32>)]
    pub limit: Option<String>,
    pub cursor: Option<String>,
}

/// Discoverable public rooms.
#[utoipa::path(get, path = "/rooms/public", tag = "rooms", security(("bearer" = [])), params(PublicQuery),
    responses((status = 200, body = Page<RoomBody>)))]
pub(super) async fn list_public_rooms(
    State(state): State<AppState>,
    Query(query): Query<PublicQuery>,
) -> Result<Json<Page<RoomView>>, ApiError> {
    let page = PageParams {
        limit: query.limit,
        cursor: query.cursor,
    };
    let limit = page.limit()?;
    let q = query.q.as_deref().map(str::trim).filter(|q| !q.is_empty());
    let rooms = state
        .store
        .list_public_rooms(q, page.cursor()?, limit + 1)
        .await?;
    let items = rooms.iter().map(RoomView::from).collect();
    Ok(Json(Page::from_overfetch(items, limit, |r| {
        r.id.to_string()
    })))
}

/// A room: members see any of theirs, anyone sees a public one.
#[utoipa::path(get, path = "/rooms/{id}", tag = "rooms", security(("bearer" = [])),
    params(("id" = String, Path)), responses((status = 200, body = RoomBody), (status = 404, body = ErrorEnvelope)))]
pub(super) async fn get_room(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
) -> Result<Json<RoomView>, ApiError> {
    let id: RoomId = path_id(&id)?;
    let room = state
        .store
        .room_by_id(id)
        .await?
        .ok_or(ApiError::NotFound)?;
    if room.visibility != Visibility::Public
        && state.store.member(id, auth.user_id).await?.is_none()
    {
        return Err(ApiError::NotFound);
    }
    Ok(Json(RoomView::from(&room)))
}

/// `PATCH /rooms/{id}`: omitted fields stay; `topic: null` clears it.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateRoom {
    pub name: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub topic: Option<Option<String>>,
}

/// Renames or re-topics a room (admin+).
#[utoipa::path(patch, path = "/rooms/{id}", tag = "rooms", security(("bearer" = [])), request_body = UpdateRoom,
    params(("id" = String, Path)), responses((status = 200, body = RoomBody), (status = 403, body = ErrorEnvelope)))]
pub(super) async fn update_room(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<UpdateRoom>,
) -> Result<Json<RoomView>, ApiError> {
    let id: RoomId = path_id(&id)?;
    let patch = RoomPatch {
        name: body
            .name
            .as_deref()
            .map(|n| RoomName::parse(n).map_err(|e| ApiError::field("name", e.code, e.message)))
            .transpose()?,
        topic: match body.topic {
            None => None,
            Some(None) => Some(None),
            Some(Some(t)) => Some(parse_topic(Some(&t))?),
        },
    };
    let user = auth.user_id;
    let room = state.realtime.rooms().room(id).update(user, patch).await?;
    Ok(Json(RoomView::from(&room)))
}

/// Deletes a room (owner).
#[utoipa::path(delete, path = "/rooms/{id}", tag = "rooms", security(("bearer" = [])),
    params(("id" = String, Path)), responses((status = 204), (status = 403, body = ErrorEnvelope)))]
pub(super) async fn delete_room(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id: RoomId = path_id(&id)?;
    let user = auth.user_id;
    state.realtime.rooms().room(id).delete_room(user).await?;
    Ok(StatusCode::NO_CONTENT)
}
