//! `POST /users/report`: a user reports another to the moderators. Stored
//! for the moderators' queue, audited, rate limited per reporter
//! (`reports_per_minute`); nobody can report themselves.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use parley_actors::domain::{MessageId, ReportDetails, ReportId, ReportReason, UserId, Visibility};
use parley_actors::store::Report;
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::dto::ErrorEnvelope;
use super::error::ApiError;
use super::extract::{ApiJson, AuthUser};
use super::state::AppState;
use crate::accounts::Client;

/// Routes (authenticated).
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(report))
}

/// `POST /users/report`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReportRequest {
    /// The user reported.
    #[schema(format = Uuid)]
    pub user_id: String,
    /// `spam`, `abuse`, `harassment` or `other`.
    #[schema(value_type = String, example = "spam")]
    pub reason: ReportReason,
    /// A message by that user that I can see.
    #[schema(format = Uuid)]
    pub message_id: Option<String>,
    /// At most 1000 characters.
    pub details: Option<String>,
}

/// The stored report's id.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReportCreated {
    #[schema(format = Uuid)]
    pub id: String,
}

/// Reports a user (and optionally one of their messages) to the moderators.
#[utoipa::path(post, path = "/users/report", tag = "users", security(("bearer" = [])), request_body = ReportRequest,
    responses((status = 201, body = ReportCreated),
        (status = 404, description = "no such user, or a message I cannot see", body = ErrorEnvelope),
        (status = 422, body = ErrorEnvelope), (status = 429, body = ErrorEnvelope)))]
#[tracing::instrument(skip_all, fields(user = %auth.user_id))]
async fn report(
    State(state): State<AppState>,
    auth: AuthUser,
    client: Client,
    ApiJson(body): ApiJson<ReportRequest>,
) -> Result<Response, ApiError> {
    let reported: UserId = body
        .user_id
        .parse()
        .map_err(|_| ApiError::field("user_id", "invalid_id", "user_id must be a user id"))?;
    if reported == auth.user_id {
        return Err(ApiError::field(
            "user_id",
            "invalid_value",
            "you cannot report yourself",
        ));
    }
    let details = body
        .details
        .as_deref()
        .map(ReportDetails::parse)
        .transpose()
        .map_err(|e| ApiError::field("details", e.code, e.message))?
        .map(ReportDetails::into_inner)
        .filter(|d| !d.is_empty());
    let message_id = match body.message_id.as_deref() {
        None => None,
        Some(raw) => {
            let id: MessageId = raw.parse().map_err(|_| {
                ApiError::field(
                    "message_id",
                    "invalid_id",
                    "message_id must be a message id",
                )
            })?;
            Some(visible_message_by(&state, auth.user_id, reported, id).await?)
        }
    };
    if state.store.user_by_id(reported).await?.is_none() {
        return Err(ApiError::NotFound);
    }
    // Counted once the report is valid: a mistake does not use up the
    // allowance (the per-user API limit still bounds bad requests).
    let info = match state.limits.reports.check(&auth.user_id) {
        Ok(info) => info,
        Err(refusal) => return Ok(refusal.into_response()),
    };
    let stored = state
        .store
        .create_report(Report {
            id: ReportId::new(),
            reporter_id: auth.user_id,
            reported_id: reported,
            reason: body.reason,
            message_id,
            details,
            status: "open".to_owned(),
            created_at: Utc::now(),
        })
        .await?;
    state
        .accounts
        .audit_user_action(
            "report",
            auth.user_id,
            ("user", reported.to_string()),
            &client,
            json!({
                "report_id": stored.id.to_string(),
                "reason": stored.reason.as_str(),
                "message_id": stored.message_id.map(|m| m.to_string()),
            }),
        )
        .await;
    let mut response = (
        StatusCode::CREATED,
        Json(ReportCreated {
            id: stored.id.to_string(),
        }),
    )
        .into_response();
    info.apply(response.headers_mut());
    Ok(response)
}

/// `id`, when it names a message by `author` that `reporter` can see (a
/// member of its room, or the room is public); 404 otherwise, so a report
/// reveals nothing about rooms the reporter is not in. A message by someone
/// else is 422: the report would name the wrong person.
async fn visible_message_by(
    state: &AppState,
    reporter: UserId,
    author: UserId,
    id: MessageId,
) -> Result<MessageId, ApiError> {
    let message = state
        .store
        .message_by_id(id)
        .await?
        .ok_or(ApiError::NotFound)?;
    let member = state
        .store
        .member(message.room_id, reporter)
        .await?
        .is_some();
    let public = state
        .store
        .room_by_id(message.room_id)
        .await?
        .is_some_and(|r| r.visibility == Visibility::Public);
    if !member && !public {
        return Err(ApiError::NotFound);
    }
    if message.author_id != Some(author) {
        return Err(ApiError::field(
            "message_id",
            "invalid_value",
            "the message is not by the reported user",
        ));
    }
    Ok(message.id)
}
