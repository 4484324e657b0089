//! Session policy settings: `session_idle_secs` and
//! `max_sessions_per_user`, each against live sockets too.

use std::time::Duration;

use reqwest::StatusCode;

use crate::chat::spawn_chat_app_with;
use crate::helpers::{PASSWORD, spawn_app};
use crate::ws_client::WsClient;

#[tokio::test]
async fn an_idle_session_dies_its_socket_closes_and_refresh_fails() {
    let app = spawn_chat_app_with(|s| s.session_idle_secs = 2).await;
    let alice = app.register_user("alice").await;
    let mut ws = WsClient::connect(&app, &alice.access).await;

    // Nothing uses the session for longer than the limit.
    assert_eq!(
        ws.close_code_within(Duration::from_secs(6)).await,
        Some(4003),
        "the idle session's socket is closed"
    );
    app.refresh(&alice.refresh)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "invalid_refresh_token");
    assert_eq!(
        app.profile_status(&alice.access).await,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn a_session_in_use_stays_alive_past_the_idle_limit() {
    let app = spawn_chat_app_with(|s| s.session_idle_secs = 2).await;
    let alice = app.register_user("alice").await;
    let mut refresh = alice.refresh.clone();

    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(800)).await;
        let reply = app.refresh(&refresh).await;
        reply.assert_status(StatusCode::OK);
        refresh = reply.body["refresh_token"]
            .as_str()
            .expect("refresh token")
            .to_owned();
    }
}

#[tokio::test]
async fn refreshing_an_idle_session_fails_even_before_the_sweep() {
    let app = spawn_chat_app_with(|s| s.session_idle_secs = 1).await;
    let alice = app.register_user("alice").await;

    tokio::time::sleep(Duration::from_millis(1500)).await;

    app.refresh(&alice.refresh)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "invalid_refresh_token");
}

#[tokio::test]
async fn the_login_past_max_sessions_per_user_revokes_the_oldest_session() {
    let app = spawn_chat_app_with(|s| s.max_sessions_per_user = 2).await;
    let first = app.register_user("alice").await;
    let mut first_ws = WsClient::connect(&app, &first.access).await;
    let second = app.login_ok("alice", PASSWORD).await;

    let third = app.login_ok("alice", PASSWORD).await;

    assert_eq!(
        first_ws.close_code_within(Duration::from_secs(1)).await,
        Some(4003)
    );
    assert_eq!(
        app.profile_status(&first.access).await,
        StatusCode::UNAUTHORIZED
    );
    app.refresh(&first.refresh)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "invalid_refresh_token");
    for live in [&second, &third] {
        assert_eq!(app.profile_status(&live.access).await, StatusCode::OK);
    }
    let sessions = app.get_authed("/sessions", &third.access).await;
    assert_eq!(
        sessions.body["items"].as_array().map(Vec::len),
        Some(2),
        "{}",
        sessions.text
    );
}

#[tokio::test]
async fn by_default_sessions_are_neither_capped_nor_idle_limited() {
    let app = spawn_app().await;
    let first = app.register_user("alice").await;
    for _ in 0..4 {
        app.login_ok("alice", PASSWORD).await;
    }

    assert_eq!(app.profile_status(&first.access).await, StatusCode::OK);
    app.refresh(&first.refresh)
        .await
        .assert_status(StatusCode::OK);
}
