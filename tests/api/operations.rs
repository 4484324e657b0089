//! Operational routes without the `/api/v1` prefix: /health, /ready,
//! /metrics, /openapi.json.

use reqwest::StatusCode;

use crate::helpers::{PASSWORD, Reply, spawn_app, spawn_app_with};

#[tokio::test]
async fn health_answers_200() {
    let app = spawn_app().await;

    let reply = app.get_ops("/health").await;

    reply.assert_status(StatusCode::OK);
}

#[tokio::test]
async fn ready_answers_200_while_the_database_is_up() {
    let app = spawn_app().await;

    let reply = app.get_ops("/ready").await;

    reply.assert_status(StatusCode::OK);
}

#[tokio::test]
async fn ready_answers_503_once_the_database_is_gone_while_health_stays_up() {
    let app = spawn_app().await;
    app.get_ops("/ready").await.assert_status(StatusCode::OK);

    app.store.close().await;

    let ready = app.get_ops("/ready").await;
    ready.assert_error(StatusCode::SERVICE_UNAVAILABLE, "not_ready");
    app.get_ops("/health").await.assert_status(StatusCode::OK);
}

#[tokio::test]
async fn metrics_are_prometheus_text_counting_http_requests() {
    let app = spawn_app().await;
    app.get_ops("/health").await.assert_status(StatusCode::OK);
    app.get_api("/users/profile")
        .await
        .assert_status(StatusCode::UNAUTHORIZED);

    let reply = app.get_ops("/metrics").await;

    reply.assert_status(StatusCode::OK);
    assert!(
        reply
            .header("content-type")
            .is_some_and(|v| v.starts_with("text/plain")),
        "Prometheus text format: {:?}",
        reply.header("content-type")
    );
    assert!(
        reply.text.contains("http_requests_total"),
        "http_requests_total in:\n{}",
        reply.text
    );
}

/// Every metric a dashboard panel or an alert reads, as `/metrics` must
/// show it from the start (counters at zero), before anything happened.
const EXPORTED_FROM_THE_START: &[&str] = &[
    "actor_failures_total{actor=\"room\"}",
    "actor_failures_total{actor=\"connection\"}",
    "actor_failures_total{actor=\"presence\"}",
    "ws_events_shed_total",
    "ws_slow_consumer_closes_total",
    "ws_rate_limited_total",
    "messages_stored_total",
    "account_lockouts_total",
    "auth_failures_total{reason=\"invalid_credentials\"}",
    "rate_limited_total{scope=\"api\"}",
    "ws_connections",
    "users_online",
    "rooms_active",
    "db_pool_connections{state=\"in_use\"}",
    "db_pool_connections{state=\"idle\"}",
    "db_pool_max_connections",
    "db_pool_acquire_duration_seconds_bucket",
    "db_ping_duration_seconds_bucket",
    "db_up",
];

#[tokio::test]
async fn every_metric_is_exported_from_the_start_and_the_database_pool_is_sampled() {
    let app = spawn_app().await;
    // The database sampler runs as the server starts; give it a moment.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let text = loop {
        let reply = app.get_ops("/metrics").await;
        reply.assert_status(StatusCode::OK);
        let missing = EXPORTED_FROM_THE_START
            .iter()
            .any(|name| !reply.text.lines().any(|l| l.starts_with(name)));
        if !missing || std::time::Instant::now() > deadline {
            break reply.text;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    for name in EXPORTED_FROM_THE_START {
        assert!(
            text.lines().any(|l| l.starts_with(name)),
            "{name} missing from /metrics:\n{text}"
        );
    }
    assert!(
        text.lines().any(|l| l == "db_up 1"),
        "the database answers: {text}"
    );
    let max = text
        .lines()
        .find_map(|l| l.strip_prefix("db_pool_max_connections "))
        .and_then(|v| v.parse::<f64>().ok())
        .expect("a pool size");
    assert!(max >= 1.0, "db_pool_max_connections {max}");
}

#[tokio::test]
async fn a_wrong_method_is_counted_under_its_route() {
    let app = spawn_app().await;
    let delete = app
        .client
        .delete(format!("{}/ready", app.base))
        .send()
        .await
        .expect("request sent");
    Reply::of(delete)
        .await
        .assert_status(StatusCode::METHOD_NOT_ALLOWED);

    let reply = app.get_ops("/metrics").await;

    reply.assert_status(StatusCode::OK);
    let line = reply
        .text
        .lines()
        .find(|l| {
            l.starts_with("http_requests_total{")
                && l.contains(r#"route="/ready""#)
                && l.contains(r#"status="405""#)
        })
        .unwrap_or_else(|| panic!("a 405 on /ready in:\n{}", reply.text));
    assert!(line.contains(r#"method="DELETE""#), "{line}");
}

#[tokio::test]
async fn a_failed_login_shows_up_in_the_auth_failure_metric() {
    let app = spawn_app().await;
    app.register_user("alice").await;
    Reply::of(app.login("alice", "Wrong-Horse-42").await)
        .await
        .assert_status(StatusCode::UNAUTHORIZED);

    let reply = app.get_ops("/metrics").await;

    reply.assert_status(StatusCode::OK);
    assert!(
        reply.text.contains("auth_failures_total"),
        "auth_failures_total in:\n{}",
        reply.text
    );
}

#[tokio::test]
async fn a_rate_limited_request_shows_up_in_the_rate_limit_metric() {
    let app = spawn_app_with(|s| s.register_per_minute = 1).await;
    app.register("alice", "alice@example.com", PASSWORD).await;
    app.try_register("bob", "bob@example.com", PASSWORD)
        .await
        .assert_status(StatusCode::TOO_MANY_REQUESTS);

    let reply = app.get_ops("/metrics").await;

    reply.assert_status(StatusCode::OK);
    assert!(
        reply.text.contains("rate_limited_total"),
        "rate_limited_total in:\n{}",
        reply.text
    );
}

#[tokio::test]
async fn the_openapi_document_is_3_1_and_lists_the_account_routes() {
    let app = spawn_app().await;

    let reply = app.get_ops("/openapi.json").await;

    reply.assert_status(StatusCode::OK);
    let version = reply.body["openapi"].as_str().expect("an openapi version");
    assert!(version.starts_with("3.1"), "OpenAPI 3.1, got {version}");
    let paths = reply.body["paths"]
        .as_object()
        .unwrap_or_else(|| panic!("paths is an object: {}", reply.text));
    for path in [
        "/api/v1/auth/register",
        "/api/v1/auth/login",
        "/api/v1/auth/refresh",
        "/api/v1/auth/logout",
        "/api/v1/auth/password",
        "/api/v1/sessions",
        "/api/v1/sessions/{id}",
        "/api/v1/users/profile",
        "/api/v1/admin/users",
        "/api/v1/admin/users/{id}",
        "/api/v1/admin/sessions",
        "/api/v1/admin/sessions/{id}",
        "/api/v1/admin/audit",
    ] {
        assert!(
            paths.contains_key(path),
            "{path} in {:?}",
            paths.keys().collect::<Vec<_>>()
        );
    }
    let register = &paths["/api/v1/auth/register"];
    assert!(
        register.get("post").is_some(),
        "register is a POST: {register}"
    );
    let sessions = &paths["/api/v1/sessions"];
    assert!(
        sessions.get("get").is_some() && sessions.get("delete").is_some(),
        "sessions has GET and DELETE: {sessions}"
    );
}
