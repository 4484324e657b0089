//! One message fanned out to a couple of hundred sockets, and a room actor
//! that fails in the middle of traffic without losing an acknowledged
//! message.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::chat::{history, join, public_room, relax_limits, spawn_chat_app_with, text, users};
use crate::helpers::{TestApp, spawn_app_with_realtime};
use crate::ws_client::WsClient;

#[tokio::test]
async fn one_message_reaches_every_one_of_two_hundred_sockets() {
    const USERS: usize = 10;
    const SOCKETS_PER_USER: usize = 20;
    let app = spawn_chat_app_with(|s| s.ws_max_connections_per_user = SOCKETS_PER_USER).await;
    let [owner] = users(&app, ["owner"]).await;
    let room = public_room(&app, &owner, "stadium").await;
    let mut members = Vec::new();
    for i in 0..USERS {
        let user = app.register_user(&format!("fan{i}")).await;
        join(&app, &user.access, &room).await;
        members.push(user);
    }
    let mut sockets = Vec::new();
    for user in &members {
        let batch = join_all((0..SOCKETS_PER_USER).map(|_| WsClient::connect(&app, &user.access)));
        sockets.extend(batch.await);
    }
    assert_eq!(sockets.len(), USERS * SOCKETS_PER_USER);

    let started = Instant::now();
    let sent = crate::chat::post_message(&app, &owner.access, &room, "hello, everyone").await;
    let id = text(&sent, "id");
    let received = join_all(sockets.iter_mut().map(|ws| {
        let id = id.clone();
        async move {
            ws.try_next_matching(Duration::from_secs(30), |v| {
                v["type"] == "message.created" && v["message"]["id"] == id.as_str()
            })
            .await
            .is_some()
        }
    }))
    .await;
    let elapsed = started.elapsed();

    let count = received.iter().filter(|got| **got).count();
    assert_eq!(
        count,
        USERS * SOCKETS_PER_USER,
        "every socket got the message"
    );
    assert!(
        elapsed < Duration::from_secs(20),
        "fan-out to 200 sockets took {elapsed:?}"
    );
    for ws in &sockets {
        let dupes = ws
            .backlog()
            .iter()
            .filter(|v| v["type"] == "message.created")
            .count();
        assert_eq!(dupes, 0, "no socket got it twice");
    }
}

/// What one sender got back for each attempt: the stored message, or the
/// refusal.
#[derive(Debug, Default)]
struct Outcomes {
    acked: Vec<Value>,
    refused: Vec<String>,
}

async fn send_over_rest(app: &TestApp, token: &str, room: &str, count: usize) -> Outcomes {
    let mut out = Outcomes::default();
    for i in 0..count {
        let reply = app
            .post_json_authed(
                &format!("/rooms/{room}/messages"),
                token,
                &json!({"body": format!("rest {i}")}),
            )
            .await;
        match reply.status {
            StatusCode::CREATED => out.acked.push(reply.body),
            StatusCode::SERVICE_UNAVAILABLE => out.refused.push(reply.text),
            other => panic!("unexpected {other}: {}", reply.text),
        }
    }
    out
}

#[tokio::test]
async fn a_room_actor_that_crashes_mid_traffic_loses_no_acknowledged_message() {
    // 40 sends as fast as acks come back: over the default socket limit.
    let (app, realtime) = spawn_app_with_realtime(|s| {
        relax_limits(s);
        s.ws_events_per_second = 1_000;
        s.ws_events_burst = 1_000;
    })
    .await;
    let [alice, bob] = users(&app, ["alice", "bob"]).await;
    let room = public_room(&app, &alice, "fragile").await;
    join(&app, &bob.access, &room).await;
    let room_id: parley_actors::domain::RoomId = room.parse().expect("a room id");
    let mut alice_ws = WsClient::connect(&app, &alice.access).await;
    let mut bob_ws = WsClient::connect(&app, &bob.access).await;

    let over_socket = async {
        let mut out = Outcomes::default();
        for i in 0..40 {
            if i == 10 {
                realtime.crash_room(room_id);
            }
            let reply = alice_ws
                .request(
                    json!({"type": "message.send", "room_id": room, "body": format!("ws {i}")}),
                )
                .await;
            match reply["type"].as_str() {
                Some("ack") => out.acked.push(reply["message"].clone()),
                Some("error") if reply["code"] == "unavailable" => {
                    out.refused.push(reply.to_string());
                }
                _ => panic!("unexpected answer: {reply}"),
            }
        }
        out
    };
    let (socket, rest) = tokio::join!(over_socket, send_over_rest(&app, &bob.access, &room, 40));
    eprintln!(
        "acked {} + {}, refused {} + {}",
        socket.acked.len(),
        rest.acked.len(),
        socket.refused.len(),
        rest.refused.len()
    );

    let stored = history(&app, &alice.access, &room, "?after_seq=0&limit=200").await;
    let stored_seqs = crate::chat::seqs(&stored);
    assert_eq!(
        stored_seqs,
        (1..=stored.len() as i64).collect::<Vec<_>>(),
        "seqs stay gapless across the crash"
    );
    let stored_ids: HashSet<&str> = stored.iter().filter_map(|m| m["id"].as_str()).collect();
    for acked in socket.acked.iter().chain(&rest.acked) {
        let id = acked["id"].as_str().expect("an acked message has an id");
        assert!(stored_ids.contains(id), "acked message {acked} is stored");
    }
    let acked_seqs: HashSet<i64> = socket
        .acked
        .iter()
        .chain(&rest.acked)
        .map(|m| m["seq"].as_i64().expect("seq"))
        .collect();
    assert_eq!(
        acked_seqs.len(),
        socket.acked.len() + rest.acked.len(),
        "no seq was given out twice"
    );
    assert!(
        socket.acked.len() > 10 && rest.acked.len() > 10,
        "the room kept working after the crash"
    );

    // Both sockets still receive new messages after the crash.
    let after = alice_ws.send_message(&room, "after the crash").await;
    let seen = bob_ws
        .try_next_matching(crate::ws_client::WAIT, |v| {
            v["type"] == "message.created" && v["message"]["id"] == after["id"]
        })
        .await;
    assert!(seen.is_some(), "bob still receives the room");
    let from_bob = bob_ws.send_message(&room, "me too").await;
    let seen = alice_ws
        .try_next_matching(crate::ws_client::WAIT, |v| {
            v["type"] == "message.created" && v["message"]["id"] == from_bob["id"]
        })
        .await;
    assert!(seen.is_some(), "alice still receives the room");
    assert_eq!(
        from_bob["seq"].as_i64(),
        Some(stored.len() as i64 + 2),
        "seqs continue from the store"
    );
}

#[tokio::test]
async fn a_crashed_room_keeps_its_members_and_other_rooms_are_untouched() {
    let (app, realtime) = spawn_app_with_realtime(relax_limits).await;
    let [alice, bob] = users(&app, ["alice", "bob"]).await;
    let fragile = public_room(&app, &alice, "fragile").await;
    let sturdy = public_room(&app, &alice, "sturdy").await;
    join(&app, &bob.access, &fragile).await;
    join(&app, &bob.access, &sturdy).await;
    let mut bob_ws = WsClient::connect(&app, &bob.access).await;
    let mut alice_ws = WsClient::connect(&app, &alice.access).await;
    alice_ws.send_message(&fragile, "warm up").await;
    alice_ws.send_message(&sturdy, "warm up").await;

    realtime.crash_room(fragile.parse().expect("a room id"));
    let in_sturdy = alice_ws.send_message(&sturdy, "still here").await;
    let in_fragile = alice_ws.send_message(&fragile, "back again").await;

    assert_eq!(in_sturdy["seq"], 2);
    assert_eq!(in_fragile["seq"], 2);
    for (room, body) in [(&sturdy, "still here"), (&fragile, "back again")] {
        let created = bob_ws
            .try_next_matching(crate::ws_client::WAIT, |v| {
                v["type"] == "message.created" && v["message"]["body"] == body
            })
            .await
            .unwrap_or_else(|| panic!("bob gets {body:?}"));
        assert_eq!(created["room_id"], room.as_str());
    }
    // The restarted room still knows its members and roles.
    crate::chat::patch_json(
        &app,
        &format!("/rooms/{fragile}"),
        &bob.access,
        &json!({"name": "mine"}),
    )
    .await
    .assert_error(StatusCode::FORBIDDEN, "forbidden");
    let renamed = crate::chat::patch_json(
        &app,
        &format!("/rooms/{fragile}"),
        &alice.access,
        &json!({"name": "renamed"}),
    )
    .await;
    renamed.assert_status(StatusCode::OK);
}

#[tokio::test]
async fn an_idle_room_actor_stops_and_its_room_carries_on_from_the_store() {
    let (app, realtime) = spawn_app_with_realtime(|s| {
        relax_limits(s);
        s.room_idle_secs = 1;
    })
    .await;
    let [alice, bob] = users(&app, ["alice", "bob"]).await;
    let room = public_room(&app, &alice, "sleepy").await;
    join(&app, &bob.access, &room).await;
    let mut alice_ws = WsClient::connect(&app, &alice.access).await;
    let mut bob_ws = WsClient::connect(&app, &bob.access).await;
    alice_ws.send_message(&room, "before the nap").await;
    assert!(realtime.rooms().active() >= 1);

    // Idleness is the thing tested, so wait for the actor to stop.
    let deadline = Instant::now() + Duration::from_secs(10);
    while realtime.rooms().active() > 0 {
        assert!(Instant::now() < deadline, "the idle room actor stops");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let after = alice_ws.send_message(&room, "after the nap").await;
    assert_eq!(after["seq"], 2, "the seq continues from the store");
    let seen = bob_ws
        .try_next_matching(crate::ws_client::WAIT, |v| {
            v["type"] == "message.created" && v["message"]["id"] == after["id"]
        })
        .await;
    assert!(seen.is_some(), "members still receive the room");
    // Roles were reloaded too.
    crate::chat::patch_json(
        &app,
        &format!("/rooms/{room}"),
        &bob.access,
        &json!({"name": "mine"}),
    )
    .await
    .assert_error(StatusCode::FORBIDDEN, "forbidden");
}
