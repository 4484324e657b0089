//! Messages over REST: history, send (the same live result as over the
//! socket), edit, delete, reactions, read markers and search.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use parley_actors::domain::{Emoji, MessageBody, MessageId, RoomId};
use parley_actors::protocol::MessageView;
use parley_actors::store::HistoryQuery;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::dto::ErrorEnvelope;
use super::error::ApiError;
use super::extract::{ApiJson, AuthUser};
use super::pagination::{MAX_LIMIT, Page, PageParams};
use super::rooms::path_id;
use super::state::AppState;

/// Routes (authenticated).
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(history, send))
        .routes(routes!(edit, delete))
        .routes(routes!(react, unreact))
        .routes(routes!(mark_read))
        .routes(routes!(search))
}

/// The message object (documentation of [`MessageView`]).
#[derive(Debug, Serialize, ToSchema)]
pub struct MessageBodyDoc {
    #[schema(format = Uuid)]
    pub id: String,
    #[schema(format = Uuid)]
    pub room_id: String,
    /// 1, 2, 3 … per room, without gaps.
    pub seq: i64,
    #[schema(format = Uuid)]
    pub author_id: Option<String>,
    /// Empty once deleted.
    pub body: String,
    #[schema(format = Uuid)]
    pub reply_to: Option<String>,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub edited_at: Option<String>,
    pub deleted: bool,
    /// Emoji → count.
    #[schema(value_type = Object)]
    pub reactions: serde_json::Value,
    /// The sender's idempotency key, when one was given.
    pub client_id: Option<String>,
}

/// `?before_seq=&after_seq=&limit=`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryParams {
    /// Only messages with a lower seq (newest first).
    #[param(value_type = Option<i64>)]
    pub before_seq: Option<String>,
    /// Only messages with a higher seq (oldest first).
    #[param(value_type = Option<i64>)]
    pub after_seq: Option<String>,
    /// 1–200, default 50.
    #[param(value_type = Option<u32>)]
    pub limit: Option<String>,
    /// `next_cursor` of the previous page (a seq, in the same direction).
    pub cursor: Option<String>,
}

fn seq_param(name: &str, raw: Option<&str>) -> Result<Option<i64>, ApiError> {
    match raw {
        None | Some("") => Ok(None),
        Some(raw) => raw
            .parse::<i64>()
            .ok()
            .filter(|s| *s >= 0)
            .map(Some)
            .ok_or_else(|| {
                ApiError::field(
                    name,
                    "out_of_range",
                    format!("{name} must be a seq (0 or more)"),
                )
            }),
    }
}

async fn require_member(state: &AppState, room: RoomId, auth: &AuthUser) -> Result<(), ApiError> {
    match state.store.member(room, auth.user_id).await? {
        Some(_) => Ok(()),
        None => Err(match state.store.room_by_id(room).await? {
            Some(r) if r.visibility == parley_actors::domain::Visibility::Public => {
                ApiError::Forbidden("join the room to read its messages")
            }
            _ => ApiError::NotFound,
        }),
    }
}

/// History by seq: newest first, or oldest first after `after_seq`.
/// Messages of users I blocked are left out.
#[utoipa::path(get, path = "/rooms/{id}/messages", tag = "messages", security(("bearer" = [])),
    params(("id" = String, Path), HistoryParams),
    responses((status = 200, body = Page<MessageBodyDoc>), (status = 404, body = ErrorEnvelope)))]
async fn history(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
    Query(params): Query<HistoryParams>,
) -> Result<Json<Page<MessageView>>, ApiError> {
    let room: RoomId = path_id(&id)?;
    let limit = PageParams {
        limit: params.limit.clone(),
        cursor: None,
    }
    .limit()?;
    let mut before_seq = seq_param("before_seq", params.before_seq.as_deref())?;
    let mut after_seq = seq_param("after_seq", params.after_seq.as_deref())?;
    if let Some(cursor) = seq_param("cursor", params.cursor.as_deref())? {
        if after_seq.is_some() {
            after_seq = Some(cursor);
        } else {
            before_seq = Some(cursor);
        }
    }
    require_member(&state, room, &auth).await?;
    let messages = state
        .store
        .list_messages(
            room,
            HistoryQuery {
                before_seq,
                after_seq,
                limit: (limit + 1).min(MAX_LIMIT + 1),
                viewer: Some(auth.user_id),
            },
        )
        .await?;
    let items = messages.iter().map(MessageView::from).collect();
    Ok(Json(Page::from_overfetch(items, limit, |m| {
        m.seq.to_string()
    })))
}

/// `POST /rooms/{id}/messages`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SendMessage {
    /// 1–4000 characters.
    pub body: String,
    #[schema(format = Uuid)]
    pub reply_to: Option<String>,
    /// Makes the send idempotent for me in this room (1–64 characters).
    pub client_id: Option<String>,
}

fn parse_body(state: &AppState, raw: &str) -> Result<MessageBody, ApiError> {
    MessageBody::parse_max(raw, state.settings.message_max_chars)
        .map_err(|e| ApiError::field("body", e.code, e.message))
}

/// Posts a message; members get `message.created` exactly as for a socket send.
#[utoipa::path(post, path = "/rooms/{id}/messages", tag = "messages", security(("bearer" = [])), request_body = SendMessage,
    params(("id" = String, Path)),
    responses((status = 201, body = MessageBodyDoc), (status = 403, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)))]
async fn send(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<SendMessage>,
) -> Result<(StatusCode, Json<MessageView>), ApiError> {
    let room: RoomId = path_id(&id)?;
    let text = parse_body(&state, &body.body)?;
    let reply_to = body
        .reply_to
        .as_deref()
        .map(|r| {
            r.parse::<MessageId>().map_err(|_| {
                ApiError::field("reply_to", "invalid_id", "reply_to must be a message id")
            })
        })
        .transpose()?;
    let author = auth.user_id;
    let message = state
        .realtime
        .rooms()
        .room(room)
        .send(author, text, reply_to, body.client_id)
        .await?;
    Ok((StatusCode::CREATED, Json(MessageView::from(&message))))
}

/// `PATCH …/messages/{mid}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EditMessage {
    pub body: String,
}

/// Edits my message.
#[utoipa::path(patch, path = "/rooms/{id}/messages/{mid}", tag = "messages", security(("bearer" = [])), request_body = EditMessage,
    params(("id" = String, Path), ("mid" = String, Path)),
    responses((status = 200, body = MessageBodyDoc), (status = 403, body = ErrorEnvelope)))]
async fn edit(
    State(state): State<AppState>,
    auth: AuthUser,
    Path((room, mid)): Path<(String, String)>,
    ApiJson(body): ApiJson<EditMessage>,
) -> Result<Json<MessageView>, ApiError> {
    let (room, message_id): (RoomId, MessageId) = (path_id(&room)?, path_id(&mid)?);
    let text = parse_body(&state, &body.body)?;
    let user = auth.user_id;
    let message = state
        .realtime
        .rooms()
        .room(room)
        .edit(user, message_id, text)
        .await?;
    Ok(Json(MessageView::from(&message)))
}

/// Deletes a message (author, or room admin+).
#[utoipa::path(delete, path = "/rooms/{id}/messages/{mid}", tag = "messages", security(("bearer" = [])),
    params(("id" = String, Path), ("mid" = String, Path)),
    responses((status = 204), (status = 403, body = ErrorEnvelope)))]
async fn delete(
    State(state): State<AppState>,
    auth: AuthUser,
    Path((room, mid)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let (room, message_id): (RoomId, MessageId) = (path_id(&room)?, path_id(&mid)?);
    let user = auth.user_id;
    state
        .realtime
        .rooms()
        .room(room)
        .delete(user, message_id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn reaction(
    state: &AppState,
    auth: &AuthUser,
    (room, mid, emoji): (String, String, String),
    add: bool,
) -> Result<StatusCode, ApiError> {
    let (room, message_id): (RoomId, MessageId) = (path_id(&room)?, path_id(&mid)?);
    let emoji = Emoji::parse(&emoji).map_err(|e| ApiError::field("emoji", e.code, e.message))?;
    let user = auth.user_id;
    state
        .realtime
        .rooms()
        .room(room)
        .react(user, message_id, emoji, add)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Adds my reaction (idempotent).
#[utoipa::path(put, path = "/rooms/{id}/messages/{mid}/reactions/{emoji}", tag = "messages", security(("bearer" = [])),
    params(("id" = String, Path), ("mid" = String, Path), ("emoji" = String, Path, description = "URL-encoded emoji")),
    responses((status = 204), (status = 422, body = ErrorEnvelope)))]
async fn react(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(path): Path<(String, String, String)>,
) -> Result<StatusCode, ApiError> {
    reaction(&state, &auth, path, true).await
}

/// Removes my reaction (idempotent).
#[utoipa::path(delete, path = "/rooms/{id}/messages/{mid}/reactions/{emoji}", tag = "messages", security(("bearer" = [])),
    params(("id" = String, Path), ("mid" = String, Path), ("emoji" = String, Path)),
    responses((status = 204)))]
async fn unreact(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(path): Path<(String, String, String)>,
) -> Result<StatusCode, ApiError> {
    reaction(&state, &auth, path, false).await
}

/// `{seq}`.
#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReadMarker {
    pub seq: i64,
}

/// Moves my read marker (never backwards); drives `unread_count`.
#[utoipa::path(post, path = "/rooms/{id}/read", tag = "messages", security(("bearer" = [])), request_body = ReadMarker,
    params(("id" = String, Path)), responses((status = 200, body = ReadMarker)))]
async fn mark_read(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<ReadMarker>,
) -> Result<Json<ReadMarker>, ApiError> {
    let room: RoomId = path_id(&id)?;
    let user = auth.user_id;
    let seq = body.seq;
    let marker = state
        .realtime
        .rooms()
        .room(room)
        .read(user, seq, None)
        .await?;
    Ok(Json(ReadMarker { seq: marker }))
}

/// `?q=&room_id=`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SearchParams {
    /// Words to find.
    pub q: Option<String>,
    /// Only this room.
    pub room_id: Option<String>,
    #[param(value_type = Option<u32>)]
    pub limit: Option<String>,
}

/// Full-text search over the rooms I am in.
#[utoipa::path(get, path = "/search/messages", tag = "messages", security(("bearer" = [])), params(SearchParams),
    responses((status = 200, body = Page<MessageBodyDoc>), (status = 422, body = ErrorEnvelope)))]
async fn search(
    State(state): State<AppState>,
    auth: AuthUser,
    Query(params): Query<SearchParams>,
) -> Result<Json<Page<MessageView>>, ApiError> {
    let q = params.q.as_deref().map(str::trim).unwrap_or_default();
    if q.is_empty() || q.chars().count() > 200 {
        return Err(ApiError::field(
            "q",
            "invalid_value",
            "q must be 1–200 characters",
        ));
    }
    let limit = PageParams {
        limit: params.limit.clone(),
        cursor: None,
    }
    .limit()?;
    let room = params
        .room_id
        .as_deref()
        .map(|r| {
            r.parse::<RoomId>()
                .map_err(|_| ApiError::field("room_id", "invalid_id", "room_id must be a room id"))
        })
        .transpose()?;
    let found = state
        .store
        .search_messages(auth.user_id, q, room, limit)
        .await?;
    Ok(Json(Page {
        items: found.iter().map(MessageView::from).collect(),
        next_cursor: None,
    }))
}
