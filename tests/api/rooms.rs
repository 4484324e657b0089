//! Rooms over REST with their live events: create, list, discover, join,
//! leave, invites, members and roles, kick and ban, update, delete, DMs.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;

use crate::chat::{
    create_room, items, join, my_room, patch_json, post_message, public_room, put_json,
    spawn_chat_app, text, uid, users,
};
use crate::ws_client::WsClient;

const QUIET: Duration = Duration::from_millis(500);

#[tokio::test]
async fn creating_public_and_private_rooms_answers_201_and_makes_me_owner() {
    let app = spawn_chat_app().await;
    let alice = app.register_user("alice").await;

    for visibility in ["public", "private"] {
        let reply = app
            .post_json_authed(
                "/rooms",
                &alice.access,
                &json!({"name": format!("{visibility} room"), "topic": "hello", "visibility": visibility}),
            )
            .await;
        reply.assert_status(StatusCode::CREATED);
        let room = &reply.body;
        assert!(room["id"].as_str().is_some_and(|s| !s.is_empty()), "{room}");
        assert_eq!(room["name"], format!("{visibility} room"));
        assert_eq!(room["topic"], "hello");
        assert_eq!(room["visibility"], visibility);
        assert_eq!(room["my_role"], "owner");
        assert_eq!(room["last_seq"], 0);
        assert_eq!(room["unread_count"], 0);
        assert_eq!(room["created_by"], uid(&alice).as_str());
    }
}

#[tokio::test]
async fn a_room_without_a_name_or_with_a_bad_visibility_is_422() {
    let app = spawn_chat_app().await;
    let alice = app.register_user("alice").await;

    let reply = app
        .post_json_authed(
            "/rooms",
            &alice.access,
            &json!({"name": "", "visibility": "secret"}),
        )
        .await;

    let error = reply.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    let details = error["details"].to_string();
    assert!(
        details.contains("name") && details.contains("visibility"),
        "{}",
        reply.text
    );
}

#[tokio::test]
async fn my_rooms_list_last_seq_unread_count_and_my_role() {
    let app = spawn_chat_app().await;
    let [alice, bob] = users(&app, ["alice", "bob"]).await;
    let room = public_room(&app, &alice, "general").await;
    join(&app, &bob.access, &room).await;
    for body in ["one", "two", "three"] {
        post_message(&app, &alice.access, &room, body).await;
    }

    let mine = my_room(&app, &alice.access, &room).await;
    let theirs = my_room(&app, &bob.access, &room).await;

    assert_eq!(mine["last_seq"], 3);
    assert_eq!(mine["my_role"], "owner");
    assert_eq!(mine["unread_count"], 0, "my own messages are not unread");
    assert_eq!(theirs["last_seq"], 3);
    assert_eq!(theirs["my_role"], "member");
    assert_eq!(theirs["unread_count"], 3);
}

#[tokio::test]
async fn public_rooms_can_be_found_by_name_and_private_ones_cannot() {
    let app = spawn_chat_app().await;
    let [alice, bob] = users(&app, ["alice", "bob"]).await;
    let rust = public_room(&app, &alice, "Rustaceans").await;
    public_room(&app, &alice, "Gophers").await;
    create_room(&app, &alice.access, "Rust insiders", "private").await;

    let found = items(&app.get_authed("/rooms/public?q=rust", &bob.access).await);
    let names: Vec<String> = found.iter().map(|r| text(r, "name")).collect();
    assert_eq!(names, vec!["Rustaceans".to_owned()], "{found:?}");
    assert_eq!(found[0]["id"], rust.as_str());

    let all = items(&app.get_authed("/rooms/public", &bob.access).await);
    assert_eq!(all.len(), 2, "both public rooms, no private one: {all:?}");
    assert!(all.iter().all(|r| r["visibility"] == "public"));
}

#[tokio::test]
async fn joining_a_public_room_tells_its_members_live_and_subscribes_my_sockets() {
    let app = spawn_chat_app().await;
    let [alice, bob] = users(&app, ["alice", "bob"]).await;
    let room = public_room(&app, &alice, "general").await;
    let mut alice_ws = WsClient::connect(&app, &alice.access).await;
    let mut bob_ws = WsClient::connect(&app, &bob.access).await;

    let reply = app
        .post_authed(&format!("/rooms/{room}/join"), &bob.access)
        .await;
    reply.assert_status(StatusCode::OK);
    assert_eq!(reply.body["my_role"], "member", "{}", reply.text);

    let joined = alice_ws.next_in_room("member.joined", &room).await;
    assert_eq!(joined["user_id"], uid(&bob).as_str(), "{joined}");
    assert_eq!(joined["role"], "member", "{joined}");
    // Bob's socket, opened before he joined, now receives the room.
    post_message(&app, &alice.access, &room, "welcome bob").await;
    let created = bob_ws.next_in_room("message.created", &room).await;
    assert_eq!(created["message"]["body"], "welcome bob");
}

#[tokio::test]
async fn joining_a_private_room_is_404() {
    let app = spawn_chat_app().await;
    let [alice, bob] = users(&app, ["alice", "bob"]).await;
    let room = text(
        &create_room(&app, &alice.access, "secret", "private").await,
        "id",
    );

    app.post_authed(&format!("/rooms/{room}/join"), &bob.access)
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found");
    app.get_authed(&format!("/rooms/{room}"), &bob.access)
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn leaving_a_room_tells_the_members_and_stops_its_events() {
    let app = spawn_chat_app().await;
    let [alice, bob] = users(&app, ["alice", "bob"]).await;
    let room = public_room(&app, &alice, "general").await;
    join(&app, &bob.access, &room).await;
    let mut alice_ws = WsClient::connect(&app, &alice.access).await;
    let mut bob_ws = WsClient::connect(&app, &bob.access).await;

    app.post_authed(&format!("/rooms/{room}/leave"), &bob.access)
        .await
        .assert_status(StatusCode::NO_CONTENT);

    let left = alice_ws.next_in_room("member.left", &room).await;
    assert_eq!(left["user_id"], uid(&bob).as_str(), "{left}");
    post_message(&app, &alice.access, &room, "bob is gone").await;
    alice_ws.next_in_room("message.created", &room).await;
    bob_ws
        .expect_no_frame_of_type("message.created", QUIET)
        .await;
    let bob_rooms = items(&app.get_authed("/rooms", &bob.access).await);
    assert!(bob_rooms.is_empty(), "{bob_rooms:?}");
    // The owner cannot simply walk away.
    app.post_authed(&format!("/rooms/{room}/leave"), &alice.access)
        .await
        .assert_error(StatusCode::FORBIDDEN, "forbidden");
}

#[tokio::test]
async fn an_invite_to_a_private_room_arrives_live_is_listed_and_can_be_accepted() {
    let app = spawn_chat_app().await;
    let [alice, bob] = users(&app, ["alice", "bob"]).await;
    let room = text(
        &create_room(&app, &alice.access, "secret", "private").await,
        "id",
    );
    let mut alice_ws = WsClient::connect(&app, &alice.access).await;
    let mut bob_ws = WsClient::connect(&app, &bob.access).await;

    let reply = app
        .post_json_authed(
            &format!("/rooms/{room}/invites"),
            &alice.access,
            &json!({"user_id": uid(&bob)}),
        )
        .await;
    reply.assert_status(StatusCode::CREATED);
    let invite_id = text(&reply.body, "id");

    let live = bob_ws.next_of_type("invite").await;
    assert_eq!(live["invite"]["id"], invite_id.as_str(), "{live}");
    assert_eq!(live["invite"]["room_id"], room.as_str(), "{live}");
    assert_eq!(live["invite"]["inviter_id"], uid(&alice).as_str(), "{live}");
    let listed = items(&app.get_authed("/invites", &bob.access).await);
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["id"], invite_id.as_str());
    assert_eq!(listed[0]["status"], "pending");

    let accepted = app
        .post_authed(&format!("/invites/{invite_id}/accept"), &bob.access)
        .await;
    accepted.assert_status(StatusCode::OK);
    assert_eq!(accepted.body["my_role"], "member", "{}", accepted.text);

    let joined = alice_ws.next_in_room("member.joined", &room).await;
    assert_eq!(joined["user_id"], uid(&bob).as_str());
    assert_eq!(my_room(&app, &bob.access, &room).await["my_role"], "member");
    assert!(items(&app.get_authed("/invites", &bob.access).await).is_empty());
    post_message(&app, &alice.access, &room, "hi bob").await;
    assert_eq!(
        bob_ws.next_in_room("message.created", &room).await["message"]["body"],
        "hi bob"
    );
}

#[tokio::test]
async fn a_declined_invite_is_gone_and_does_not_make_a_member() {
    let app = spawn_chat_app().await;
    let [alice, bob] = users(&app, ["alice", "bob"]).await;
    let room = text(
        &create_room(&app, &alice.access, "secret", "private").await,
        "id",
    );
    let invite = app
        .post_json_authed(
            &format!("/rooms/{room}/invites"),
            &alice.access,
            &json!({"user_id": uid(&bob)}),
        )
        .await;
    invite.assert_status(StatusCode::CREATED);
    let invite_id = text(&invite.body, "id");

    app.post_authed(&format!("/invites/{invite_id}/decline"), &bob.access)
        .await
        .assert_status(StatusCode::NO_CONTENT);

    assert!(items(&app.get_authed("/invites", &bob.access).await).is_empty());
    app.post_authed(&format!("/invites/{invite_id}/accept"), &bob.access)
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found");
    app.get_authed(&format!("/rooms/{room}"), &bob.access)
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn a_second_pending_invite_is_409_and_a_plain_member_cannot_invite_to_a_private_room() {
    let app = spawn_chat_app().await;
    let [alice, bob, carol] = &users(&app, ["alice", "bob", "carol"]).await;
    let room = text(
        &create_room(&app, &alice.access, "secret", "private").await,
        "id",
    );
    let path = format!("/rooms/{room}/invites");
    app.post_json_authed(&path, &alice.access, &json!({"user_id": uid(bob)}))
        .await
        .assert_status(StatusCode::CREATED);

    app.post_json_authed(&path, &alice.access, &json!({"user_id": uid(bob)}))
        .await
        .assert_error(StatusCode::CONFLICT, "conflict");

    let invite_id = text(
        &items(&app.get_authed("/invites", &bob.access).await)[0],
        "id",
    );
    app.post_authed(&format!("/invites/{invite_id}/accept"), &bob.access)
        .await
        .assert_status(StatusCode::OK);
    app.post_json_authed(&path, &bob.access, &json!({"user_id": uid(carol)}))
        .await
        .assert_error(StatusCode::FORBIDDEN, "forbidden");
}

#[tokio::test]
async fn the_member_list_shows_each_member_with_role_and_presence() {
    let app = spawn_chat_app().await;
    let [alice, bob] = users(&app, ["alice", "bob"]).await;
    let room = public_room(&app, &alice, "general").await;
    join(&app, &bob.access, &room).await;
    let _alice_ws = WsClient::connect(&app, &alice.access).await;

    let members = items(
        &app.get_authed(&format!("/rooms/{room}/members"), &bob.access)
            .await,
    );

    assert_eq!(members.len(), 2, "{members:?}");
    let of = |id: &str| {
        members
            .iter()
            .find(|m| m["user_id"] == id)
            .unwrap_or_else(|| panic!("{id} is listed: {members:?}"))
            .clone()
    };
    let a = of(&uid(&alice));
    let b = of(&uid(&bob));
    assert_eq!(a["role"], "owner");
    assert_eq!(a["username"], "alice");
    assert_eq!(a["presence"], "online", "alice has a socket open: {a}");
    assert_eq!(b["role"], "member");
    assert_eq!(b["presence"], "offline", "bob has no socket: {b}");
}

#[tokio::test]
async fn kicking_a_member_tells_the_room_and_they_may_join_again() {
    let app = spawn_chat_app().await;
    let [alice, bob] = users(&app, ["alice", "bob"]).await;
    let room = public_room(&app, &alice, "general").await;
    join(&app, &bob.access, &room).await;
    let mut alice_ws = WsClient::connect(&app, &alice.access).await;
    let mut bob_ws = WsClient::connect(&app, &bob.access).await;

    app.post_authed(
        &format!("/rooms/{room}/members/{}/kick", uid(&bob)),
        &alice.access,
    )
    .await
    .assert_status(StatusCode::NO_CONTENT);

    for ws in [&mut alice_ws, &mut bob_ws] {
        let left = ws.next_in_room("member.left", &room).await;
        assert_eq!(left["user_id"], uid(&bob).as_str(), "{left}");
    }
    app.get_authed(&format!("/rooms/{room}/messages"), &bob.access)
        .await
        .assert_status(StatusCode::FORBIDDEN);
    join(&app, &bob.access, &room).await;
    // A member cannot kick the owner.
    app.post_authed(
        &format!("/rooms/{room}/members/{}/kick", uid(&alice)),
        &bob.access,
    )
    .await
    .assert_error(StatusCode::FORBIDDEN, "forbidden");
}

#[tokio::test]
async fn a_banned_user_is_removed_cannot_rejoin_until_unbanned() {
    let app = spawn_chat_app().await;
    let [alice, bob] = users(&app, ["alice", "bob"]).await;
    let room = public_room(&app, &alice, "general").await;
    join(&app, &bob.access, &room).await;
    let mut alice_ws = WsClient::connect(&app, &alice.access).await;
    let ban = format!("/rooms/{room}/members/{}/ban", uid(&bob));

    app.post_authed(&ban, &alice.access)
        .await
        .assert_status(StatusCode::NO_CONTENT);

    let left = alice_ws.next_in_room("member.left", &room).await;
    assert_eq!(left["user_id"], uid(&bob).as_str(), "{left}");
    app.post_authed(&format!("/rooms/{room}/join"), &bob.access)
        .await
        .assert_error(StatusCode::FORBIDDEN, "forbidden");

    app.delete_authed(&ban, &alice.access)
        .await
        .assert_status(StatusCode::NO_CONTENT);
    join(&app, &bob.access, &room).await;
    app.delete_authed(&ban, &alice.access)
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn the_owner_can_make_a_member_admin_and_admins_can_moderate() {
    let app = spawn_chat_app().await;
    let [alice, bob, carol] = &users(&app, ["alice", "bob", "carol"]).await;
    let room = public_room(&app, alice, "general").await;
    join(&app, &bob.access, &room).await;
    join(&app, &carol.access, &room).await;
    let mut carol_ws = WsClient::connect(&app, &carol.access).await;

    put_json(
        &app,
        &format!("/rooms/{room}/members/{}/role", uid(bob)),
        &alice.access,
        &json!({"role": "admin"}),
    )
    .await
    .assert_status(StatusCode::NO_CONTENT);

    let updated = carol_ws.next_in_room("member.updated", &room).await;
    assert_eq!(updated["user_id"], uid(bob).as_str(), "{updated}");
    assert_eq!(updated["role"], "admin", "{updated}");
    let members = items(
        &app.get_authed(&format!("/rooms/{room}/members"), &carol.access)
            .await,
    );
    let bob_entry = members
        .iter()
        .find(|m| m["user_id"] == uid(bob).as_str())
        .expect("bob is listed");
    assert_eq!(bob_entry["role"], "admin");
    assert_eq!(my_room(&app, &bob.access, &room).await["my_role"], "admin");
    // Bob, now admin, may kick carol, a member.
    app.post_authed(
        &format!("/rooms/{room}/members/{}/kick", uid(carol)),
        &bob.access,
    )
    .await
    .assert_status(StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn only_the_owner_may_change_roles() {
    let app = spawn_chat_app().await;
    let [alice, bob, carol] = &users(&app, ["alice", "bob", "carol"]).await;
    let room = public_room(&app, alice, "general").await;
    join(&app, &bob.access, &room).await;
    join(&app, &carol.access, &room).await;
    let role_of = |user: &str| format!("/rooms/{room}/members/{user}/role");
    put_json(
        &app,
        &role_of(&uid(bob)),
        &alice.access,
        &json!({"role": "admin"}),
    )
    .await
    .assert_status(StatusCode::NO_CONTENT);

    // Not even an admin may.
    put_json(
        &app,
        &role_of(&uid(carol)),
        &bob.access,
        &json!({"role": "admin"}),
    )
    .await
    .assert_error(StatusCode::FORBIDDEN, "forbidden");
    put_json(
        &app,
        &role_of(&uid(bob)),
        &carol.access,
        &json!({"role": "member"}),
    )
    .await
    .assert_error(StatusCode::FORBIDDEN, "forbidden");
    put_json(
        &app,
        &role_of(&uid(carol)),
        &alice.access,
        &json!({"role": "owner"}),
    )
    .await
    .assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
}

#[tokio::test]
async fn updating_a_room_tells_members_live_and_plain_members_may_not() {
    let app = spawn_chat_app().await;
    let [alice, bob] = users(&app, ["alice", "bob"]).await;
    let room = public_room(&app, &alice, "general").await;
    join(&app, &bob.access, &room).await;
    let mut bob_ws = WsClient::connect(&app, &bob.access).await;

    let reply = patch_json(
        &app,
        &format!("/rooms/{room}"),
        &alice.access,
        &json!({"name": "lounge", "topic": "anything goes"}),
    )
    .await;
    reply.assert_status(StatusCode::OK);
    assert_eq!(reply.body["name"], "lounge", "{}", reply.text);

    let updated = bob_ws.next_in_room("room.updated", &room).await;
    assert_eq!(updated["room"]["name"], "lounge", "{updated}");
    assert_eq!(updated["room"]["topic"], "anything goes", "{updated}");
    let fetched = app.get_authed(&format!("/rooms/{room}"), &bob.access).await;
    assert_eq!(fetched.body["name"], "lounge");
    patch_json(
        &app,
        &format!("/rooms/{room}"),
        &bob.access,
        &json!({"name": "mine now"}),
    )
    .await
    .assert_error(StatusCode::FORBIDDEN, "forbidden");
}

#[tokio::test]
async fn deleting_a_room_tells_members_live_and_then_it_is_gone() {
    let app = spawn_chat_app().await;
    let [alice, bob] = users(&app, ["alice", "bob"]).await;
    let room = public_room(&app, &alice, "general").await;
    join(&app, &bob.access, &room).await;
    let mut bob_ws = WsClient::connect(&app, &bob.access).await;

    app.delete_authed(&format!("/rooms/{room}"), &bob.access)
        .await
        .assert_error(StatusCode::FORBIDDEN, "forbidden");
    app.delete_authed(&format!("/rooms/{room}"), &alice.access)
        .await
        .assert_status(StatusCode::NO_CONTENT);

    let deleted = bob_ws.next_of_type("room.deleted").await;
    assert_eq!(deleted["room_id"], room.as_str(), "{deleted}");
    for token in [&alice.access, &bob.access] {
        app.get_authed(&format!("/rooms/{room}"), token)
            .await
            .assert_error(StatusCode::NOT_FOUND, "not_found");
        app.post_json_authed(
            &format!("/rooms/{room}/messages"),
            token,
            &json!({"body": "anyone?"}),
        )
        .await
        .assert_status(StatusCode::NOT_FOUND);
    }
    assert!(items(&app.get_authed("/rooms", &bob.access).await).is_empty());
}

#[tokio::test]
async fn opening_a_dm_twice_gives_the_same_room_and_both_hear_of_it() {
    let app = spawn_chat_app().await;
    let [alice, bob] = users(&app, ["alice", "bob"]).await;
    let mut alice_ws = WsClient::connect(&app, &alice.access).await;
    let mut bob_ws = WsClient::connect(&app, &bob.access).await;

    let first = app
        .post_json_authed("/dm", &alice.access, &json!({"user_id": uid(&bob)}))
        .await;
    assert!(first.status.is_success(), "{}", first.text);
    let room = text(&first.body, "id");
    assert_eq!(first.body["visibility"], "direct", "{}", first.text);

    let again = app
        .post_json_authed("/dm", &alice.access, &json!({"user_id": uid(&bob)}))
        .await;
    assert_eq!(again.body["id"], room.as_str(), "{}", again.text);
    let from_bob = app
        .post_json_authed("/dm", &bob.access, &json!({"user_id": uid(&alice)}))
        .await;
    assert_eq!(from_bob.body["id"], room.as_str(), "{}", from_bob.text);

    for ws in [&mut alice_ws, &mut bob_ws] {
        let mut seen = Vec::new();
        for _ in 0..2 {
            let joined = ws.next_in_room("member.joined", &room).await;
            seen.push(text(&joined, "user_id"));
        }
        seen.sort();
        let mut both = vec![uid(&alice), uid(&bob)];
        both.sort();
        assert_eq!(seen, both);
        ws.expect_none_matching(QUIET, "a second round of member.joined", |v| {
            v["type"] == "member.joined"
        })
        .await;
    }
    post_message(&app, &alice.access, &room, "psst").await;
    assert_eq!(
        bob_ws.next_in_room("message.created", &room).await["message"]["body"],
        "psst"
    );
}

#[tokio::test]
async fn a_kicked_member_stops_receiving_the_room_and_cannot_use_it() {
    let app = spawn_chat_app().await;
    let [alice, bob] = users(&app, ["alice", "bob"]).await;
    let room = public_room(&app, &alice, "general").await;
    join(&app, &bob.access, &room).await;
    let mut alice_ws = WsClient::connect(&app, &alice.access).await;
    let mut bob_ws = WsClient::connect(&app, &bob.access).await;

    app.post_authed(
        &format!("/rooms/{room}/members/{}/kick", uid(&bob)),
        &alice.access,
    )
    .await
    .assert_status(StatusCode::NO_CONTENT);
    bob_ws.next_in_room("member.left", &room).await;

    alice_ws.send_message(&room, "bob can't see this").await;
    alice_ws
        .send(json!({"type": "typing", "room_id": room}))
        .await;
    bob_ws
        .expect_none_matching(QUIET, "an event of the room bob was kicked from", |v| {
            v["room_id"] == room.as_str()
        })
        .await;
    bob_ws
        .expect_error(
            json!({"type": "message.send", "room_id": room, "body": "let me back"}),
            "not_member",
        )
        .await;
    bob_ws
        .expect_error(json!({"type": "typing", "room_id": room}), "not_member")
        .await;
}

#[tokio::test]
async fn a_dm_with_myself_or_nobody_is_refused_and_a_dm_takes_no_invites() {
    let app = spawn_chat_app().await;
    let [alice, bob, carol] = users(&app, ["alice", "bob", "carol"]).await;

    app.post_json_authed("/dm", &alice.access, &json!({"user_id": uid(&alice)}))
        .await
        .assert_error(StatusCode::FORBIDDEN, "forbidden");
    let nobody = uuid::Uuid::now_v7().to_string();
    app.post_json_authed("/dm", &alice.access, &json!({"user_id": nobody}))
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found");

    let dm = app
        .post_json_authed("/dm", &alice.access, &json!({"user_id": uid(&bob)}))
        .await;
    let room = text(&dm.body, "id");
    app.post_json_authed(
        &format!("/rooms/{room}/invites"),
        &alice.access,
        &json!({"user_id": uid(&carol)}),
    )
    .await
    .assert_error(StatusCode::FORBIDDEN, "forbidden");
    app.post_authed(&format!("/rooms/{room}/join"), &carol.access)
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn a_user_banned_after_being_invited_cannot_accept_the_invite() {
    let app = spawn_chat_app().await;
    let [alice, bob] = users(&app, ["alice", "bob"]).await;
    let room = text(
        &create_room(&app, &alice.access, "secret", "private").await,
        "id",
    );
    let invite = app
        .post_json_authed(
            &format!("/rooms/{room}/invites"),
            &alice.access,
            &json!({"user_id": uid(&bob)}),
        )
        .await;
    invite.assert_status(StatusCode::CREATED);
    app.post_authed(
        &format!("/rooms/{room}/members/{}/ban", uid(&bob)),
        &alice.access,
    )
    .await
    .assert_status(StatusCode::NO_CONTENT);

    let accepted = app
        .post_authed(
            &format!("/invites/{}/accept", text(&invite.body, "id")),
            &bob.access,
        )
        .await;

    accepted.assert_error(StatusCode::FORBIDDEN, "forbidden");
    app.get_authed(&format!("/rooms/{room}"), &bob.access)
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn a_topic_can_be_cleared_with_null_and_a_member_cannot_be_invited_again() {
    let app = spawn_chat_app().await;
    let [alice, bob] = users(&app, ["alice", "bob"]).await;
    let reply = app
        .post_json_authed(
            "/rooms",
            &alice.access,
            &json!({"name": "general", "topic": "old", "visibility": "public"}),
        )
        .await;
    let room = text(&reply.body, "id");
    join(&app, &bob.access, &room).await;

    let cleared = patch_json(
        &app,
        &format!("/rooms/{room}"),
        &alice.access,
        &json!({"topic": null}),
    )
    .await;
    cleared.assert_status(StatusCode::OK);
    assert_eq!(cleared.body["topic"], serde_json::Value::Null);
    assert_eq!(cleared.body["name"], "general", "omitted fields stay");

    app.post_json_authed(
        &format!("/rooms/{room}/invites"),
        &alice.access,
        &json!({"user_id": uid(&bob)}),
    )
    .await
    .assert_error(StatusCode::CONFLICT, "conflict");
}

#[tokio::test]
async fn a_room_created_while_my_socket_is_open_is_delivered_on_it() {
    let app = spawn_chat_app().await;
    let [alice, bob, carol] = users(&app, ["alice", "bob", "carol"]).await;
    let mut alice_ws = WsClient::connect(&app, &alice.access).await;

    let room = public_room(&app, &alice, "fresh").await;
    join(&app, &bob.access, &room).await;
    // Any member of a public room may invite.
    app.post_json_authed(
        &format!("/rooms/{room}/invites"),
        &bob.access,
        &json!({"user_id": uid(&carol)}),
    )
    .await
    .assert_status(StatusCode::CREATED);
    post_message(&app, &bob.access, &room, "first!").await;

    let created = alice_ws.next_in_room("message.created", &room).await;
    assert_eq!(created["message"]["body"], "first!");
}
