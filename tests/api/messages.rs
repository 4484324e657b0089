//! Messages over the socket and REST: seqs, idempotency, replies, edits,
//! deletes, reactions, history paging, read markers and search.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::chat::{
    assert_message_shape, create_room, history, items, join, my_room, post_message, public_room,
    put, seqs, spawn_chat_app, text, uid, users,
};
use crate::helpers::{TestApp, Tokens};
use crate::ws_client::WsClient;

const QUIET: Duration = Duration::from_millis(500);

/// Alice (owner) and Bob in one public room, each with a socket.
async fn alice_and_bob_in_a_room(app: &TestApp) -> (Tokens, Tokens, String, WsClient, WsClient) {
    let [alice, bob] = users(app, ["alice", "bob"]).await;
    let room = public_room(app, &alice, "general").await;
    join(app, &bob.access, &room).await;
    let alice_ws = WsClient::connect(app, &alice.access).await;
    let bob_ws = WsClient::connect(app, &bob.access).await;
    (alice, bob, room, alice_ws, bob_ws)
}

#[tokio::test]
async fn a_socket_send_is_acked_with_the_stored_message_and_reaches_the_other_member() {
    let app = spawn_chat_app().await;
    let (alice, _bob, room, mut alice_ws, mut bob_ws) = alice_and_bob_in_a_room(&app).await;

    let mut acked = Vec::new();
    for body in ["one", "two", "three"] {
        let reply = alice_ws
            .ack(json!({"type": "message.send", "room_id": room, "body": body}))
            .await;
        let message = reply["message"].clone();
        assert_message_shape(&message);
        assert_eq!(message["body"], body);
        assert_eq!(message["room_id"], room.as_str());
        assert_eq!(message["author_id"], uid(&alice).as_str());
        assert_eq!(message["deleted"], false);
        assert_eq!(message["edited_at"], Value::Null);
        acked.push(message);
    }

    assert_eq!(seqs(&acked), vec![1, 2, 3], "gapless seqs from 1");
    for sent in &acked {
        let created = bob_ws.next_in_room("message.created", &room).await;
        assert_eq!(created["room_id"], room.as_str());
        assert_eq!(
            &created["message"], sent,
            "the live event carries the stored message"
        );
    }
}

#[tokio::test]
async fn a_rest_send_answers_201_and_is_delivered_live_like_a_socket_send() {
    let app = spawn_chat_app().await;
    let (_alice, bob, room, mut alice_ws, _bob_ws) = alice_and_bob_in_a_room(&app).await;

    let reply = app
        .post_json_authed(
            &format!("/rooms/{room}/messages"),
            &bob.access,
            &json!({"body": "from rest"}),
        )
        .await;
    reply.assert_status(StatusCode::CREATED);
    assert_message_shape(&reply.body);
    assert_eq!(reply.body["seq"], 1);

    let created = alice_ws.next_in_room("message.created", &room).await;
    assert_eq!(created["message"], reply.body);
}

#[tokio::test]
async fn the_same_client_id_twice_stores_one_message_and_sends_one_event() {
    let app = spawn_chat_app().await;
    let (alice, _bob, room, mut alice_ws, mut bob_ws) = alice_and_bob_in_a_room(&app).await;
    let frame =
        json!({"type": "message.send", "room_id": room, "body": "once", "client_id": "c-1"});

    let first = alice_ws.ack(frame.clone()).await["message"].clone();
    let second = alice_ws.ack(frame).await["message"].clone();
    let over_rest = app
        .post_json_authed(
            &format!("/rooms/{room}/messages"),
            &alice.access,
            &json!({"body": "once", "client_id": "c-1"}),
        )
        .await;

    assert_eq!(first["id"], second["id"]);
    assert_eq!(first["seq"], 1);
    assert_eq!(second["seq"], 1);
    assert!(over_rest.status.is_success(), "{}", over_rest.text);
    assert_eq!(over_rest.body["id"], first["id"], "{}", over_rest.text);
    bob_ws.next_in_room("message.created", &room).await;
    bob_ws
        .expect_no_frame_of_type("message.created", QUIET)
        .await;
    let next = alice_ws.send_message(&room, "another").await;
    assert_eq!(next["seq"], 2, "no seq was spent on the repeats");
    assert_eq!(history(&app, &alice.access, &room, "").await.len(), 2);
}

#[tokio::test]
async fn a_reply_names_the_message_it_answers() {
    let app = spawn_chat_app().await;
    let (_alice, _bob, room, mut alice_ws, mut bob_ws) = alice_and_bob_in_a_room(&app).await;
    let question = alice_ws.send_message(&room, "question?").await;
    let question_id = text(&question, "id");

    let reply = bob_ws
        .ack(json!({"type": "message.send", "room_id": room, "body": "answer", "reply_to": question_id}))
        .await;

    assert_eq!(reply["message"]["reply_to"], question_id.as_str());
    let created = alice_ws
        .try_next_matching(crate::ws_client::WAIT, |v| {
            v["type"] == "message.created" && v["message"]["body"] == "answer"
        })
        .await
        .expect("alice sees the answer");
    assert_eq!(created["message"]["reply_to"], question_id.as_str());
    let unknown = uuid::Uuid::now_v7().to_string();
    bob_ws
        .expect_error(
            json!({"type": "message.send", "room_id": room, "body": "to nothing", "reply_to": unknown}),
            "not_found",
        )
        .await;
}

#[tokio::test]
async fn the_author_can_edit_a_message_and_members_see_the_update() {
    let app = spawn_chat_app().await;
    let (_alice, bob, room, mut alice_ws, mut bob_ws) = alice_and_bob_in_a_room(&app).await;
    let original = alice_ws.send_message(&room, "helo").await;
    let id = text(&original, "id");

    let reply = alice_ws
        .ack(json!({"type": "message.edit", "room_id": room, "message_id": id, "body": "hello"}))
        .await;

    assert_eq!(reply["message"]["body"], "hello");
    assert!(reply["message"]["edited_at"].is_string(), "{reply}");
    assert_eq!(
        reply["message"]["seq"], original["seq"],
        "an edit keeps the seq"
    );
    let updated = bob_ws.next_in_room("message.updated", &room).await;
    assert_eq!(updated["message"]["id"], id.as_str());
    assert_eq!(updated["message"]["body"], "hello");
    let stored = history(&app, &bob.access, &room, "").await;
    assert_eq!(stored[0]["body"], "hello");
}

#[tokio::test]
async fn editing_someone_elses_message_is_forbidden() {
    let app = spawn_chat_app().await;
    let (alice, bob, room, mut alice_ws, mut bob_ws) = alice_and_bob_in_a_room(&app).await;
    let id = text(&alice_ws.send_message(&room, "mine").await, "id");

    bob_ws
        .expect_error(
            json!({"type": "message.edit", "room_id": room, "message_id": id, "body": "yours now"}),
            "forbidden",
        )
        .await;
    crate::chat::patch_json(
        &app,
        &format!("/rooms/{room}/messages/{id}"),
        &bob.access,
        &json!({"body": "yours now"}),
    )
    .await
    .assert_error(StatusCode::FORBIDDEN, "forbidden");

    alice_ws
        .expect_no_frame_of_type("message.updated", QUIET)
        .await;
    assert_eq!(
        history(&app, &alice.access, &room, "").await[0]["body"],
        "mine"
    );
}

#[tokio::test]
async fn deleting_a_message_tells_members_with_its_seq() {
    let app = spawn_chat_app().await;
    let (alice, bob, room, mut alice_ws, mut bob_ws) = alice_and_bob_in_a_room(&app).await;
    alice_ws.send_message(&room, "keep").await;
    let doomed = alice_ws.send_message(&room, "oops").await;
    let id = text(&doomed, "id");

    // Bob, a plain member, may not delete it.
    bob_ws
        .expect_error(
            json!({"type": "message.delete", "room_id": room, "message_id": id}),
            "forbidden",
        )
        .await;
    alice_ws
        .ack(json!({"type": "message.delete", "room_id": room, "message_id": id}))
        .await;

    let deleted = bob_ws.next_in_room("message.deleted", &room).await;
    assert_eq!(deleted["message_id"], id.as_str());
    assert_eq!(deleted["seq"], 2);
    let stored = history(&app, &bob.access, &room, "").await;
    let gone = stored
        .iter()
        .find(|m| m["id"] == id.as_str())
        .expect("a deleted message keeps its place in history");
    assert_eq!(gone["deleted"], true);
    assert_ne!(gone["body"], "oops", "the body is not shown any more");
    // The owner may delete others' messages over REST.
    let bobs = post_message(&app, &bob.access, &room, "bob's").await;
    app.delete_authed(
        &format!("/rooms/{room}/messages/{}", text(&bobs, "id")),
        &alice.access,
    )
    .await
    .assert_status(StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn posting_to_a_room_i_am_not_in_is_refused() {
    let app = spawn_chat_app().await;
    let [alice, bob] = users(&app, ["alice", "bob"]).await;
    let public = public_room(&app, &alice, "open").await;
    let private = text(
        &create_room(&app, &alice.access, "closed", "private").await,
        "id",
    );
    let mut bob_ws = WsClient::connect(&app, &bob.access).await;

    for room in [&public, &private] {
        bob_ws
            .expect_error(
                json!({"type": "message.send", "room_id": room, "body": "let me in"}),
                "not_member",
            )
            .await;
        bob_ws
            .expect_error(json!({"type": "typing", "room_id": room}), "not_member")
            .await;
    }
    let body = json!({"body": "let me in"});
    let status = app
        .post_json_authed(&format!("/rooms/{public}/messages"), &bob.access, &body)
        .await
        .status;
    assert!(
        status == StatusCode::FORBIDDEN || status == StatusCode::NOT_FOUND,
        "{status}"
    );
    app.post_json_authed(&format!("/rooms/{private}/messages"), &bob.access, &body)
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found");
    assert!(history(&app, &alice.access, &public, "").await.is_empty());
}

#[tokio::test]
async fn reactions_are_added_and_removed_live_and_counted_in_history() {
    let app = spawn_chat_app().await;
    let (alice, bob, room, mut alice_ws, mut bob_ws) = alice_and_bob_in_a_room(&app).await;
    let id = text(&alice_ws.send_message(&room, "react to me").await, "id");

    alice_ws
        .ack(json!({"type": "reaction.add", "room_id": room, "message_id": id, "emoji": "👍"}))
        .await;
    let added = bob_ws.next_in_room("reaction.added", &room).await;
    assert_eq!(
        added,
        json!({"type": "reaction.added", "room_id": room, "message_id": id, "emoji": "👍", "user_id": uid(&alice)})
    );
    put(
        &app,
        &format!("/rooms/{room}/messages/{id}/reactions/👍"),
        &bob.access,
    )
    .await
    .assert_status(StatusCode::NO_CONTENT);
    let added = alice_ws
        .try_next_matching(crate::ws_client::WAIT, |v| {
            v["type"] == "reaction.added" && v["user_id"] == uid(&bob).as_str()
        })
        .await
        .expect("alice sees bob's reaction");
    assert_eq!(added["emoji"], "👍");
    assert_eq!(
        history(&app, &alice.access, &room, "").await[0]["reactions"],
        json!({"👍": 2})
    );

    bob_ws
        .ack(json!({"type": "reaction.remove", "room_id": room, "message_id": id, "emoji": "👍"}))
        .await;
    let removed = alice_ws.next_in_room("reaction.removed", &room).await;
    assert_eq!(removed["user_id"], uid(&bob).as_str());
    assert_eq!(removed["emoji"], "👍");
    assert_eq!(
        history(&app, &bob.access, &room, "").await[0]["reactions"],
        json!({"👍": 1})
    );
    bob_ws
        .expect_error(
            json!({"type": "reaction.add", "room_id": room, "message_id": id, "emoji": "lol"}),
            "validation_failed",
        )
        .await;
}

#[tokio::test]
async fn history_pages_by_seq_newest_first_or_oldest_first_after_a_seq() {
    let app = spawn_chat_app().await;
    let [alice] = users(&app, ["alice"]).await;
    let room = public_room(&app, &alice, "general").await;
    for i in 1..=7 {
        post_message(&app, &alice.access, &room, &format!("m{i}")).await;
    }
    let token = &alice.access;

    assert_eq!(
        seqs(&history(&app, token, &room, "").await),
        vec![7, 6, 5, 4, 3, 2, 1]
    );
    let first = app
        .get_authed(&format!("/rooms/{room}/messages?limit=3"), token)
        .await;
    assert_eq!(seqs(&items(&first)), vec![7, 6, 5]);
    let cursor = first.body["next_cursor"]
        .as_str()
        .expect("a next_cursor on a full page")
        .to_owned();
    let second = app
        .get_authed(
            &format!("/rooms/{room}/messages?limit=3&cursor={cursor}"),
            token,
        )
        .await;
    assert_eq!(seqs(&items(&second)), vec![4, 3, 2]);
    assert_eq!(
        seqs(&history(&app, token, &room, "?before_seq=5&limit=2").await),
        vec![4, 3]
    );
    assert_eq!(
        seqs(&history(&app, token, &room, "?after_seq=2&limit=3").await),
        vec![3, 4, 5]
    );
    let last = app
        .get_authed(&format!("/rooms/{room}/messages?after_seq=5"), token)
        .await;
    assert_eq!(seqs(&items(&last)), vec![6, 7]);
    assert_eq!(last.body["next_cursor"], Value::Null);
    assert!(history(&app, token, &room, "?after_seq=7").await.is_empty());
    app.get_authed(&format!("/rooms/{room}/messages?limit=0"), token)
        .await
        .assert_status(StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn read_markers_drive_unread_counts_and_reach_my_other_sockets() {
    let app = spawn_chat_app().await;
    let [alice, bob] = users(&app, ["alice", "bob"]).await;
    let room = public_room(&app, &alice, "general").await;
    join(&app, &bob.access, &room).await;
    let mut phone = WsClient::connect(&app, &alice.access).await;
    let mut laptop = WsClient::connect(&app, &alice.access).await;
    for body in ["a", "b", "c"] {
        post_message(&app, &bob.access, &room, body).await;
    }
    assert_eq!(my_room(&app, &alice.access, &room).await["unread_count"], 3);

    let reply = app
        .post_json_authed(
            &format!("/rooms/{room}/read"),
            &alice.access,
            &json!({"seq": 2}),
        )
        .await;
    reply.assert_status(StatusCode::OK);
    assert_eq!(reply.body["seq"], 2);
    assert_eq!(my_room(&app, &alice.access, &room).await["unread_count"], 1);
    for ws in [&mut phone, &mut laptop] {
        let read = ws
            .try_next_matching(crate::ws_client::WAIT, |v| {
                v["type"] == "read" && v["user_id"] == uid(&alice).as_str()
            })
            .await
            .expect("a REST read marker reaches all my sockets");
        assert_eq!(read["room_id"], room.as_str());
        assert_eq!(read["seq"], 2);
    }

    phone
        .ack(json!({"type": "read", "room_id": room, "seq": 3}))
        .await;
    let read = laptop
        .try_next_matching(crate::ws_client::WAIT, |v| {
            v["type"] == "read" && v["user_id"] == uid(&alice).as_str()
        })
        .await
        .expect("my other socket hears of my read marker");
    assert_eq!(read["seq"], 3);
    phone
        .expect_none_matching(
            QUIET,
            "my own read echoed to the socket that sent it",
            |v| v["type"] == "read" && v["user_id"] == uid(&alice).as_str(),
        )
        .await;
    assert_eq!(my_room(&app, &alice.access, &room).await["unread_count"], 0);
    // A new message from bob is unread again; a fresh socket's ready says so.
    post_message(&app, &bob.access, &room, "d").await;
    let fresh = WsClient::connect(&app, &alice.access).await;
    assert_eq!(
        fresh.ready["rooms"][0]["unread_count"], 1,
        "{}",
        fresh.ready
    );
    assert_eq!(fresh.ready["rooms"][0]["last_seq"], 4);
}

#[tokio::test]
async fn search_finds_words_only_in_my_rooms_and_tolerates_hostile_queries() {
    let app = spawn_chat_app().await;
    let [alice, bob] = users(&app, ["alice", "bob"]).await;
    let mine = public_room(&app, &alice, "alice's").await;
    let theirs = text(
        &create_room(&app, &bob.access, "bob's", "private").await,
        "id",
    );
    post_message(&app, &alice.access, &mine, "banana split for dessert").await;
    post_message(&app, &alice.access, &mine, "nothing to see").await;
    post_message(&app, &bob.access, &theirs, "banana bread recipe").await;

    let found = items(
        &app.get_authed("/search/messages?q=banana", &alice.access)
            .await,
    );
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0]["body"], "banana split for dessert");
    assert_eq!(found[0]["room_id"], mine.as_str());
    let bobs = items(
        &app.get_authed("/search/messages?q=banana", &bob.access)
            .await,
    );
    assert_eq!(bobs.len(), 1, "{bobs:?}");
    assert_eq!(bobs[0]["room_id"], theirs.as_str());
    let scoped = items(
        &app.get_authed(
            &format!("/search/messages?q=banana&room_id={mine}"),
            &alice.access,
        )
        .await,
    );
    assert_eq!(scoped.len(), 1, "{scoped:?}");

    for hostile in [
        "\"",
        "*",
        "NEAR(",
        "OR",
        "banana OR",
        "\"banana",
        "banana*",
        "-banana",
        "a:b",
        "(((",
        "'; drop table messages; --",
        "AND NOT",
        "^",
    ] {
        let url =
            reqwest::Url::parse_with_params(&app.api_url("/search/messages"), &[("q", hostile)])
                .expect("a search URL");
        let reply = app
            .client
            .get(url)
            .bearer_auth(&alice.access)
            .send()
            .await
            .expect("request sent");
        let reply = crate::helpers::Reply::of(reply).await;
        assert_eq!(
            reply.status,
            StatusCode::OK,
            "query {hostile:?} is searched, not an error: {}",
            reply.text
        );
        for m in items(&reply) {
            assert_eq!(m["room_id"], mine.as_str(), "query {hostile:?} leaked {m}");
        }
    }
    assert_eq!(history(&app, &alice.access, &mine, "").await.len(), 2);
}

#[tokio::test]
async fn the_same_client_id_from_two_users_makes_two_messages() {
    let app = spawn_chat_app().await;
    let (alice, bob, room, mut alice_ws, mut bob_ws) = alice_and_bob_in_a_room(&app).await;
    let frame = json!({"type": "message.send", "room_id": room, "body": "hi", "client_id": "same"});

    let from_alice = alice_ws.ack(frame.clone()).await["message"].clone();
    let from_bob = bob_ws.ack(frame).await["message"].clone();

    assert_ne!(from_alice["id"], from_bob["id"], "idempotency is per user");
    assert_eq!(from_alice["author_id"], uid(&alice).as_str());
    assert_eq!(from_bob["author_id"], uid(&bob).as_str());
    assert_eq!(seqs(&[from_alice, from_bob]), vec![1, 2]);
}

#[tokio::test]
async fn a_read_marker_never_moves_backwards_nor_past_the_last_message() {
    let app = spawn_chat_app().await;
    let [alice, bob] = users(&app, ["alice", "bob"]).await;
    let room = public_room(&app, &alice, "general").await;
    join(&app, &bob.access, &room).await;
    for body in ["a", "b", "c"] {
        post_message(&app, &alice.access, &room, body).await;
    }
    let read = |seq: i64| {
        let path = format!("/rooms/{room}/read");
        let token = bob.access.clone();
        let app = &app;
        async move {
            app.post_json_authed(&path, &token, &json!({"seq": seq}))
                .await
        }
    };

    assert_eq!(read(2).await.body["seq"], 2);
    let back = read(1).await;
    assert_eq!(back.body["seq"], 2, "never backwards: {}", back.text);
    assert_eq!(my_room(&app, &bob.access, &room).await["unread_count"], 1);

    let ahead = read(999).await;
    assert!(
        ahead.status == StatusCode::OK || ahead.status == StatusCode::UNPROCESSABLE_ENTITY,
        "{} {}",
        ahead.status,
        ahead.text
    );
    assert_eq!(my_room(&app, &bob.access, &room).await["unread_count"], 0);
    post_message(&app, &alice.access, &room, "d").await;
    assert_eq!(
        my_room(&app, &bob.access, &room).await["unread_count"],
        1,
        "a marker set past the end must not hide later messages"
    );
    read(-1)
        .await
        .assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
}

#[tokio::test]
async fn search_forgets_deleted_messages_and_finds_edited_text() {
    let app = spawn_chat_app().await;
    let (alice, _bob, room, mut alice_ws, _bob_ws) = alice_and_bob_in_a_room(&app).await;
    let doomed = alice_ws
        .send_message(&room, "the password is swordfish")
        .await;
    let edited = alice_ws.send_message(&room, "meet at the lighthouse").await;
    let search = |q: &'static str| {
        let app = &app;
        let token = alice.access.clone();
        async move {
            items(
                &app.get_authed(&format!("/search/messages?q={q}"), &token)
                    .await,
            )
        }
    };
    assert_eq!(search("swordfish").await.len(), 1);

    alice_ws
        .ack(json!({"type": "message.delete", "room_id": room, "message_id": doomed["id"]}))
        .await;
    alice_ws
        .ack(json!({"type": "message.edit", "room_id": room, "message_id": edited["id"], "body": "meet at the harbour"}))
        .await;

    assert!(
        search("swordfish").await.is_empty(),
        "a deleted message is not found"
    );
    assert!(
        search("lighthouse").await.is_empty(),
        "the old text of an edited message is not found"
    );
    let found = search("harbour").await;
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0]["id"], edited["id"]);
}

#[tokio::test]
async fn search_does_not_reach_into_rooms_i_left() {
    let app = spawn_chat_app().await;
    let (alice, bob, room, _alice_ws, _bob_ws) = alice_and_bob_in_a_room(&app).await;
    post_message(&app, &alice.access, &room, "zeppelin sighting").await;
    assert_eq!(
        items(
            &app.get_authed("/search/messages?q=zeppelin", &bob.access)
                .await
        )
        .len(),
        1
    );

    app.post_authed(&format!("/rooms/{room}/leave"), &bob.access)
        .await
        .assert_status(StatusCode::NO_CONTENT);

    let found = items(
        &app.get_authed("/search/messages?q=zeppelin", &bob.access)
            .await,
    );
    assert!(found.is_empty(), "{found:?}");
}

#[tokio::test]
async fn a_deleted_message_cannot_be_edited_or_reacted_to() {
    let app = spawn_chat_app().await;
    let (_alice, _bob, room, mut alice_ws, mut bob_ws) = alice_and_bob_in_a_room(&app).await;
    let id = text(&alice_ws.send_message(&room, "short-lived").await, "id");
    alice_ws
        .ack(json!({"type": "message.delete", "room_id": room, "message_id": id}))
        .await;

    alice_ws
        .expect_error(
            json!({"type": "message.edit", "room_id": room, "message_id": id, "body": "revived"}),
            "not_found",
        )
        .await;
    bob_ws
        .expect_error(
            json!({"type": "reaction.add", "room_id": room, "message_id": id, "emoji": "👀"}),
            "not_found",
        )
        .await;
}

#[tokio::test]
async fn an_edit_over_rest_is_delivered_live_too() {
    let app = spawn_chat_app().await;
    let (alice, _bob, room, _alice_ws, mut bob_ws) = alice_and_bob_in_a_room(&app).await;
    let id = text(
        &post_message(&app, &alice.access, &room, "draft").await,
        "id",
    );

    let reply = crate::chat::patch_json(
        &app,
        &format!("/rooms/{room}/messages/{id}"),
        &alice.access,
        &json!({"body": "final"}),
    )
    .await;
    reply.assert_status(StatusCode::OK);

    let updated = bob_ws.next_in_room("message.updated", &room).await;
    assert_eq!(updated["message"], reply.body);
}

#[tokio::test]
async fn history_rejects_bad_paging_parameters_and_hides_other_rooms() {
    let app = spawn_chat_app().await;
    let [alice, bob] = users(&app, ["alice", "bob"]).await;
    let public = public_room(&app, &alice, "open").await;
    let private = text(
        &create_room(&app, &alice.access, "closed", "private").await,
        "id",
    );

    for query in [
        "?limit=201",
        "?limit=abc",
        "?before_seq=abc",
        "?after_seq=-1",
    ] {
        app.get_authed(&format!("/rooms/{public}/messages{query}"), &alice.access)
            .await
            .assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    }
    app.get_authed(&format!("/rooms/{public}/messages"), &bob.access)
        .await
        .assert_error(StatusCode::FORBIDDEN, "forbidden");
    app.get_authed(&format!("/rooms/{private}/messages"), &bob.access)
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn a_reply_to_a_message_of_another_room_is_refused() {
    let app = spawn_chat_app().await;
    let (alice, _bob, room, mut alice_ws, _bob_ws) = alice_and_bob_in_a_room(&app).await;
    let elsewhere = public_room(&app, &alice, "elsewhere").await;
    let there = post_message(&app, &alice.access, &elsewhere, "over there").await;

    alice_ws
        .expect_error(
            json!({"type": "message.send", "room_id": room, "body": "re", "reply_to": there["id"]}),
            "not_found",
        )
        .await;
}

#[tokio::test]
async fn searching_a_room_i_am_not_in_finds_nothing() {
    let app = spawn_chat_app().await;
    let [alice, bob] = users(&app, ["alice", "bob"]).await;
    let theirs = text(
        &create_room(&app, &bob.access, "bob's", "private").await,
        "id",
    );
    post_message(&app, &bob.access, &theirs, "classified dossier").await;

    let reply = app
        .get_authed(
            &format!("/search/messages?q=dossier&room_id={theirs}"),
            &alice.access,
        )
        .await;

    if reply.status == StatusCode::OK {
        assert!(items(&reply).is_empty(), "{}", reply.text);
    } else {
        reply.assert_error(StatusCode::NOT_FOUND, "not_found");
    }
}

#[tokio::test]
async fn the_body_limit_is_a_setting_for_socket_and_rest_alike() {
    let app = crate::chat::spawn_chat_app_with(|s| s.message_max_chars = 10).await;
    let [alice] = crate::chat::users(&app, ["alice"]).await;
    let room = crate::chat::public_room(&app, &alice, "general").await;
    let mut ws = WsClient::connect(&app, &alice.access).await;

    let error = ws
        .expect_error(
            json!({"type": "message.send", "room_id": room, "body": "eleven char"}),
            "validation_failed",
        )
        .await;
    assert!(
        error["message"].as_str().unwrap_or_default().contains("10"),
        "{error}"
    );
    app.post_json_authed(
        &format!("/rooms/{room}/messages"),
        &alice.access,
        &json!({"body": "eleven char"}),
    )
    .await
    .assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    let ok = ws.send_message(&room, "ten chars!").await;
    assert_eq!(ok["body"], "ten chars!");
}

#[tokio::test]
async fn a_burst_of_concurrent_sends_is_stored_gapless_in_order_and_published_once_each() {
    let app = spawn_chat_app().await;
    let (alice, bob, room, _alice_ws, mut bob_ws) = alice_and_bob_in_a_room(&app).await;

    // 40 sends at once from two authors (the room stores them in batches),
    // among them one client_id used twice by Alice.
    let mut tasks = Vec::new();
    for n in 0..40 {
        let (token, client_id) = match n {
            7 | 23 => (alice.access.clone(), Some("twice")),
            n if n % 2 == 0 => (alice.access.clone(), None),
            _ => (bob.access.clone(), None),
        };
        let (client, url) = (
            app.client.clone(),
            app.api_url(&format!("/rooms/{room}/messages")),
        );
        tasks.push(tokio::spawn(async move {
            let mut body = json!({"body": format!("burst {n}")});
            if let Some(cid) = client_id {
                body["client_id"] = json!(cid);
            }
            let resp = client
                .post(url)
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .expect("send");
            let status = resp.status();
            let message: Value = resp.json().await.expect("json");
            (n, status, message)
        }));
    }
    let mut answers = Vec::new();
    for task in tasks {
        answers.push(task.await.expect("task"));
    }

    for (n, status, message) in &answers {
        assert!(
            *status == StatusCode::CREATED || *status == StatusCode::OK,
            "send {n}: {status} {message}"
        );
        assert_message_shape(message);
    }
    let twice: Vec<&Value> = answers
        .iter()
        .filter(|(n, ..)| *n == 7 || *n == 23)
        .map(|(.., m)| m)
        .collect();
    assert_eq!(
        twice[0]["id"], twice[1]["id"],
        "one message for one client_id"
    );
    let mut stored: Vec<i64> = answers
        .iter()
        .filter(|(n, ..)| *n != 23 && *n != 7)
        .map(|(.., m)| m["seq"].as_i64().expect("seq"))
        .chain(std::iter::once(twice[0]["seq"].as_i64().expect("seq")))
        .collect();
    stored.sort_unstable();
    assert_eq!(
        stored,
        (1..=39).collect::<Vec<i64>>(),
        "39 messages, gapless"
    );

    // Bob's socket gets each stored message exactly once, in seq order,
    // and history agrees with the answers.
    let mut live = Vec::new();
    for _ in 0..39 {
        live.push(bob_ws.next_in_room("message.created", &room).await["message"].clone());
    }
    assert_eq!(seqs(&live), (1..=39).collect::<Vec<i64>>());
    bob_ws
        .expect_no_frame_of_type("message.created", QUIET)
        .await;
    let page = history(&app, &bob.access, &room, "?after_seq=0&limit=100").await;
    assert_eq!(page, live, "history holds what was published");
}
