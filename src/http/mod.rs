//! The HTTP surface: one module per resource, each with its own router,
//! assembled here with the cross-cutting layers (request ids, the error
//! envelope, metrics, rate limits, security headers, CORS, body limits).

pub mod account_mail;
pub mod admin;
pub mod auth;
pub mod dto;
pub mod error;
pub mod extract;
pub mod messages;
pub mod ops;
pub mod pagination;
pub mod ratelimit;
pub mod reports;
pub mod rooms;
pub mod sessions;
pub mod settings;
pub mod state;
pub mod two_factor;
pub mod users;
pub mod web;
pub mod ws;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderName, HeaderValue, Method, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tower::ServiceBuilder;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;
use utoipa::OpenApi;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa_axum::router::OpenApiRouter;

use self::error::ApiError;
use self::ratelimit::{IpLimit, limit_by_ip};
use self::state::AppState;
use crate::telemetry;

const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Content-Security-Policy for every response: only our own origin, never
/// framed.
const CSP: &str = "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

#[derive(OpenApi)]
#[openapi(
    info(title = "Parley", description = "Realtime-first self-hosted chat server. Errors use the envelope `{error: {code, message, details?}, request_id}`; see docs/api.md for the refinements of the contract."),
    modifiers(&BearerAuth),
    tags(
        (name = "auth", description = "Accounts and tokens"),
        (name = "sessions", description = "My sessions (devices)"),
        (name = "users", description = "Profiles and blocks"),
        (name = "rooms", description = "Rooms, members, invites and direct rooms"),
        (name = "messages", description = "History, sending, edits, reactions, read markers, search"),
        (name = "admin", description = "Operators (role admin)"),
        (name = "operations", description = "Liveness and readiness"),
    )
)]
struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                Http::builder()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// The API routes and their OpenAPI document.
pub fn api(state: &AppState) -> (Router<AppState>, utoipa::openapi::OpenApi) {
    let trust = state.settings.trust_forwarded_for;
    let register_limit = IpLimit {
        limiter: state.limits.register.clone(),
        trust_forwarded_for: trust,
    };
    let login_limit = IpLimit {
        limiter: state.limits.login.clone(),
        trust_forwarded_for: trust,
    };
    let forgot_limit = IpLimit {
        limiter: state.limits.forgot.clone(),
        trust_forwarded_for: trust,
    };
    let authed = auth::authed_router()
        .merge(two_factor::router())
        .merge(account_mail::authed_router())
        .merge(sessions::router())
        .merge(users::router())
        .merge(settings::router())
        .merge(reports::router())
        .merge(rooms::router())
        .merge(messages::router())
        .merge(admin::router())
        .route_layer(middleware::from_fn_with_state(state.clone(), require_auth));
    let v1 = auth::register_router()
        .route_layer(middleware::from_fn_with_state(register_limit, limit_by_ip))
        .merge(
            auth::login_router()
                .merge(account_mail::public_router())
                .route_layer(middleware::from_fn_with_state(login_limit, limit_by_ip)),
        )
        .merge(
            account_mail::forgot_router()
                .route_layer(middleware::from_fn_with_state(forgot_limit, limit_by_ip)),
        )
        .merge(authed);
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .nest("/api/v1", v1)
        .merge(ops::router())
        .split_for_parts()
}

/// The whole application router.
pub fn router(state: AppState, serve_metrics: bool) -> Router {
    let (api, openapi) = api(&state);
    let openapi = Arc::new(openapi.to_json().unwrap_or_else(|_| "{}".to_owned()));
    let mut router = api.route(
        "/openapi.json",
        get(move || {
            let doc = Arc::clone(&openapi);
            async move {
                (
                    [(header::CONTENT_TYPE, "application/json")],
                    doc.as_str().to_owned(),
                )
            }
        }),
    );
    // The socket endpoint authenticates itself (header or first frame).
    router = router.route("/ws", get(ws::upgrade));
    router = router.merge(web::router());
    if serve_metrics {
        router = router.route("/metrics", get(ops::metrics));
    }
    let settings = Arc::clone(&state.settings);
    router
        .route_layer(middleware::from_fn(track_metrics))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
        .layer(
            ServiceBuilder::new()
                .layer(SetRequestIdLayer::new(REQUEST_ID, MakeRequestUuid))
                .layer(PropagateRequestIdLayer::new(REQUEST_ID))
                .layer(TraceLayer::new_for_http())
                .layer(SetResponseHeaderLayer::if_not_present(
                    header::CONTENT_SECURITY_POLICY,
                    HeaderValue::from_static(CSP),
                ))
                .layer(SetResponseHeaderLayer::if_not_present(
                    header::X_CONTENT_TYPE_OPTIONS,
                    HeaderValue::from_static("nosniff"),
                ))
                .layer(SetResponseHeaderLayer::if_not_present(
                    header::REFERRER_POLICY,
                    HeaderValue::from_static("no-referrer"),
                ))
                .layer(SetResponseHeaderLayer::if_not_present(
                    header::X_FRAME_OPTIONS,
                    HeaderValue::from_static("DENY"),
                ))
                .layer(middleware::from_fn_with_state(
                    Arc::new(settings.allowed_origins()),
                    no_cors_for_foreign_origins,
                ))
                .layer(cors(&settings.allowed_origins()))
                .layer(middleware::from_fn(error::envelope))
                .layer(middleware::map_response(close_after_413))
                .layer(middleware::from_fn(extract::refuse_nul_in_query))
                .layer(TimeoutLayer::with_status_code(
                    axum::http::StatusCode::REQUEST_TIMEOUT,
                    Duration::from_secs(settings.request_timeout_secs),
                ))
                .layer(DefaultBodyLimit::max(settings.body_limit_bytes)),
        )
}

/// Just `/metrics`, for a separate listener.
pub fn metrics_router(state: AppState) -> Router {
    Router::new()
        .route("/metrics", get(ops::metrics))
        .with_state(state)
}

async fn not_found() -> Response {
    metrics::counter!(telemetry::HTTP_REQUESTS, "method" => "any", "route" => "unmatched", "status" => "404")
        .increment(1);
    ApiError::NotFound.into_response()
}

/// A route that exists, asked with a method it does not take. Counted like
/// any routed request; a method outside HTTP's own set is labelled `other`,
/// so clients cannot mint label values.
async fn method_not_allowed(method: Method, route: Option<MatchedPath>) -> Response {
    let method = match method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::TRACE => "TRACE",
        Method::CONNECT => "CONNECT",
        _ => "other",
    };
    let route = route.map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    metrics::counter!(telemetry::HTTP_REQUESTS, "method" => method, "route" => route, "status" => "405")
        .increment(1);
    axum::http::StatusCode::METHOD_NOT_ALLOWED.into_response()
}

/// A request from an origin that is not allowed gets nothing CORS-related:
/// tower-http answers every preflight with the credentials flag and the
/// method and header lists, and leaves out only the allowed origin.
async fn no_cors_for_foreign_origins(
    State(allowed): State<Arc<Vec<String>>>,
    request: Request,
    next: Next,
) -> Response {
    let foreign = request
        .headers()
        .get(header::ORIGIN)
        .is_some_and(|origin| !allowed.iter().any(|a| a.as_bytes() == origin.as_bytes()));
    let mut response = next.run(request).await;
    if foreign {
        let headers = response.headers_mut();
        let cors: Vec<HeaderName> = headers
            .keys()
            .filter(|name| name.as_str().starts_with("access-control-"))
            .cloned()
            .collect();
        for name in cors {
            headers.remove(name);
        }
    }
    response
}

/// A 413 leaves the rest of the body unread, so the connection cannot
/// carry another request: say so, and the server closes it after the
/// response (a client would otherwise send its next request into it).
async fn close_after_413(mut response: Response) -> Response {
    if response.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

fn cors(origins: &[String]) -> CorsLayer {
    let origins: Vec<HeaderValue> = origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins))
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
        ])
        .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE, REQUEST_ID])
        .expose_headers([
            REQUEST_ID,
            header::RETRY_AFTER,
            HeaderName::from_static("x-ratelimit-limit"),
            HeaderName::from_static("x-ratelimit-remaining"),
            HeaderName::from_static("x-ratelimit-reset"),
        ])
        .allow_credentials(true)
        .max_age(Duration::from_secs(600))
}

/// Counts every routed request by route template and status.
async fn track_metrics(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = request.method().to_string();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!(telemetry::HTTP_REQUESTS, "method" => method.clone(), "route" => route.clone(), "status" => status)
        .increment(1);
    metrics::histogram!(telemetry::HTTP_DURATION, "method" => method, "route" => route)
        .record(started.elapsed().as_secs_f64());
    response
}

/// Authenticated routes: checks the bearer token (signature, expiry, not
/// revoked), applies the per-user rate limit and hands the user to the
/// handler as an [`extract::AuthUser`] extension.
async fn require_auth(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let Some(token) = extract::bearer_token(request.headers()) else {
        let has_header = request.headers().contains_key(header::AUTHORIZATION);
        metrics::counter!(telemetry::AUTH_FAILURES, "reason" => "missing").increment(1);
        return if has_header {
            ApiError::InvalidToken("authorization header must be `Bearer <token>`").into_response()
        } else {
            ApiError::Unauthenticated.into_response()
        };
    };
    let user = match state.accounts.authenticate(&token).await {
        Ok(who) => extract::AuthUser::from(who),
        Err(e) => return ApiError::from(e).into_response(),
    };
    let info = match state.limits.api.check(&user.user_id) {
        Ok(info) => info,
        Err(refusal) => return refusal.into_response(),
    };
    request.extensions_mut().insert(user);
    let mut response = next.run(request).await;
    info.apply_unless_set(response.headers_mut());
    response
}
