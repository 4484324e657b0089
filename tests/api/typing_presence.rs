//! Typing indicators and presence aggregated over a user's devices.

use std::time::Duration;

use serde_json::{Value, json};

use crate::chat::{join, public_room, spawn_chat_app, spawn_chat_app_with, uid, users};
use crate::ws_client::{WAIT, WsClient};

const QUIET: Duration = Duration::from_millis(600);

/// The next `presence` frame about `user`.
async fn presence_of(ws: &mut WsClient, user: &str) -> Value {
    ws.try_next_matching(WAIT, |v| v["type"] == "presence" && v["user_id"] == user)
        .await
        .unwrap_or_else(|| panic!("a presence frame about {user}; unread: {:?}", ws.backlog()))
}

#[tokio::test]
async fn typing_reaches_the_other_members_but_not_the_typers_own_sockets() {
    let app = spawn_chat_app().await;
    let [alice, bob] = users(&app, ["alice", "bob"]).await;
    let room = public_room(&app, &alice, "general").await;
    join(&app, &bob.access, &room).await;
    let mut alice_phone = WsClient::connect(&app, &alice.access).await;
    let mut alice_laptop = WsClient::connect(&app, &alice.access).await;
    let mut bob_ws = WsClient::connect(&app, &bob.access).await;

    alice_phone
        .send(json!({"type": "typing", "room_id": room}))
        .await;

    let typing = bob_ws.next_in_room("typing", &room).await;
    assert_eq!(typing["user_id"], uid(&alice).as_str(), "{typing}");
    assert_eq!(
        typing["expires_in_ms"], 5000,
        "the default typing TTL: {typing}"
    );
    alice_phone.expect_no_frame_of_type("typing", QUIET).await;
    alice_laptop.expect_no_frame_of_type("typing", QUIET).await;
}

#[tokio::test]
async fn typing_carries_the_configured_ttl_and_an_ack_when_asked() {
    let app = spawn_chat_app_with(|s| s.typing_ttl_ms = 1234).await;
    let [alice, bob] = users(&app, ["alice", "bob"]).await;
    let room = public_room(&app, &alice, "general").await;
    join(&app, &bob.access, &room).await;
    let mut alice_ws = WsClient::connect(&app, &alice.access).await;
    let mut bob_ws = WsClient::connect(&app, &bob.access).await;

    alice_ws
        .ack(json!({"type": "typing", "room_id": room, "ref": "t"}))
        .await;

    assert_eq!(
        bob_ws.next_in_room("typing", &room).await["expires_in_ms"],
        1234
    );
}

#[tokio::test]
async fn closing_one_of_two_sockets_keeps_me_online_and_closing_both_shows_offline_after_the_grace()
{
    let app = spawn_chat_app_with(|s| s.presence_grace_secs = 1).await;
    let [alice, bob] = users(&app, ["alice", "bob"]).await;
    let room = public_room(&app, &alice, "general").await;
    join(&app, &bob.access, &room).await;
    let mut watcher = WsClient::connect(&app, &bob.access).await;
    let alice_id = uid(&alice);

    let phone = WsClient::connect(&app, &alice.access).await;
    let online = presence_of(&mut watcher, &alice_id).await;
    assert_eq!(online["status"], "online", "{online}");
    assert!(online.get("last_seen_at").is_some(), "{online}");
    let laptop = WsClient::connect(&app, &alice.access).await;

    phone.close().await;
    // Well past the grace period: still online thanks to the laptop.
    watcher
        .expect_none_matching(Duration::from_millis(2000), "alice going offline", |v| {
            v["type"] == "presence" && v["user_id"] == alice_id.as_str()
        })
        .await;

    let closed_at = std::time::Instant::now();
    laptop.close().await;
    let offline = presence_of(&mut watcher, &alice_id).await;
    assert_eq!(offline["status"], "offline", "{offline}");
    assert!(
        closed_at.elapsed() >= Duration::from_millis(800),
        "offline only after the grace period: {:?}",
        closed_at.elapsed()
    );
}

#[tokio::test]
async fn a_quick_reconnect_does_not_flap_presence() {
    let app = spawn_chat_app_with(|s| s.presence_grace_secs = 2).await;
    let [alice, bob] = users(&app, ["alice", "bob"]).await;
    let room = public_room(&app, &alice, "general").await;
    join(&app, &bob.access, &room).await;
    let mut watcher = WsClient::connect(&app, &bob.access).await;
    let alice_id = uid(&alice);
    let first = WsClient::connect(&app, &alice.access).await;
    assert_eq!(
        presence_of(&mut watcher, &alice_id).await["status"],
        "online"
    );

    first.close().await;
    let _again = WsClient::connect(&app, &alice.access).await;

    watcher
        .expect_none_matching(Duration::from_millis(3000), "a presence flap", |v| {
            v["type"] == "presence" && v["user_id"] == alice_id.as_str()
        })
        .await;
}

#[tokio::test]
async fn away_and_invisible_are_shown_to_users_who_share_a_room() {
    let app = spawn_chat_app().await;
    let [alice, bob, carol] = users(&app, ["alice", "bob", "carol"]).await;
    let room = public_room(&app, &alice, "general").await;
    join(&app, &bob.access, &room).await;
    let mut watcher = WsClient::connect(&app, &bob.access).await;
    let mut stranger = WsClient::connect(&app, &carol.access).await;
    let alice_id = uid(&alice);
    let mut alice_ws = WsClient::connect(&app, &alice.access).await;
    assert_eq!(
        presence_of(&mut watcher, &alice_id).await["status"],
        "online"
    );

    alice_ws
        .ack(json!({"type": "presence.set", "status": "away"}))
        .await;
    assert_eq!(presence_of(&mut watcher, &alice_id).await["status"], "away");

    alice_ws
        .ack(json!({"type": "presence.set", "status": "dnd"}))
        .await;
    assert_eq!(presence_of(&mut watcher, &alice_id).await["status"], "dnd");

    alice_ws
        .ack(json!({"type": "presence.set", "status": "invisible"}))
        .await;
    let shown = presence_of(&mut watcher, &alice_id).await;
    assert_eq!(
        shown["status"], "offline",
        "invisible shows as offline: {shown}"
    );

    let members = crate::chat::items(
        &app.get_authed(&format!("/rooms/{room}/members"), &bob.access)
            .await,
    );
    let alice_entry = members
        .iter()
        .find(|m| m["user_id"] == alice_id.as_str())
        .expect("alice is listed");
    assert_eq!(alice_entry["presence"], "offline");
    stranger
        .expect_none_matching(QUIET, "presence of someone I share no room with", |v| {
            v["type"] == "presence" && v["user_id"] == alice_id.as_str()
        })
        .await;
    alice_ws
        .expect_error(
            json!({"type": "presence.set", "status": "sleeping"}),
            "invalid_frame",
        )
        .await;
}

#[tokio::test]
async fn presence_is_not_pushed_through_rooms_larger_than_the_setting_but_members_lists_show_it() {
    let app = spawn_chat_app_with(|s| s.presence_max_room = 1).await;
    let [alice, bob] = users(&app, ["alice", "bob"]).await;
    let room = public_room(&app, &alice, "general").await;
    join(&app, &bob.access, &room).await;
    let mut watcher = WsClient::connect(&app, &bob.access).await;
    let mut alice_ws = WsClient::connect(&app, &alice.access).await;
    alice_ws
        .ack(json!({"type": "presence.set", "status": "away"}))
        .await;
    watcher
        .expect_no_frame_of_type("presence", Duration::from_millis(500))
        .await;

    let members = crate::chat::items(
        &app.get_authed(&format!("/rooms/{room}/members"), &bob.access)
            .await,
    );
    let alice_id = uid(&alice);
    let entry = members
        .iter()
        .find(|m| m["user_id"] == alice_id.as_str())
        .expect("alice is listed");
    assert_eq!(entry["presence"], "away");
}
