//! `/rooms`, `/invites` and `/dm`: rooms, membership and moderation.
//!
//! Reads go to the store; every change goes through the room's actor (or
//! the realtime core), which stores it and tells the members live.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use parley_actors::domain::{InviteId, RoomId, RoomName, RoomRole, RoomTopic, UserId, Visibility};
use parley_actors::protocol::{InviteView, RoomView, wire_time};
use parley_actors::store::{Membership, RoomPatch};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::dto::ErrorEnvelope;
use super::error::ApiError;
use super::extract::{ApiJson, AuthUser};
use super::pagination::{Page, PageParams};
use super::state::AppState;

/// Routes (authenticated).
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_room, list_my_rooms))
        .routes(routes!(list_public_rooms))
        .routes(routes!(get_room, update_room, delete_room))
        .routes(routes!(join_room))
        .routes(routes!(leave_room))
        .routes(routes!(invite))
        .routes(routes!(list_invites))
        .routes(routes!(accept_invite))
        .routes(routes!(decline_invite))
        .routes(routes!(list_members))
        .routes(routes!(kick))
        .routes(routes!(ban, unban))
        .routes(routes!(set_role))
        .routes(routes!(open_dm))
}

/// Parses a path id; an id that is not a UUID names nothing, so 404.
pub fn path_id<T: std::str::FromStr>(raw: &str) -> Result<T, ApiError> {
    raw.parse().map_err(|_| ApiError::NotFound)
}

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
async fn create_room(
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
async fn list_my_rooms(
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
async fn list_public_rooms(
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
async fn get_room(
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

fn double_option<'de, D: serde::Deserializer<'de>>(
    de: D,
) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(de).map(Some)
}

/// Renames or re-topics a room (admin+).
#[utoipa::path(patch, path = "/rooms/{id}", tag = "rooms", security(("bearer" = [])), request_body = UpdateRoom,
    params(("id" = String, Path)), responses((status = 200, body = RoomBody), (status = 403, body = ErrorEnvelope)))]
async fn update_room(
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
async fn delete_room(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id: RoomId = path_id(&id)?;
    let user = auth.user_id;
    state.realtime.rooms().room(id).delete_room(user).await?;
    Ok(StatusCode::NO_CONTENT)
}

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
async fn join_room(
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
async fn leave_room(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id: RoomId = path_id(&id)?;
    let user = auth.user_id;
    state.realtime.rooms().room(id).leave(user).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `{user_id}` in invite, DM and block bodies.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserRef {
    #[schema(format = Uuid)]
    pub user_id: String,
}

impl UserRef {
    /// The id, or a 422 naming `user_id`.
    pub fn id(&self) -> Result<UserId, ApiError> {
        self.user_id
            .parse()
            .map_err(|_| ApiError::field("user_id", "invalid_id", "user_id must be a user id"))
    }
}

/// Invites a user (admin+ for private rooms, any member for public).
#[utoipa::path(post, path = "/rooms/{id}/invites", tag = "rooms", security(("bearer" = [])), request_body = UserRef,
    params(("id" = String, Path)), responses((status = 201, body = InviteBody), (status = 409, body = ErrorEnvelope)))]
async fn invite(
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
async fn list_invites(
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
async fn accept_invite(
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
async fn decline_invite(
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
async fn list_members(
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
                .shown(m.user_id)
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
async fn kick(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(path): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    moderate(&state, &auth, path, Moderation::Kick).await
}

/// Bans a user from the room (admin+ over lower roles).
#[utoipa::path(post, path = "/rooms/{id}/members/{user_id}/ban", tag = "rooms", security(("bearer" = [])),
    params(("id" = String, Path), ("user_id" = String, Path)), responses((status = 204), (status = 403, body = ErrorEnvelope)))]
async fn ban(
    State(state): State<AppState>,
    auth: AuthUser,
    Path(path): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    moderate(&state, &auth, path, Moderation::Ban).await
}

/// Lifts a ban (admin+).
#[utoipa::path(delete, path = "/rooms/{id}/members/{user_id}/ban", tag = "rooms", security(("bearer" = [])),
    params(("id" = String, Path), ("user_id" = String, Path)), responses((status = 204), (status = 404, body = ErrorEnvelope)))]
async fn unban(
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
async fn set_role(
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

/// The direct room between me and another user, created on first use.
#[utoipa::path(post, path = "/dm", tag = "rooms", security(("bearer" = [])), request_body = UserRef,
    responses((status = 200, body = RoomBody), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
async fn open_dm(
    State(state): State<AppState>,
    auth: AuthUser,
    ApiJson(body): ApiJson<UserRef>,
) -> Result<Json<RoomView>, ApiError> {
    let other = body.id()?;
    let room = state.realtime.open_direct(auth.user_id, other).await?;
    Ok(Json(RoomView::from(&room)))
}
