//! `resume`: after a reconnect the server replays exactly what each room
//! has after the client's last seq, in order, then says `resumed`; beyond
//! the configured gap it says `resync_required` instead.

use std::time::Duration;

use serde_json::{Value, json};

use crate::chat::{join, post_message, public_room, spawn_chat_app, spawn_chat_app_with, users};
use crate::ws_client::{WAIT, WsClient};

/// Reads until `resumed`, returning the replayed `message.created` frames,
/// the `resync_required` frames and the `resumed` frame, in arrival order.
async fn read_resume(ws: &mut WsClient) -> (Vec<Value>, Vec<Value>, Value) {
    let (mut replayed, mut resync) = (Vec::new(), Vec::new());
    loop {
        let frame = ws
            .try_next_matching(WAIT, |v| {
                matches!(
                    v["type"].as_str(),
                    Some("message.created" | "resync_required" | "resumed" | "error")
                )
            })
            .await
            .unwrap_or_else(|| panic!("resume ends with `resumed`; unread: {:?}", ws.backlog()));
        match frame["type"].as_str() {
            Some("message.created") => replayed.push(frame),
            Some("resync_required") => resync.push(frame),
            Some("resumed") => return (replayed, resync, frame),
            _ => panic!("unexpected error during resume: {frame}"),
        }
    }
}

/// The `ready.rooms[].last_seq` of `room`.
fn ready_last_seq(ws: &WsClient, room: &str) -> i64 {
    ws.ready["rooms"]
        .as_array()
        .expect("ready.rooms")
        .iter()
        .find(|r| r["id"] == room)
        .and_then(|r| r["last_seq"].as_i64())
        .unwrap_or_else(|| panic!("room {room} with last_seq in {}", ws.ready))
}

#[tokio::test]
async fn resume_replays_exactly_the_missed_messages_in_order_then_says_resumed() {
    let app = spawn_chat_app().await;
    let [alice, bob] = users(&app, ["alice", "bob"]).await;
    let room = public_room(&app, &bob, "general").await;
    join(&app, &alice.access, &room).await;
    post_message(&app, &bob.access, &room, "before 1").await;
    post_message(&app, &bob.access, &room, "before 2").await;

    let first = WsClient::connect(&app, &alice.access).await;
    let last = ready_last_seq(&first, &room);
    assert_eq!(last, 2);
    first.close().await;

    let mut missed = Vec::new();
    for body in ["missed 1", "missed 2", "missed 3"] {
        missed.push(post_message(&app, &bob.access, &room, body).await);
    }
    let mut again = WsClient::connect(&app, &alice.access).await;
    again
        .send(json!({"type": "resume", "rooms": {room.clone(): last}}))
        .await;

    let (replayed, resync, resumed) = read_resume(&mut again).await;
    assert!(resync.is_empty(), "{resync:?}");
    let messages: Vec<Value> = replayed.iter().map(|f| f["message"].clone()).collect();
    assert_eq!(messages, missed, "exactly the gap, in seq order");
    assert!(replayed.iter().all(|f| f["room_id"] == room.as_str()));
    assert_eq!(resumed["rooms"], json!({room.clone(): 5}), "{resumed}");
    again
        .expect_no_frame_of_type("message.created", Duration::from_millis(300))
        .await;
    // Live delivery continues after the replay.
    post_message(&app, &bob.access, &room, "live").await;
    let live = again.next_in_room("message.created", &room).await;
    assert_eq!(live["message"]["seq"], 6);
}

/// `ready`'s `last_seq` is where the live stream starts, also for a socket
/// that connects while messages are being published: each of many sockets
/// opened during a stream of sends gets every later seq, in order, with no
/// gap (the race this guards: the seqs read before the socket was
/// subscribed, and a message published in between never reached it).
#[tokio::test]
async fn sockets_opened_while_messages_flow_miss_nothing_after_ready() {
    const SENDS: i64 = 150;
    let app = spawn_chat_app_with(|s| s.ws_max_connections_per_user = 100).await;
    let [alice, bob] = users(&app, ["alice", "bob"]).await;
    let room = public_room(&app, &bob, "general").await;
    join(&app, &alice.access, &room).await;

    let done = std::sync::atomic::AtomicBool::new(false);
    let publish = async {
        for i in 0..SENDS {
            post_message(&app, &bob.access, &room, &format!("m{i}")).await;
        }
        done.store(true, std::sync::atomic::Ordering::Release);
    };
    let connect = async {
        let mut sockets = Vec::new();
        while !done.load(std::sync::atomic::Ordering::Acquire) && sockets.len() < 80 {
            let ws = WsClient::connect(&app, &alice.access).await;
            let from = ready_last_seq(&ws, &room);
            sockets.push((ws, from));
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        sockets
    };
    let ((), mut sockets) = tokio::join!(publish, connect);
    assert!(sockets.len() >= 5, "only {} sockets opened", sockets.len());
    for (ws, from) in &mut sockets {
        let mut seqs = Vec::new();
        while seqs.last().copied().unwrap_or(*from) < SENDS {
            let frame = ws.next_in_room("message.created", &room).await;
            let seq = frame["message"]["seq"].as_i64().expect("seq");
            // A message stored just before `ready` may still be published
            // just after it: at or below `last_seq`, the client has it.
            if seq > *from {
                seqs.push(seq);
            }
        }
        let wanted: Vec<i64> = (*from + 1..=SENDS).collect();
        assert_eq!(seqs, wanted, "a socket whose ready said last_seq {from}");
    }
}

#[tokio::test]
async fn resume_beyond_the_allowed_gap_says_resync_required() {
    let app = spawn_chat_app_with(|s| s.resume_max_gap = 2).await;
    let [alice, bob] = users(&app, ["alice", "bob"]).await;
    let near = public_room(&app, &bob, "near").await;
    let far = public_room(&app, &bob, "far").await;
    join(&app, &alice.access, &near).await;
    join(&app, &alice.access, &far).await;
    for i in 1..=3 {
        post_message(&app, &bob.access, &far, &format!("far {i}")).await;
    }
    post_message(&app, &bob.access, &near, "near 1").await;
    post_message(&app, &bob.access, &near, "near 2").await;
    let mut ws = WsClient::connect(&app, &alice.access).await;

    ws.send(json!({"type": "resume", "rooms": {far.clone(): 0, near.clone(): 0}}))
        .await;

    let (replayed, resync, resumed) = read_resume(&mut ws).await;
    assert_eq!(resync.len(), 1, "{resync:?}");
    assert_eq!(
        resync[0],
        json!({"type": "resync_required", "room_id": far, "last_seq": 3})
    );
    let near_seqs: Vec<&Value> = replayed.iter().map(|f| &f["message"]["seq"]).collect();
    assert_eq!(
        near_seqs,
        vec![&json!(1), &json!(2)],
        "a gap of 2 is replayed"
    );
    assert!(
        replayed.iter().all(|f| f["room_id"] == near.as_str()),
        "nothing of the far room is replayed: {replayed:?}"
    );
    assert_eq!(resumed["rooms"], json!({near.clone(): 2}), "{resumed}");
}

#[tokio::test]
async fn resume_with_nothing_missed_replays_nothing_and_a_foreign_room_is_refused() {
    let app = spawn_chat_app().await;
    let [alice, bob] = users(&app, ["alice", "bob"]).await;
    let room = public_room(&app, &alice, "mine").await;
    let foreign = public_room(&app, &bob, "not mine").await;
    post_message(&app, &alice.access, &room, "only").await;
    let mut ws = WsClient::connect(&app, &alice.access).await;

    ws.send(json!({"type": "resume", "rooms": {room.clone(): 1, foreign.clone(): 0}}))
        .await;

    let error = ws.next_of_type("error").await;
    assert_eq!(error["code"], "not_member", "{error}");
    let resumed = ws.next_of_type("resumed").await;
    assert_eq!(resumed["rooms"], json!({room.clone(): 1}), "{resumed}");
    ws.expect_no_frame_of_type("message.created", Duration::from_millis(300))
        .await;
}

#[tokio::test]
async fn a_resume_larger_than_the_socket_queue_is_still_replayed_in_full() {
    // The durable queue (16) is smaller than the allowed gap (1000): a
    // resume of 40 missed messages is within the rules and must arrive.
    let app = spawn_chat_app_with(|s| s.ws_durable_queue = 16).await;
    let [alice, bob] = users(&app, ["alice", "bob"]).await;
    let room = public_room(&app, &bob, "busy").await;
    join(&app, &alice.access, &room).await;
    for i in 1..=40 {
        post_message(&app, &bob.access, &room, &format!("missed {i}")).await;
    }
    let mut ws = WsClient::connect(&app, &alice.access).await;

    ws.send(json!({"type": "resume", "rooms": {room.clone(): 0}}))
        .await;

    let mut replayed = Vec::new();
    loop {
        match ws.frame_or_close().await {
            Ok(frame) if frame["type"] == "message.created" => {
                replayed.push(frame["message"]["seq"].as_i64().expect("seq"));
            }
            Ok(frame) if frame["type"] == "resumed" => break,
            Ok(frame) => eprintln!("also got {frame}"),
            Err(code) => panic!(
                "the socket closed with {code:?} during the resume after {} of 40 messages",
                replayed.len()
            ),
        }
    }
    assert_eq!(replayed, (1..=40).collect::<Vec<_>>());
}
