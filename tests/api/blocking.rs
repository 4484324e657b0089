//! Blocking: if A blocks B, B's messages, reactions, typing and presence do
//! not reach A (live or in history), B cannot DM or invite A, and A's
//! profile is 404 to B.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;

use crate::chat::{
    history, items, join, post_message, public_room, spawn_chat_app, text, uid, users,
};
use crate::helpers::{TestApp, Tokens};
use crate::ws_client::{WAIT, WsClient};

const QUIET: Duration = Duration::from_millis(600);

/// Carol owns a public room that Alice and Bob are in; Alice has blocked Bob.
async fn alice_blocked_bob(app: &TestApp) -> ([Tokens; 3], String) {
    let [alice, bob, carol] = users(app, ["alice", "bob", "carol"]).await;
    let room = public_room(app, &carol, "shared").await;
    join(app, &alice.access, &room).await;
    join(app, &bob.access, &room).await;
    app.post_json_authed(
        "/users/block",
        &alice.access,
        &json!({"user_id": uid(&bob)}),
    )
    .await
    .assert_status(StatusCode::NO_CONTENT);
    ([alice, bob, carol], room)
}

#[tokio::test]
async fn a_blocked_users_messages_reach_others_but_not_the_blocker_live_or_in_history() {
    let app = spawn_chat_app().await;
    let ([alice, bob, carol], room) = alice_blocked_bob(&app).await;
    let mut alice_ws = WsClient::connect(&app, &alice.access).await;
    let mut bob_ws = WsClient::connect(&app, &bob.access).await;
    let mut carol_ws = WsClient::connect(&app, &carol.access).await;

    let from_bob = bob_ws.send_message(&room, "hello from bob").await;
    let bob_rest = post_message(&app, &bob.access, &room, "bob again, over rest").await;
    let from_carol = carol_ws.send_message(&room, "hello from carol").await;

    for expected in [&from_bob, &bob_rest, &from_carol] {
        let created = carol_ws.next_in_room("message.created", &room).await;
        assert_eq!(
            created["message"]["id"], expected["id"],
            "carol gets all three in order"
        );
    }
    // Carol's message was sent after Bob's: once Alice has it, anything of
    // Bob's would already have arrived before it.
    let got = alice_ws
        .try_next_matching(WAIT, |v| {
            v["type"] == "message.created" && v["message"]["id"] == from_carol["id"]
        })
        .await
        .expect("alice receives carol's message");
    assert_eq!(got["message"]["body"], "hello from carol");
    assert!(
        !alice_ws
            .backlog()
            .iter()
            .any(|v| v["type"] == "message.created"),
        "nothing of bob's reached alice: {:?}",
        alice_ws.backlog()
    );

    let alice_history = history(&app, &alice.access, &room, "").await;
    assert!(
        alice_history
            .iter()
            .all(|m| m["author_id"] != uid(&bob).as_str()),
        "alice's history leaves bob out: {alice_history:?}"
    );
    assert_eq!(alice_history.len(), 1);
    assert_eq!(history(&app, &carol.access, &room, "").await.len(), 3);
}

#[tokio::test]
async fn a_blocked_users_typing_and_reactions_do_not_reach_the_blocker() {
    let app = spawn_chat_app().await;
    let ([alice, bob, carol], room) = alice_blocked_bob(&app).await;
    let mut alice_ws = WsClient::connect(&app, &alice.access).await;
    let mut bob_ws = WsClient::connect(&app, &bob.access).await;
    let mut carol_ws = WsClient::connect(&app, &carol.access).await;
    let message = carol_ws.send_message(&room, "react to this").await;
    let id = text(&message, "id");

    bob_ws
        .send(json!({"type": "typing", "room_id": room}))
        .await;
    bob_ws
        .ack(json!({"type": "reaction.add", "room_id": room, "message_id": id, "emoji": "🎉"}))
        .await;

    let typing = carol_ws.next_in_room("typing", &room).await;
    assert_eq!(typing["user_id"], uid(&bob).as_str());
    let reaction = carol_ws.next_in_room("reaction.added", &room).await;
    assert_eq!(reaction["user_id"], uid(&bob).as_str());
    alice_ws.expect_no_frame_of_type("typing", QUIET).await;
    alice_ws
        .expect_no_frame_of_type("reaction.added", QUIET)
        .await;
    assert_eq!(
        history(&app, &alice.access, &room, "").await[0]["reactions"],
        json!({}),
        "bob's reaction is not counted for alice"
    );
}

#[tokio::test]
async fn presence_is_not_shared_across_a_block_in_either_direction() {
    let app = spawn_chat_app().await;
    let ([alice, bob, carol], room) = alice_blocked_bob(&app).await;
    let mut alice_ws = WsClient::connect(&app, &alice.access).await;
    let mut carol_ws = WsClient::connect(&app, &carol.access).await;
    let (alice_id, bob_id) = (uid(&alice), uid(&bob));

    let mut bob_ws = WsClient::connect(&app, &bob.access).await;

    let seen = carol_ws
        .try_next_matching(WAIT, |v| {
            v["type"] == "presence" && v["user_id"] == bob_id.as_str()
        })
        .await
        .expect("carol sees bob come online");
    assert_eq!(seen["status"], "online");
    alice_ws
        .expect_none_matching(QUIET, "bob's presence", |v| {
            v["type"] == "presence" && v["user_id"] == bob_id.as_str()
        })
        .await;
    alice_ws
        .ack(json!({"type": "presence.set", "status": "away"}))
        .await;
    let away = carol_ws
        .try_next_matching(WAIT, |v| {
            v["type"] == "presence" && v["user_id"] == alice_id.as_str() && v["status"] == "away"
        })
        .await;
    assert!(away.is_some(), "carol sees alice go away");
    bob_ws
        .expect_none_matching(QUIET, "alice's presence", |v| {
            v["type"] == "presence" && v["user_id"] == alice_id.as_str()
        })
        .await;
    let members = items(
        &app.get_authed(&format!("/rooms/{room}/members"), &bob.access)
            .await,
    );
    let alice_entry = members
        .iter()
        .find(|m| m["user_id"] == alice_id.as_str())
        .expect("alice is listed");
    assert_eq!(alice_entry["presence"], "offline", "{alice_entry}");
}

#[tokio::test]
async fn a_blocked_user_cannot_see_dm_or_invite_the_blocker() {
    let app = spawn_chat_app().await;
    let ([alice, bob, carol], _room) = alice_blocked_bob(&app).await;

    app.get_authed(&format!("/users/{}", uid(&alice)), &bob.access)
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found");
    app.get_authed(&format!("/users/{}", uid(&bob)), &alice.access)
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found");
    let profile = app
        .get_authed(&format!("/users/{}", uid(&alice)), &carol.access)
        .await;
    profile.assert_status(StatusCode::OK);
    assert_eq!(profile.body["username"], "alice");
    assert!(profile.body.get("email").is_none(), "{}", profile.text);

    app.post_json_authed("/dm", &bob.access, &json!({"user_id": uid(&alice)}))
        .await
        .assert_error(StatusCode::FORBIDDEN, "forbidden");
    app.post_json_authed("/dm", &alice.access, &json!({"user_id": uid(&bob)}))
        .await
        .assert_error(StatusCode::FORBIDDEN, "forbidden");

    let bobs_room = public_room(&app, &bob, "bob's place").await;
    let invite = app
        .post_json_authed(
            &format!("/rooms/{bobs_room}/invites"),
            &bob.access,
            &json!({"user_id": uid(&alice)}),
        )
        .await;
    assert!(
        invite.status == StatusCode::NOT_FOUND || invite.status == StatusCode::FORBIDDEN,
        "bob cannot invite alice: {} {}",
        invite.status,
        invite.text
    );
    assert!(items(&app.get_authed("/invites", &alice.access).await).is_empty());
}

#[tokio::test]
async fn blocks_are_listed_and_unblocking_restores_delivery() {
    let app = spawn_chat_app().await;
    let ([alice, bob, _carol], room) = alice_blocked_bob(&app).await;

    let blocks = items(&app.get_authed("/users/blocks", &alice.access).await);
    assert_eq!(blocks.len(), 1, "{blocks:?}");
    assert_eq!(blocks[0]["user_id"], uid(&bob).as_str());
    assert_eq!(blocks[0]["username"], "bob");
    assert!(items(&app.get_authed("/users/blocks", &bob.access).await).is_empty());

    app.delete_authed(&format!("/users/block/{}", uid(&bob)), &alice.access)
        .await
        .assert_status(StatusCode::NO_CONTENT);
    app.delete_authed(&format!("/users/block/{}", uid(&bob)), &alice.access)
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found");

    assert!(items(&app.get_authed("/users/blocks", &alice.access).await).is_empty());
    let mut alice_ws = WsClient::connect(&app, &alice.access).await;
    post_message(&app, &bob.access, &room, "friends again").await;
    let created = alice_ws.next_in_room("message.created", &room).await;
    assert_eq!(created["message"]["body"], "friends again");
    app.get_authed(&format!("/users/{}", uid(&alice)), &bob.access)
        .await
        .assert_status(StatusCode::OK);
}

#[tokio::test]
async fn blocking_myself_or_nobody_is_refused() {
    let app = spawn_chat_app().await;
    let [alice] = users(&app, ["alice"]).await;

    app.post_json_authed(
        "/users/block",
        &alice.access,
        &json!({"user_id": uid(&alice)}),
    )
    .await
    .assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    let nobody = uuid::Uuid::now_v7().to_string();
    app.post_json_authed("/users/block", &alice.access, &json!({"user_id": nobody}))
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn resume_replays_nothing_of_a_blocked_user_to_the_blocker() {
    let app = spawn_chat_app().await;
    let ([alice, bob, carol], room) = alice_blocked_bob(&app).await;
    post_message(&app, &bob.access, &room, "bob 1").await;
    let carols = post_message(&app, &carol.access, &room, "carol 1").await;
    post_message(&app, &bob.access, &room, "bob 2").await;
    let mut alice_ws = WsClient::connect(&app, &alice.access).await;

    alice_ws
        .send(json!({"type": "resume", "rooms": {room.clone(): 0}}))
        .await;

    let resumed = alice_ws.next_of_type("resumed").await;
    assert_eq!(resumed["rooms"][&room], 3, "{resumed}");
    let replayed: Vec<_> = alice_ws
        .backlog()
        .iter()
        .filter(|v| v["type"] == "message.created")
        .map(|v| v["message"]["id"].clone())
        .collect();
    assert_eq!(replayed, vec![carols["id"].clone()], "only carol's message");
}

#[tokio::test]
async fn a_blocked_users_messages_do_not_count_as_unread_for_the_blocker() {
    let app = spawn_chat_app().await;
    let ([alice, bob, carol], room) = alice_blocked_bob(&app).await;
    for body in ["b1", "b2", "b3"] {
        post_message(&app, &bob.access, &room, body).await;
    }
    post_message(&app, &carol.access, &room, "c1").await;

    let mine = crate::chat::my_room(&app, &alice.access, &room).await;

    assert_eq!(
        mine["unread_count"], 1,
        "only carol's message is there for alice to read: {mine}"
    );
}
