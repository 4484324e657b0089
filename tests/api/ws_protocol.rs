//! `GET /ws`: both ways to authenticate, `ready`, the auth timeout, the
//! `Origin` check, and how the server answers frames it cannot use.

use std::time::Duration;

use serde_json::json;

use crate::chat::{post_message, public_room, spawn_chat_app, spawn_chat_app_with, text, uid};
use crate::helpers::spawn_app_with;
use crate::ws_client::{Connect, WsClient, upgrade_status};

#[tokio::test]
async fn a_bearer_header_gets_ready_with_my_rooms_and_their_counts() {
    let app = spawn_chat_app().await;
    let alice = app.register_user("alice").await;
    let bob = app.register_user("bob").await;
    let room = public_room(&app, &alice, "general").await;
    crate::chat::join(&app, &bob.access, &room).await;
    post_message(&app, &bob.access, &room, "one").await;
    post_message(&app, &bob.access, &room, "two").await;

    let ws = WsClient::connect(&app, &alice.access).await;

    let ready = &ws.ready;
    assert_eq!(ready["session_id"], alice.session_id.as_str(), "{ready}");
    assert_eq!(ready["user"]["id"], uid(&alice).as_str(), "{ready}");
    assert_eq!(ready["user"]["username"], "alice", "{ready}");
    assert_eq!(
        ready["heartbeat_interval_ms"], 30_000,
        "the default heartbeat is 30 s: {ready}"
    );
    let rooms = ready["rooms"].as_array().expect("rooms is an array");
    assert_eq!(rooms.len(), 1, "{ready}");
    assert_eq!(rooms[0]["id"], room.as_str());
    assert_eq!(rooms[0]["name"], "general");
    assert_eq!(rooms[0]["last_seq"], 2, "{ready}");
    assert_eq!(
        rooms[0]["unread_count"], 2,
        "bob's two messages are unread for alice: {ready}"
    );
}

#[tokio::test]
async fn a_first_auth_frame_authenticates_a_socket_without_a_header() {
    let app = spawn_chat_app().await;
    let alice = app.register_user("alice").await;

    let mut ws = WsClient::connect_with_auth_frame(&app, &alice.access).await;

    assert_eq!(ws.ready["user"]["id"], uid(&alice).as_str());
    assert_eq!(ws.ready["session_id"], alice.session_id.as_str());
    assert!(ws.ready["rooms"].as_array().is_some_and(Vec::is_empty));
    let pong = ws.request(json!({"type": "ping", "ref": "p1"})).await;
    assert_eq!(pong, json!({"type": "pong", "ref": "p1"}));
}

#[tokio::test]
async fn a_socket_that_never_authenticates_is_closed_with_4001_after_the_auth_timeout() {
    let app = spawn_app_with(|s| s.ws_auth_timeout_secs = 1).await;
    let mut ws = WsClient::open(&app, Connect::default())
        .await
        .expect("the upgrade itself needs no token");

    let started = std::time::Instant::now();
    let code = ws.close_code_within(Duration::from_secs(5)).await;

    assert_eq!(code, Some(4001));
    assert!(
        started.elapsed() >= Duration::from_millis(800),
        "not before the timeout: {:?}",
        started.elapsed()
    );
    assert!(ws.backlog().is_empty(), "no frames: {:?}", ws.backlog());
}

#[tokio::test]
async fn a_bad_bearer_token_refuses_the_upgrade_with_401() {
    let app = spawn_chat_app().await;
    let alice = app.register_user("alice").await;
    let mut forged = alice.access.clone();
    forged.push('x');

    for token in ["not-a-jwt", forged.as_str()] {
        let how = Connect {
            bearer: Some(token),
            ..Connect::default()
        };
        let status = upgrade_status(WsClient::open(&app, how).await);
        assert_eq!(status, 401, "token {token:?}");
    }
}

#[tokio::test]
async fn a_bad_token_in_the_auth_frame_closes_with_4001() {
    let app = spawn_chat_app().await;
    let mut ws = WsClient::open(&app, Connect::default())
        .await
        .expect("upgrade");

    ws.send(json!({"type": "auth", "token": "garbage.token.here"}))
        .await;

    assert_eq!(ws.close_code().await, 4001);
}

#[tokio::test]
async fn a_first_frame_that_is_not_auth_closes_with_4001() {
    let app = spawn_chat_app().await;
    let mut ws = WsClient::open(&app, Connect::default())
        .await
        .expect("upgrade");

    ws.send(json!({"type": "ping", "ref": "x"})).await;

    assert_eq!(ws.close_code().await, 4001);
}

#[tokio::test]
async fn an_upgrade_from_a_foreign_origin_is_refused_with_403() {
    let app = spawn_chat_app_with(|s| s.cors_allowed_origins = "https://chat.example".into()).await;
    let alice = app.register_user("alice").await;

    let foreign = Connect {
        bearer: Some(&alice.access),
        origin: Some("https://evil.example"),
        ..Connect::default()
    };
    assert_eq!(upgrade_status(WsClient::open(&app, foreign).await), 403);

    let allowed = Connect {
        bearer: Some(&alice.access),
        origin: Some("https://chat.example"),
        ..Connect::default()
    };
    let ws = WsClient::connect_with(&app, allowed).await;
    assert_eq!(ws.ready["type"], "ready");
}

#[tokio::test]
async fn a_ping_gets_a_pong_with_the_same_ref() {
    let app = spawn_chat_app().await;
    let alice = app.register_user("alice").await;
    let mut ws = WsClient::connect(&app, &alice.access).await;

    ws.send(json!({"type": "ping", "ref": "abc-123"})).await;

    assert_eq!(
        ws.next_of_type("pong").await,
        json!({"type": "pong", "ref": "abc-123"})
    );
}

#[tokio::test]
async fn malformed_json_gets_an_error_frame_and_the_socket_keeps_working() {
    let app = spawn_chat_app().await;
    let alice = app.register_user("alice").await;
    let mut ws = WsClient::connect(&app, &alice.access).await;

    ws.send_text("{this is not json").await;

    let error = ws.next_of_type("error").await;
    assert_eq!(error["code"], "malformed_frame", "{error}");
    assert!(error["message"].as_str().is_some_and(|m| !m.is_empty()));
    let pong = ws.request(json!({"type": "ping"})).await;
    assert_eq!(pong["type"], "pong", "the socket still works: {pong}");
}

#[tokio::test]
async fn an_unknown_type_gets_unknown_type_with_the_ref() {
    let app = spawn_chat_app().await;
    let alice = app.register_user("alice").await;
    let mut ws = WsClient::connect(&app, &alice.access).await;

    let error = ws
        .expect_error(json!({"type": "teleport", "ref": "t1"}), "unknown_type")
        .await;

    assert_eq!(error["ref"], "t1");
    assert_eq!(ws.request(json!({"type": "ping"})).await["type"], "pong");
}

#[tokio::test]
async fn a_frame_missing_fields_gets_invalid_frame() {
    let app = spawn_chat_app().await;
    let alice = app.register_user("alice").await;
    let room = public_room(&app, &alice, "general").await;
    let mut ws = WsClient::connect(&app, &alice.access).await;

    ws.expect_error(
        json!({"type": "message.send", "room_id": room, "ref": "m1"}),
        "invalid_frame",
    )
    .await;
    ws.expect_error(json!({"type": "read", "ref": "m2"}), "invalid_frame")
        .await;
    // Not an object with a type at all.
    ws.send_text("[1, 2, 3]").await;
    assert_eq!(ws.next_of_type("error").await["code"], "invalid_frame");
    assert_eq!(ws.request(json!({"type": "ping"})).await["type"], "pong");
}

#[tokio::test]
async fn an_array_shaped_like_a_frame_is_not_taken_for_one() {
    let app = spawn_chat_app().await;
    let alice = app.register_user("alice").await;
    let mut ws = WsClient::connect(&app, &alice.access).await;

    // serde reads an internally tagged enum from an array too: tag first,
    // then the fields in order. Frames are objects.
    ws.send_text(r#"["ping", "p1"]"#).await;

    let error = ws.next_of_type("error").await;
    assert_eq!(error["code"], "invalid_frame", "{error}");
    let pong = ws.request(json!({"type": "ping"})).await;
    assert_eq!(pong["type"], "pong", "the socket still works: {pong}");
}

#[tokio::test]
async fn empty_and_too_long_bodies_get_validation_failed() {
    let app = spawn_chat_app().await;
    let alice = app.register_user("alice").await;
    let room = public_room(&app, &alice, "general").await;
    let mut ws = WsClient::connect(&app, &alice.access).await;

    for body in [String::new(), "   ".to_owned(), "a".repeat(4001)] {
        ws.expect_error(
            json!({"type": "message.send", "room_id": room, "body": body}),
            "validation_failed",
        )
        .await;
    }
    let stored = ws.send_message(&room, &"é".repeat(4000)).await;
    assert_eq!(
        stored["seq"], 1,
        "4000 characters fit; nothing else was stored"
    );
}

#[tokio::test]
async fn a_frame_over_the_size_limit_gets_frame_too_large_and_the_socket_stays_usable() {
    let app = spawn_chat_app_with(|s| s.ws_max_frame_bytes = 1024).await;
    let alice = app.register_user("alice").await;
    let room = public_room(&app, &alice, "general").await;
    let mut ws = WsClient::connect(&app, &alice.access).await;

    let big =
        json!({"type": "message.send", "room_id": room, "body": "x".repeat(2000), "ref": "big"});
    ws.send(big).await;

    let error = ws.next_of_type("error").await;
    assert_eq!(error["code"], "frame_too_large", "{error}");
    assert_eq!(ws.request(json!({"type": "ping"})).await["type"], "pong");
    let stored = ws.send_message(&room, "small enough").await;
    assert_eq!(stored["seq"], 1, "the big frame stored nothing");
}

#[tokio::test]
async fn a_frame_far_over_the_size_limit_closes_the_socket_with_1009() {
    let app = spawn_chat_app_with(|s| s.ws_max_frame_bytes = 1024).await;
    let alice = app.register_user("alice").await;
    let mut ws = WsClient::connect(&app, &alice.access).await;

    let huge = json!({"type": "ping", "pad": "x".repeat(10 * 1024)});
    // The server may close before the whole frame is read.
    if let Err(e) = ws.try_send_text(&huge.to_string()).await {
        eprintln!("send of the huge frame failed: {e}");
    }

    assert_eq!(
        ws.close_code_within(Duration::from_secs(5)).await,
        Some(1009)
    );
}

#[tokio::test]
async fn the_server_pings_every_heartbeat_and_closes_a_silent_socket_with_4000() {
    let app = spawn_chat_app_with(|s| s.ws_heartbeat_secs = 1).await;
    let alice = app.register_user("alice").await;

    // A client that keeps reading answers the pings and stays connected.
    let mut lively = WsClient::connect(&app, &alice.access).await;
    assert_eq!(lively.ready["heartbeat_interval_ms"], 1000);
    assert!(
        lively
            .try_next_frame(Duration::from_millis(3500))
            .await
            .is_none(),
        "nothing but pings for 3.5 s"
    );
    assert_eq!(
        lively.request(json!({"type": "ping"})).await["type"],
        "pong"
    );

    // A client that neither reads nor writes is closed as idle.
    let mut silent = WsClient::connect(&app, &alice.access).await;
    tokio::time::sleep(Duration::from_millis(3500)).await;
    assert_eq!(silent.close_code().await, 4000);
}

#[tokio::test]
async fn ready_lists_each_room_with_its_name() {
    let app = spawn_chat_app().await;
    let alice = app.register_user("alice").await;
    let a = public_room(&app, &alice, "alpha").await;
    let b = crate::chat::create_room(&app, &alice.access, "beta", "private").await;

    let ws = WsClient::connect(&app, &alice.access).await;

    let mut listed: Vec<(String, String)> = ws.ready["rooms"]
        .as_array()
        .expect("rooms")
        .iter()
        .map(|r| {
            for key in ["id", "name", "last_seq", "unread_count"] {
                assert!(r.get(key).is_some(), "ready room has {key}: {r}");
            }
            (text(r, "id"), text(r, "name"))
        })
        .collect();
    listed.sort();
    let mut expected = vec![(a, "alpha".to_owned()), (text(&b, "id"), "beta".to_owned())];
    expected.sort();
    assert_eq!(listed, expected);
}

#[tokio::test]
async fn a_binary_frame_gets_an_error_frame_and_the_socket_keeps_working() {
    let app = spawn_chat_app().await;
    let alice = app.register_user("alice").await;
    let mut ws = WsClient::connect(&app, &alice.access).await;

    ws.send_binary(vec![0, 1, 2, 3]).await;

    let error = ws.next_of_type("error").await;
    assert_eq!(error["code"], "unsupported_frame", "{error}");
    assert_eq!(ws.request(json!({"type": "ping"})).await["type"], "pong");
}

#[tokio::test]
async fn a_second_auth_frame_or_an_unknown_field_is_refused_without_closing() {
    let app = spawn_chat_app().await;
    let alice = app.register_user("alice").await;
    let mut ws = WsClient::connect_with_auth_frame(&app, &alice.access).await;

    ws.send(json!({"type": "auth", "token": alice.access}))
        .await;
    let error = ws.next_of_type("error").await;
    assert!(error["code"].is_string(), "{error}");
    ws.expect_error(
        json!({"type": "ping", "ref": "x", "surprise": true}),
        "invalid_frame",
    )
    .await;

    assert_eq!(ws.request(json!({"type": "ping"})).await["type"], "pong");
}
