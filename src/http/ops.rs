//! Operations endpoints (no `/api/v1` prefix): liveness, readiness, metrics.

use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use serde::Serialize;
use serde_json::json;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::dto::ErrorEnvelope;
use super::error::ApiError;
use super::state::AppState;

/// `/health` and `/ready`.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(health))
        .routes(routes!(ready))
        .routes(routes!(jwks))
}

/// Liveness and readiness answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// `ok`.
    pub status: &'static str,
    pub version: &'static str,
    pub uptime_s: u64,
    #[schema(value_type = Object)]
    pub checks: serde_json::Value,
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/health", tag = "operations", responses((status = 200, body = Health)))]
async fn health(State(state): State<AppState>) -> Json<Health> {
    Json(Health {
        status: "ok",
        version: env!("CARGO_PKG_VERSION"),
        uptime_s: state.started.elapsed().as_secs(),
        checks: json!({}),
    })
}

/// A JSON Web Key Set (RFC 7517).
#[derive(Debug, Serialize, ToSchema)]
pub struct Jwks {
    /// Ed25519 public keys (`kty` `OKP`, `crv` `Ed25519`, `alg` `EdDSA`,
    /// `use` `sig`, `kid`, `x`): the current signing key and retired keys
    /// whose tokens may still be valid. Empty when tokens are signed with
    /// HS256 (a shared secret is never published).
    #[schema(value_type = Vec<Object>)]
    pub keys: serde_json::Value,
}

/// The public keys that verify Parley's access tokens (pick by the token's `kid`).
#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "operations",
    responses((status = 200, body = Jwks)))]
async fn jwks(State(state): State<AppState>) -> impl IntoResponse {
    let set = state.accounts.keys().ring().jwks();
    (
        [(header::CACHE_CONTROL, "public, max-age=300")],
        Json(Jwks {
            keys: set["keys"].clone(),
        }),
    )
}

/// Readiness: the database answers within 2 s.
#[utoipa::path(get, path = "/ready", tag = "operations",
    responses((status = 200, body = Health), (status = 503, description = "not_ready", body = ErrorEnvelope)))]
async fn ready(State(state): State<AppState>) -> Result<Json<Health>, ApiError> {
    let started = Instant::now();
    let result = tokio::time::timeout(Duration::from_secs(2), state.store.ping()).await;
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    match result {
        Ok(Ok(())) => Ok(Json(Health {
            status: "ok",
            version: env!("CARGO_PKG_VERSION"),
            uptime_s: state.started.elapsed().as_secs(),
            checks: json!({"database": {"status": "ok", "latency_ms": latency_ms}}),
        })),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "readiness: database check failed");
            Err(not_ready("database unreachable", latency_ms))
        }
        Err(_) => Err(not_ready("database timed out", latency_ms)),
    }
}

fn not_ready(message: &str, latency_ms: f64) -> ApiError {
    ApiError::NotReady {
        message: message.to_owned(),
        checks: json!({"database": {"status": "down", "latency_ms": latency_ms}}),
    }
}

/// Prometheus text exposition.
pub async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
}
