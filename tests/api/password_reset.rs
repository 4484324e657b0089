//! Password reset: the same answer for known and unknown addresses, the
//! single-use token, everything it revokes, and its limits.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;

use crate::chat::spawn_chat_app_with;
use crate::helpers::{NEW_PASSWORD, PASSWORD, Reply, TestApp, spawn_app, spawn_app_with};
use crate::ws_client::WsClient;

async fn forgot(app: &TestApp, email: &str) -> Reply {
    Reply::of(
        app.post_json("/auth/password/forgot", &json!({"email": email}))
            .await,
    )
    .await
}

async fn reset(app: &TestApp, token: &str, new_password: &str) -> Reply {
    Reply::of(
        app.post_json(
            "/auth/password/reset",
            &json!({"token": token, "new_password": new_password}),
        )
        .await,
    )
    .await
}

/// Asks for a reset of `email` and returns the mailed token.
async fn reset_token(app: &TestApp, email: &str, nth: usize) -> String {
    forgot(app, email).await.assert_status(StatusCode::ACCEPTED);
    app.wait_for_mail(email, "Reset your password", nth)
        .await
        .token()
}

#[tokio::test]
async fn forgot_answers_the_same_for_a_known_and_an_unknown_address() {
    let app = spawn_app().await;
    app.register_user("alice").await;

    let known = forgot(&app, "alice@example.com").await;
    let unknown = forgot(&app, "nobody@example.com").await;

    known.assert_status(StatusCode::ACCEPTED);
    unknown.assert_status(StatusCode::ACCEPTED);
    assert_eq!(known.without_request_id(), unknown.without_request_id());
    let header_names = |r: &Reply| {
        let mut names: Vec<String> = r.headers.keys().map(|k| k.to_string()).collect();
        names.retain(|n| n != "date");
        names.sort();
        names
    };
    assert_eq!(header_names(&known), header_names(&unknown));
    app.wait_for_mail("alice@example.com", "Reset your password", 1)
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        app.mails_to("nobody@example.com", "Reset").is_empty(),
        "no mail to an unknown address"
    );
}

#[tokio::test]
async fn a_reset_closes_live_sockets_with_4003_kills_refresh_and_sets_the_password() {
    let app = spawn_chat_app_with(|_| {}).await;
    let alice = app.register_user("alice").await;
    let phone = app.login_ok("alice", PASSWORD).await;
    let mut ws = WsClient::connect(&app, &alice.access).await;
    let mut phone_ws = WsClient::connect(&app, &phone.access).await;
    let token = reset_token(&app, "alice@example.com", 1).await;

    reset(&app, &token, NEW_PASSWORD)
        .await
        .assert_status(StatusCode::NO_CONTENT);

    assert_eq!(
        ws.close_code_within(Duration::from_secs(1)).await,
        Some(4003)
    );
    assert_eq!(
        phone_ws.close_code_within(Duration::from_secs(1)).await,
        Some(4003)
    );
    app.refresh(&alice.refresh)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "invalid_refresh_token");
    assert_eq!(
        app.profile_status(&phone.access).await,
        StatusCode::UNAUTHORIZED
    );
    Reply::of(app.login("alice", PASSWORD).await)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "invalid_credentials");
    app.login_ok("alice", NEW_PASSWORD).await;
    let audit = app
        .store
        .list_audit_entries(Some("password_reset"), 10)
        .await
        .expect("audit");
    assert_eq!(audit.len(), 1, "{audit:?}");
}

#[tokio::test]
async fn a_reset_token_works_once() {
    let app = spawn_app().await;
    app.register_user("alice").await;
    let token = reset_token(&app, "alice@example.com", 1).await;

    reset(&app, &token, NEW_PASSWORD)
        .await
        .assert_status(StatusCode::NO_CONTENT);
    reset(&app, &token, "Another-Horse-99")
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid_token");
    app.login_ok("alice", NEW_PASSWORD).await;
}

#[tokio::test]
async fn a_reset_token_after_expiry_is_invalid() {
    let app = spawn_app_with(|s| s.password_reset_ttl_secs = 1).await;
    app.register_user("alice").await;
    let token = reset_token(&app, "alice@example.com", 1).await;

    tokio::time::sleep(Duration::from_millis(1500)).await;

    reset(&app, &token, NEW_PASSWORD)
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid_token");
    app.login_ok("alice", PASSWORD).await;
}

#[tokio::test]
async fn a_reset_token_after_a_password_change_is_invalid() {
    let app = spawn_app().await;
    let alice = app.register_user("alice").await;
    let token = reset_token(&app, "alice@example.com", 1).await;

    app.post_json_authed(
        "/auth/password",
        &alice.access,
        &json!({"current_password": PASSWORD, "new_password": NEW_PASSWORD}),
    )
    .await
    .assert_status(StatusCode::OK);

    reset(&app, &token, "Another-Horse-99")
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid_token");
    app.login_ok("alice", NEW_PASSWORD).await;
}

#[tokio::test]
async fn a_refused_new_password_does_not_spend_the_token() {
    let app = spawn_app().await;
    app.register_user("alice").await;
    let token = reset_token(&app, "alice@example.com", 1).await;

    let weak = reset(&app, &token, "short").await;
    weak.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert!(weak.body["error"]["details"]["fields"]["new_password"].is_object());

    reset(&app, &token, NEW_PASSWORD)
        .await
        .assert_status(StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn a_reset_clears_the_lockout() {
    let app = spawn_app_with(|s| s.login_max_failures = 2).await;
    app.register_user("alice").await;
    for _ in 0..2 {
        app.login("alice", "Wrong-Horse-42").await;
    }
    Reply::of(app.login("alice", PASSWORD).await)
        .await
        .assert_error(StatusCode::LOCKED, "account_locked");

    let token = reset_token(&app, "alice@example.com", 1).await;
    reset(&app, &token, NEW_PASSWORD)
        .await
        .assert_status(StatusCode::NO_CONTENT);

    app.login_ok("alice", NEW_PASSWORD).await;
}

#[tokio::test]
async fn forgot_is_limited_per_address_known_or_not() {
    let app = spawn_app_with(|s| {
        s.password_forgot_per_address_per_hour = 3;
        s.password_forgot_per_ip_per_hour = 100;
    })
    .await;
    app.register_user("alice").await;

    for email in ["alice@example.com", "nobody@example.com"] {
        for _ in 0..3 {
            forgot(&app, email)
                .await
                .assert_status(StatusCode::ACCEPTED);
        }
        let limited = forgot(&app, email).await;
        limited.assert_error(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
        assert!(limited.header("retry-after").is_some(), "{email}");
    }
    forgot(&app, "carol@example.com")
        .await
        .assert_status(StatusCode::ACCEPTED);
}

#[tokio::test]
async fn forgot_is_limited_per_ip() {
    let app = spawn_app_with(|s| s.password_forgot_per_ip_per_hour = 5).await;

    for n in 0..5 {
        let reply = forgot(&app, &format!("user{n}@example.com")).await;
        reply.assert_status(StatusCode::ACCEPTED);
        assert!(reply.header("x-ratelimit-limit").is_some());
    }
    forgot(&app, "user9@example.com")
        .await
        .assert_error(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
}

#[tokio::test]
async fn forgot_with_something_that_is_not_an_address_is_a_validation_error() {
    let app = spawn_app().await;

    let reply = forgot(&app, "not an address").await;

    reply.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
}

#[tokio::test]
async fn forgot_and_reset_are_audited() {
    let app = spawn_app().await;
    app.register_user("alice").await;
    let token = reset_token(&app, "alice@example.com", 1).await;
    forgot(&app, "nobody@example.com").await;
    reset(&app, &token, NEW_PASSWORD).await;

    let forgot_entries = app
        .store
        .list_audit_entries(Some("password_forgot"), 10)
        .await
        .expect("audit");
    assert_eq!(forgot_entries.len(), 2, "{forgot_entries:?}");
}
