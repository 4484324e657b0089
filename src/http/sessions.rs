//! `/sessions`: my devices, and revoking them.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use parley_actors::domain::SessionId;
use parley_actors::store::Session;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::dto::{ErrorEnvelope, RevokedCount, rfc3339};
use super::error::ApiError;
use super::extract::AuthUser;
use super::pagination::{Page, PageParams};
use super::state::AppState;
use crate::accounts::Client;

/// Routes (authenticated).
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_sessions, revoke_other_sessions))
        .routes(routes!(revoke_session))
}

/// One of my sessions.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionView {
    #[schema(format = Uuid)]
    pub id: String,
    /// A short description of the device (currently its user agent).
    pub device: Option<String>,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub last_seen_at: String,
    /// True for the session making this request.
    pub current: bool,
}

fn view(s: Session, current: SessionId) -> SessionView {
    SessionView {
        id: s.id.to_string(),
        device: s.user_agent.clone(),
        user_agent: s.user_agent,
        ip: s.ip.map(|ip| ip.to_string()),
        created_at: rfc3339(s.created_at),
        last_seen_at: rfc3339(s.last_seen_at),
        current: s.id == current,
    }
}

/// Lists my live sessions, newest first.
#[utoipa::path(get, path = "/sessions", tag = "sessions", security(("bearer" = [])),
    params(PageParams),
    responses((status = 200, body = Page<SessionView>), (status = 422, body = ErrorEnvelope)))]
#[tracing::instrument(skip_all, fields(user = %auth.user_id))]
async fn list_sessions(
    State(state): State<AppState>,
    auth: AuthUser,
    Query(page): Query<PageParams>,
) -> Result<Json<Page<SessionView>>, ApiError> {
    let limit = page.limit()?;
    let rows = state
        .accounts
        .sessions(auth.user_id, page.cursor()?, limit + 1)
        .await?;
    let items = rows.into_iter().map(|s| view(s, auth.session_id)).collect();
    Ok(Json(Page::from_overfetch(items, limit, |s| s.id.clone())))
}

/// Revokes one of my sessions; its tokens stop working at once.
#[utoipa::path(delete, path = "/sessions/{id}", tag = "sessions", security(("bearer" = [])),
    params(("id" = String, Path, description = "session id")),
    responses((status = 204), (status = 404, body = ErrorEnvelope)))]
#[tracing::instrument(skip_all, fields(user = %auth.user_id))]
async fn revoke_session(
    State(state): State<AppState>,
    auth: AuthUser,
    client: Client,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id: SessionId = id.parse().map_err(|_| ApiError::NotFound)?;
    state
        .accounts
        .revoke_session(auth.user_id, id, &client)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Revokes all my sessions but the current one.
#[utoipa::path(delete, path = "/sessions", tag = "sessions", security(("bearer" = [])),
    responses((status = 200, body = RevokedCount)))]
#[tracing::instrument(skip_all, fields(user = %auth.user_id))]
async fn revoke_other_sessions(
    State(state): State<AppState>,
    auth: AuthUser,
    client: Client,
) -> Result<Json<RevokedCount>, ApiError> {
    let revoked_sessions = state
        .accounts
        .revoke_other_sessions(auth.user_id, auth.session_id, &client)
        .await?;
    Ok(Json(RevokedCount { revoked_sessions }))
}
