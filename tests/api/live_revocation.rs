//! Revoking a session closes its sockets at once with 4003: logout, session
//! revoke, password change.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;

use crate::chat::spawn_chat_app;
use crate::helpers::{NEW_PASSWORD, PASSWORD};
use crate::ws_client::{Connect, WsClient, upgrade_status};

/// How quickly a revoked session's socket must close.
const PROMPTLY: Duration = Duration::from_secs(1);

#[tokio::test]
async fn logout_closes_the_sessions_socket_with_4003_within_a_second() {
    let app = spawn_chat_app().await;
    let alice = app.register_user("alice").await;
    let mut ws = WsClient::connect(&app, &alice.access).await;
    let mut by_frame = WsClient::connect_with_auth_frame(&app, &alice.access).await;

    let reply = app.post_authed("/auth/logout", &alice.access).await;
    assert!(reply.status.is_success(), "{} {}", reply.status, reply.text);

    assert_eq!(ws.close_code_within(PROMPTLY).await, Some(4003));
    assert_eq!(by_frame.close_code_within(PROMPTLY).await, Some(4003));
    let how = Connect {
        bearer: Some(&alice.access),
        ..Connect::default()
    };
    assert_eq!(
        upgrade_status(WsClient::open(&app, how).await),
        401,
        "the logged-out token cannot open a new socket"
    );
}

#[tokio::test]
async fn revoking_a_session_closes_only_that_sessions_socket() {
    let app = spawn_chat_app().await;
    let laptop = app.register_user("alice").await;
    let phone = app.login_ok("alice", PASSWORD).await;
    let mut laptop_ws = WsClient::connect(&app, &laptop.access).await;
    let mut phone_ws = WsClient::connect(&app, &phone.access).await;

    app.delete_authed(&format!("/sessions/{}", phone.session_id), &laptop.access)
        .await
        .assert_status(StatusCode::NO_CONTENT);

    assert_eq!(phone_ws.close_code_within(PROMPTLY).await, Some(4003));
    assert_eq!(
        laptop_ws.request(json!({"type": "ping"})).await["type"],
        "pong",
        "the other session's socket stays"
    );
}

#[tokio::test]
async fn changing_the_password_closes_the_other_sessions_sockets() {
    let app = spawn_chat_app().await;
    let laptop = app.register_user("alice").await;
    let phone = app.login_ok("alice", PASSWORD).await;
    let mut laptop_ws = WsClient::connect(&app, &laptop.access).await;
    let mut phone_ws = WsClient::connect(&app, &phone.access).await;

    let reply = app
        .post_json_authed(
            "/auth/password",
            &laptop.access,
            &json!({"current_password": PASSWORD, "new_password": NEW_PASSWORD}),
        )
        .await;
    assert!(reply.status.is_success(), "{} {}", reply.status, reply.text);

    assert_eq!(phone_ws.close_code_within(PROMPTLY).await, Some(4003));
    assert_eq!(
        laptop_ws.request(json!({"type": "ping"})).await["type"],
        "pong",
        "the session that changed the password keeps its socket"
    );
}

#[tokio::test]
async fn revoking_all_other_sessions_closes_their_sockets() {
    let app = spawn_chat_app().await;
    let laptop = app.register_user("alice").await;
    let phone = app.login_ok("alice", PASSWORD).await;
    let tablet = app.login_ok("alice", PASSWORD).await;
    let mut laptop_ws = WsClient::connect(&app, &laptop.access).await;
    let mut phone_ws = WsClient::connect(&app, &phone.access).await;
    let mut tablet_ws = WsClient::connect(&app, &tablet.access).await;

    let reply = app.delete_authed("/sessions", &laptop.access).await;
    assert!(reply.status.is_success(), "{} {}", reply.status, reply.text);

    assert_eq!(phone_ws.close_code_within(PROMPTLY).await, Some(4003));
    assert_eq!(tablet_ws.close_code_within(PROMPTLY).await, Some(4003));
    assert_eq!(
        laptop_ws.request(json!({"type": "ping"})).await["type"],
        "pong"
    );
}

#[tokio::test]
async fn a_graceful_shutdown_closes_sockets_with_1001_after_acked_messages() {
    let (app, shutdown) = crate::helpers::spawn_app_with_shutdown(crate::chat::relax_limits).await;
    let alice = app.register_user("alice").await;
    let bob = app.register_user("bob").await;
    let room = crate::chat::public_room(&app, &alice, "general").await;
    crate::chat::join(&app, &bob.access, &room).await;
    let mut alice_ws = WsClient::connect(&app, &alice.access).await;
    let mut bob_ws = WsClient::connect(&app, &bob.access).await;
    let sent = alice_ws.send_message(&room, "last words").await;

    shutdown.shutdown();

    assert_eq!(alice_ws.close_code().await, 1001);
    assert_eq!(bob_ws.close_code().await, 1001);
    assert!(
        bob_ws
            .backlog()
            .iter()
            .any(|v| v["type"] == "message.created" && v["message"]["id"] == sent["id"]),
        "an acked message is delivered before the 1001: {:?}",
        bob_ws.backlog()
    );
}

#[tokio::test]
async fn suspending_or_banning_a_user_closes_all_their_sockets_with_4003() {
    let app = spawn_chat_app().await;
    let admin = app.register_user("root").await;
    // Setup only: promote through the store, as `parley user create --admin`
    // would; everything under test goes through the API.
    let admin_id: parley_actors::domain::UserId =
        crate::chat::uid(&admin).parse().expect("a user id");
    app.store
        .update_user_role_status(
            admin_id,
            Some(parley_actors::domain::Role::Admin),
            None,
            chrono::Utc::now(),
        )
        .await
        .expect("promote to admin");
    let bob = app.register_user("bob").await;
    let carol = app.register_user("carol").await;
    let bob_phone = app.login_ok("bob", PASSWORD).await;
    let mut bob_ws = WsClient::connect(&app, &bob.access).await;
    let mut bob_phone_ws = WsClient::connect(&app, &bob_phone.access).await;
    let mut carol_ws = WsClient::connect(&app, &carol.access).await;
    let mut admin_ws = WsClient::connect(&app, &admin.access).await;

    for (user, status, sockets) in [
        (&bob, "suspended", vec![&mut bob_ws, &mut bob_phone_ws]),
        (&carol, "banned", vec![&mut carol_ws]),
    ] {
        let reply = crate::chat::patch_json(
            &app,
            &format!("/admin/users/{}", crate::chat::uid(user)),
            &admin.access,
            &json!({"status": status}),
        )
        .await;
        reply.assert_status(StatusCode::OK);
        for ws in sockets {
            assert_eq!(ws.close_code_within(PROMPTLY).await, Some(4003), "{status}");
        }
    }
    assert_eq!(
        admin_ws.request(json!({"type": "ping"})).await["type"],
        "pong"
    );
    let how = Connect {
        bearer: Some(&bob.access),
        ..Connect::default()
    };
    assert_eq!(upgrade_status(WsClient::open(&app, how).await), 401);
}
