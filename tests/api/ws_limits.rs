//! Limits that protect everyone else: the per-socket event rate, the cap on
//! sockets per user, and the slow consumer closed with 4009 while the rest
//! of its room keeps receiving.

use std::time::Duration;

use serde_json::json;

use crate::chat::{join, post_message, public_room, spawn_chat_app_with, users};
use crate::ws_client::{Connect, WsClient};

#[tokio::test]
async fn events_over_the_rate_get_rate_limited_with_retry_after_ms() {
    let app = spawn_chat_app_with(|s| {
        s.ws_events_per_second = 1;
        s.ws_events_burst = 2;
    })
    .await;
    let [alice] = users(&app, ["alice"]).await;
    let room = public_room(&app, &alice, "general").await;
    let mut ws = WsClient::connect(&app, &alice.access).await;

    for i in 0..5 {
        ws.send(json!({"type": "typing", "room_id": room, "ref": format!("t{i}")}))
            .await;
    }
    let mut answers = Vec::new();
    for i in 0..5 {
        let reference = format!("t{i}");
        let answer = ws
            .try_next_matching(crate::ws_client::WAIT, |v| v["ref"] == reference.as_str())
            .await
            .unwrap_or_else(|| panic!("an answer to {reference}"));
        answers.push(answer);
    }

    let limited: Vec<_> = answers
        .iter()
        .filter(|a| a["type"] == "error" && a["code"] == "rate_limited")
        .collect();
    assert!(
        !limited.is_empty(),
        "some typing frames are refused: {answers:?}"
    );
    assert!(
        answers[..2].iter().all(|a| a["type"] == "ack"),
        "the burst passes: {answers:?}"
    );
    let mut wait_ms = 0;
    for refusal in &limited {
        let retry = refusal["retry_after_ms"]
            .as_u64()
            .unwrap_or_else(|| panic!("retry_after_ms is a number: {refusal}"));
        assert!(retry > 0 && retry <= 1000, "{refusal}");
        wait_ms = wait_ms.max(retry);
    }
    // Pings are not rate limited; after the wait, events pass again.
    assert_eq!(ws.request(json!({"type": "ping"})).await["type"], "pong");
    tokio::time::sleep(Duration::from_millis(wait_ms + 50)).await;
    ws.ack(json!({"type": "typing", "room_id": room})).await;
}

#[tokio::test]
async fn persistent_flooding_closes_the_socket_with_1008() {
    let app = spawn_chat_app_with(|s| {
        s.ws_events_per_second = 1;
        s.ws_events_burst = 2;
        s.ws_rate_strikes = 3;
    })
    .await;
    let [alice] = users(&app, ["alice"]).await;
    let room = public_room(&app, &alice, "general").await;
    let mut ws = WsClient::connect(&app, &alice.access).await;

    let frame = json!({"type": "typing", "room_id": room}).to_string();
    for _ in 0..20 {
        if ws.try_send_text(&frame).await.is_err() {
            break;
        }
    }

    assert_eq!(ws.close_code().await, 1008);
    // Another socket of the same user is not affected.
    let mut other = WsClient::connect(&app, &alice.access).await;
    assert_eq!(other.request(json!({"type": "ping"})).await["type"], "pong");
}

#[tokio::test]
async fn a_socket_over_the_per_user_cap_is_closed_with_1008() {
    let app = spawn_chat_app_with(|s| s.ws_max_connections_per_user = 2).await;
    let [alice, bob] = users(&app, ["alice", "bob"]).await;
    let first = WsClient::connect(&app, &alice.access).await;
    let _second = WsClient::connect(&app, &alice.access).await;

    let how = Connect {
        bearer: Some(&alice.access),
        ..Connect::default()
    };
    let mut third = WsClient::open(&app, how).await.expect("upgrade");
    assert_eq!(third.close_code().await, 1008);
    assert!(
        third.backlog().iter().all(|v| v["type"] != "ready"),
        "no ready for a socket over the cap: {:?}",
        third.backlog()
    );

    // Other users are not affected, and a freed slot can be used again.
    let _bobs = WsClient::connect(&app, &bob.access).await;
    first.close().await;
    // The server unregisters a socket before it answers the close, so the
    // slot is free by now.
    let fourth = WsClient::connect(&app, &alice.access).await;
    assert_eq!(fourth.ready["type"], "ready");
}

#[tokio::test]
async fn a_slow_consumer_is_closed_with_4009_while_the_room_keeps_receiving() {
    const MESSAGES: i64 = 1200;
    let app = spawn_chat_app_with(|s| s.ws_durable_queue = 4).await;
    let [alice, bob, carol] = users(&app, ["alice", "bob", "carol"]).await;
    let room = public_room(&app, &alice, "general").await;
    join(&app, &bob.access, &room).await;
    join(&app, &carol.access, &room).await;
    // Bob's socket never reads; a small receive buffer makes it fall
    // behind sooner.
    let mut stalled = WsClient::open(
        &app,
        Connect {
            bearer: Some(&bob.access),
            recv_buffer: Some(4096),
            ..Connect::default()
        },
    )
    .await
    .expect("upgrade");
    let mut reader = WsClient::connect(&app, &carol.access).await;
    let body = "x".repeat(4000);

    for seq in 1..=MESSAGES {
        let sent = post_message(&app, &alice.access, &room, &body).await;
        assert_eq!(sent["seq"], seq);
        // The reading member gets every message, in order.
        let created = reader.next_in_room("message.created", &room).await;
        assert_eq!(created["message"]["seq"], seq, "carol misses nothing");
    }

    let code = stalled.close_code_within(Duration::from_secs(60)).await;
    assert_eq!(
        code,
        Some(4009),
        "the stalled socket is closed as a slow consumer"
    );
    let got: Vec<i64> = stalled
        .backlog()
        .iter()
        .filter(|v| v["type"] == "message.created")
        .map(|v| v["message"]["seq"].as_i64().expect("seq"))
        .collect();
    eprintln!(
        "the stalled socket received {} messages before 4009",
        got.len()
    );
    assert!(
        (got.len() as i64) < MESSAGES,
        "it fell behind: {}",
        got.len()
    );
    assert_eq!(
        got,
        (1..=got.len() as i64).collect::<Vec<_>>(),
        "what it did receive is a gapless prefix: nothing dropped silently"
    );
    assert_eq!(
        stalled.backlog().front().map(|v| v["type"].clone()),
        Some(json!("ready"))
    );
    // Bob can come back; history has everything he missed.
    let mut back = WsClient::connect(&app, &bob.access).await;
    assert_eq!(back.request(json!({"type": "ping"})).await["type"], "pong");
    let last = got.last().copied().unwrap_or(0);
    let missed = crate::chat::history(
        &app,
        &bob.access,
        &room,
        &format!("?after_seq={last}&limit=200"),
    )
    .await;
    assert_eq!(
        missed.first().map(|m| m["seq"].clone()),
        Some(json!(last + 1))
    );
}

#[tokio::test]
async fn the_per_user_cap_holds_when_sockets_open_at_the_same_time() {
    let app = spawn_chat_app_with(|s| s.ws_max_connections_per_user = 2).await;
    let [alice] = users(&app, ["alice"]).await;
    let how = Connect {
        bearer: Some(&alice.access),
        ..Connect::default()
    };

    let opened =
        futures_util::future::join_all((0..10).map(|_| WsClient::open(&app, how.clone()))).await;
    let mut ready = 0;
    let mut refused = 0;
    for ws in opened {
        let mut ws = ws.expect("upgrade");
        match ws.frame_or_close().await {
            Ok(frame) if frame["type"] == "ready" => ready += 1,
            Ok(frame) => panic!("expected ready or a close, got {frame}"),
            Err(code) => {
                assert_eq!(code, Some(1008), "a socket over the cap closes with 1008");
                refused += 1;
            }
        }
    }
    assert_eq!(
        (ready, refused),
        (2, 8),
        "exactly 2 of 10 sockets opened at once are accepted"
    );
}

#[tokio::test]
async fn past_the_server_socket_cap_an_upgrade_gets_503_even_before_auth() {
    let app = spawn_chat_app_with(|s| {
        s.ws_max_connections = 2;
        s.ws_auth_timeout_secs = 30;
    })
    .await;
    let [alice] = users(&app, ["alice"]).await;
    let _authed = WsClient::connect(&app, &alice.access).await;
    // A socket still waiting to send its `auth` frame holds a slot too.
    let _waiting = WsClient::open(&app, Connect::default())
        .await
        .expect("upgrade");

    let refused = WsClient::open(
        &app,
        Connect {
            bearer: Some(&alice.access),
            ..Connect::default()
        },
    )
    .await;
    assert_eq!(crate::ws_client::upgrade_status(refused), 503);
}
