//! `/admin/*`: users and their sessions, for admins only.
//!
//! Every route here takes [`AdminUser`]: an active admin as stored now
//! (moderators and users get 403). The moderation queue, when it exists,
//! takes [`ModeratorUser`](super::extract::ModeratorUser) instead, which
//! also admits moderators. Each action writes an audit entry whose
//! `details` hold the old and new values.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use parley_actors::domain::{AuditId, Role, SessionId, UserId, UserStatus};
use parley_actors::protocol::close;
use parley_actors::store::{AuditEntry, AuditFilter, Session, User, UserActivity, UserFilter};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::dto::{ErrorEnvelope, Profile, rfc3339};
use super::error::ApiError;
use super::extract::{AdminUser, ApiJson};
use super::pagination::{Page, PageParams};
use super::rooms::path_id;
use super::state::AppState;
use crate::accounts::Client;

/// Longest `?q=` of the user list, in characters.
const MAX_QUERY_CHARS: usize = 100;

/// Routes (authenticated; admins only, checked in the store on every
/// request, so a demoted admin loses access at once).
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_users))
        .routes(routes!(update_user))
        .routes(routes!(list_sessions))
        .routes(routes!(revoke_session))
        .routes(routes!(list_audit))
}

/// `?q=&status=&role=` of `GET /admin/users`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UserQuery {
    /// Part of the username, email or display name (case-insensitive).
    pub q: Option<String>,
    /// `active`, `suspended` or `banned`.
    pub status: Option<String>,
    /// `user`, `moderator` or `admin`.
    pub role: Option<String>,
}

/// A user as the admin list shows it: the profile plus activity.
#[derive(Debug, Serialize, ToSchema)]
pub struct AdminUserView {
    #[serde(flatten)]
    pub profile: Profile,
    /// Logins are refused until then (too many failed attempts).
    #[schema(format = DateTime)]
    pub locked_until: Option<String>,
    /// The latest activity on any of the user's sessions.
    #[schema(format = DateTime)]
    pub last_seen_at: Option<String>,
    /// Open (not revoked) sessions.
    pub sessions: u64,
    /// WebSockets the user has open on this node.
    pub live_sockets: u64,
    /// Messages the user has written.
    pub messages: u64,
}

fn user_view(state: &AppState, a: UserActivity) -> AdminUserView {
    let live_sockets = state.realtime.sockets().user_connections(a.user.id) as u64;
    AdminUserView {
        locked_until: a.user.locked_until.map(rfc3339),
        last_seen_at: a.last_seen_at.map(rfc3339),
        sessions: a.open_sessions,
        live_sockets,
        messages: a.messages,
        profile: a.user.into(),
    }
}

fn parse_param<T: std::str::FromStr<Err = parley_actors::domain::Invalid>>(
    name: &str,
    raw: Option<&str>,
) -> Result<Option<T>, ApiError> {
    match raw {
        None | Some("") => Ok(None),
        Some(raw) => raw
            .parse()
            .map(Some)
            .map_err(|e: parley_actors::domain::Invalid| ApiError::field(name, e.code, e.message)),
    }
}

/// Lists users by username, with their activity; filters combine.
#[utoipa::path(get, path = "/admin/users", tag = "admin", security(("bearer" = [])),
    params(UserQuery, PageParams),
    responses((status = 200, body = Page<AdminUserView>), (status = 403, body = ErrorEnvelope),
        (status = 422, body = ErrorEnvelope)))]
#[tracing::instrument(skip_all, fields(admin = %admin.0.user_id))]
async fn list_users(
    State(state): State<AppState>,
    admin: AdminUser,
    Query(query): Query<UserQuery>,
    Query(page): Query<PageParams>,
) -> Result<Json<Page<AdminUserView>>, ApiError> {
    let limit = page.limit()?;
    let q = query
        .q
        .as_deref()
        .map(str::trim)
        .filter(|q| !q.is_empty())
        .map(str::to_owned);
    if q.as_deref()
        .is_some_and(|q| q.chars().count() > MAX_QUERY_CHARS)
    {
        return Err(ApiError::field(
            "q",
            "too_long",
            format!("q must be at most {MAX_QUERY_CHARS} characters"),
        ));
    }
    let filter = UserFilter {
        q,
        status: parse_param("status", query.status.as_deref())?,
        role: parse_param("role", query.role.as_deref())?,
    };
    let rows = state
        .store
        .list_users(&filter, page.cursor()?, limit + 1)
        .await?;
    let items = rows.into_iter().map(|a| user_view(&state, a)).collect();
    Ok(Json(Page::from_overfetch(items, limit, |u| {
        u.profile.id.clone()
    })))
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

/// Whether `user` counts as an active admin with the change applied.
fn admin_after(user: &User, role: Option<Role>, status: Option<UserStatus>) -> bool {
    role.unwrap_or(user.role) == Role::Admin && status.unwrap_or(user.status) == UserStatus::Active
}

/// Sets a user's status and/or role. Suspending or banning revokes every
/// session of the user and closes their sockets (4003) at once. The last
/// active admin cannot be demoted, suspended or banned (409 `last_admin`).
#[utoipa::path(patch, path = "/admin/users/{id}", tag = "admin", security(("bearer" = [])), request_body = UpdateUser,
    params(("id" = String, Path)),
    responses((status = 200, body = Profile), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope),
        (status = 409, body = ErrorEnvelope, description = "`last_admin`"), (status = 422, body = ErrorEnvelope)))]
#[tracing::instrument(skip_all, fields(admin = %admin.0.user_id))]
async fn update_user(
    State(state): State<AppState>,
    admin: AdminUser,
    client: Client,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<UpdateUser>,
) -> Result<Json<Profile>, ApiError> {
    let id: UserId = path_id(&id)?;
    let status: Option<UserStatus> = parse_param("status", body.status.as_deref())?;
    let role: Option<Role> = parse_param("role", body.role.as_deref())?;
    let before = state
        .store
        .user_by_id(id)
        .await?
        .ok_or(ApiError::NotFound)?;
    let was_admin = admin_after(&before, None, None);
    if was_admin && !admin_after(&before, role, status) {
        // Counted before the change, so the target is among them. Two
        // admins demoting each other at the same instant could both pass;
        // the CLI (`parley user set-role`) is the way back from that.
        if state.store.count_active_admins().await? <= 1 {
            return Err(ApiError::LastAdmin);
        }
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
    let after = state
        .store
        .user_by_id(id)
        .await?
        .ok_or(ApiError::NotFound)?;
    state
        .accounts
        .audit_admin(
            "admin_user_update",
            admin.0.user_id,
            ("user", id.to_string()),
            &client,
            json!({
                "old": {"status": before.status.as_str(), "role": before.role.as_str()},
                "new": {"status": after.status.as_str(), "role": after.role.as_str()},
                "revoked_sessions": revoked,
            }),
        )
        .await;
    Ok(Json(after.into()))
}

/// `?user_id=` of `GET /admin/sessions`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SessionQuery {
    /// Whose sessions (required).
    #[param(format = Uuid)]
    pub user_id: Option<String>,
}

/// A session of any user.
#[derive(Debug, Serialize, ToSchema)]
pub struct AdminSessionView {
    #[schema(format = Uuid)]
    pub id: String,
    #[schema(format = Uuid)]
    pub user_id: String,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub last_seen_at: String,
}

impl From<Session> for AdminSessionView {
    fn from(s: Session) -> Self {
        Self {
            id: s.id.to_string(),
            user_id: s.user_id.to_string(),
            user_agent: s.user_agent,
            ip: s.ip.map(|ip| ip.to_string()),
            created_at: rfc3339(s.created_at),
            last_seen_at: rfc3339(s.last_seen_at),
        }
    }
}

/// Lists a user's live sessions, newest first.
#[utoipa::path(get, path = "/admin/sessions", tag = "admin", security(("bearer" = [])),
    params(SessionQuery, PageParams),
    responses((status = 200, body = Page<AdminSessionView>), (status = 403, body = ErrorEnvelope),
        (status = 404, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope)))]
#[tracing::instrument(skip_all, fields(admin = %admin.0.user_id))]
async fn list_sessions(
    State(state): State<AppState>,
    admin: AdminUser,
    Query(query): Query<SessionQuery>,
    Query(page): Query<PageParams>,
) -> Result<Json<Page<AdminSessionView>>, ApiError> {
    let limit = page.limit()?;
    let user_id: UserId = match query.user_id.as_deref() {
        None | Some("") => {
            return Err(ApiError::field(
                "user_id",
                "required",
                "`user_id` is required",
            ));
        }
        Some(raw) => raw
            .parse()
            .map_err(|_| ApiError::field("user_id", "invalid_id", "user_id is not a valid id"))?,
    };
    if state.store.user_by_id(user_id).await?.is_none() {
        return Err(ApiError::NotFound);
    }
    let rows = state
        .accounts
        .sessions(user_id, page.cursor()?, limit + 1)
        .await?;
    let items = rows.into_iter().map(AdminSessionView::from).collect();
    Ok(Json(Page::from_overfetch(items, limit, |s| s.id.clone())))
}

/// Revokes any user's session: its tokens stop working and its sockets
/// close with 4003 at once.
#[utoipa::path(delete, path = "/admin/sessions/{id}", tag = "admin", security(("bearer" = [])),
    params(("id" = String, Path, description = "session id")),
    responses((status = 204), (status = 403, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
#[tracing::instrument(skip_all, fields(admin = %admin.0.user_id))]
async fn revoke_session(
    State(state): State<AppState>,
    admin: AdminUser,
    client: Client,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id: SessionId = path_id(&id)?;
    let session = state.accounts.revoke_any_session(id).await?;
    state
        .accounts
        .audit_admin(
            "admin_session_revoke",
            admin.0.user_id,
            ("session", id.to_string()),
            &client,
            json!({
                "user_id": session.user_id.to_string(),
                "old": {"revoked": false},
                "new": {"revoked": true, "reason": "admin"},
            }),
        )
        .await;
    Ok(StatusCode::NO_CONTENT)
}

/// `?actor_id=&action=&target_id=&from=&to=` of `GET /admin/audit`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Only entries by this user.
    #[param(format = Uuid)]
    pub actor_id: Option<String>,
    /// Only entries with this action (`login_failed`, `admin_user_update` …).
    pub action: Option<String>,
    /// Only entries about this target (a user, session or room id).
    pub target_id: Option<String>,
    /// Only entries at or after this time (RFC 3339).
    #[param(format = DateTime)]
    pub from: Option<String>,
    /// Only entries before this time (RFC 3339).
    #[param(format = DateTime)]
    pub to: Option<String>,
}

/// One audit log entry.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditView {
    #[schema(format = Uuid)]
    pub id: String,
    #[schema(format = DateTime)]
    pub at: String,
    /// Who did it; null for an anonymous caller (a failed login).
    #[schema(format = Uuid)]
    pub actor_id: Option<String>,
    pub action: String,
    /// `user`, `session`, `room` …
    pub target_type: Option<String>,
    pub target_id: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
    /// What changed: `old` and `new` values where a value changed.
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
}

impl From<AuditEntry> for AuditView {
    fn from(e: AuditEntry) -> Self {
        Self {
            id: e.id.to_string(),
            at: rfc3339(e.at),
            actor_id: e.actor_id.map(|id| id.to_string()),
            action: e.action,
            target_type: e.target_type,
            target_id: e.target_id,
            ip: e.ip.map(|ip| ip.to_string()),
            user_agent: e.user_agent,
            request_id: e.request_id,
            details: e.details,
        }
    }
}

fn time_param(name: &str, raw: Option<&str>) -> Result<Option<DateTime<Utc>>, ApiError> {
    match raw {
        None | Some("") => Ok(None),
        Some(raw) => DateTime::parse_from_rfc3339(raw)
            .map(|t| Some(t.with_timezone(&Utc)))
            .map_err(|_| {
                ApiError::field(
                    name,
                    "invalid_time",
                    format!("{name} must be an RFC 3339 time"),
                )
            }),
    }
}

fn text_param(raw: Option<&str>) -> Option<String> {
    raw.filter(|v| !v.is_empty()).map(str::to_owned)
}

/// Lists the audit log, newest first; filters combine. Read-only: no
/// route edits or deletes entries.
#[utoipa::path(get, path = "/admin/audit", tag = "admin", security(("bearer" = [])),
    params(AuditQuery, PageParams),
    responses((status = 200, body = Page<AuditView>), (status = 403, body = ErrorEnvelope),
        (status = 422, body = ErrorEnvelope)))]
#[tracing::instrument(skip_all, fields(admin = %admin.0.user_id))]
async fn list_audit(
    State(state): State<AppState>,
    admin: AdminUser,
    Query(query): Query<AuditQuery>,
    Query(page): Query<PageParams>,
) -> Result<Json<Page<AuditView>>, ApiError> {
    let limit = page.limit()?;
    let actor_id = match query.actor_id.as_deref() {
        None | Some("") => None,
        Some(raw) => Some(raw.parse::<UserId>().map_err(|_| {
            ApiError::field("actor_id", "invalid_id", "actor_id is not a valid id")
        })?),
    };
    let filter = AuditFilter {
        actor_id,
        action: text_param(query.action.as_deref()),
        target_id: text_param(query.target_id.as_deref()),
        from: time_param("from", query.from.as_deref())?,
        to: time_param("to", query.to.as_deref())?,
    };
    let after: Option<AuditId> = page.cursor()?;
    let rows = state
        .store
        .list_audit_page(&filter, after, limit + 1)
        .await?;
    let items = rows.into_iter().map(AuditView::from).collect();
    Ok(Json(Page::from_overfetch(items, limit, |e| e.id.clone())))
}
