//! Profiles, the user search and settings that take effect: `PUT
//! /users/profile` and `user.updated`, `GET /users/search`, `GET`/`PUT
//! /users/settings` with `dm_policy`, `show_presence` and `read_receipts`.

use std::time::Duration;

use parley_actors::domain::{UserId, UserStatus};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::chat::{items, join, post_message, public_room, put_json, spawn_chat_app, uid, users};
use crate::helpers::{Reply, TestApp, Tokens};
use crate::ws_client::{WAIT, WsClient};

const QUIET: Duration = Duration::from_millis(600);

async fn put_profile(app: &TestApp, who: &Tokens, body: &Value) -> Reply {
    put_json(app, "/users/profile", &who.access, body).await
}

async fn put_settings(app: &TestApp, who: &Tokens, body: &Value) -> Reply {
    put_json(app, "/users/settings", &who.access, body).await
}

/// The field names a 422 reports.
#[track_caller]
fn failed_fields(reply: &Reply) -> Vec<String> {
    let error = reply.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    let mut names: Vec<String> = error["details"]["fields"]
        .as_object()
        .unwrap_or_else(|| panic!("details.fields is an object: {}", reply.text))
        .keys()
        .cloned()
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn a_profile_change_is_trimmed_stored_audited_and_reaches_members_of_shared_rooms_live() {
    let app = spawn_chat_app().await;
    let [alice, bob, carol] = users(&app, ["alice", "bob", "carol"]).await;
    let room = public_room(&app, &alice, "lobby").await;
    join(&app, &bob.access, &room).await;
    let mut bob_ws = WsClient::connect(&app, &bob.access).await;
    let mut carol_ws = WsClient::connect(&app, &carol.access).await;
    let mut alice_other_device = WsClient::connect(&app, &alice.access).await;

    let reply = put_profile(
        &app,
        &alice,
        &json!({"display_name": "  Alice A.  ", "bio": "likes\nqueues"}),
    )
    .await;
    reply.assert_status(StatusCode::OK);
    assert_eq!(reply.body["display_name"], "Alice A.");
    assert_eq!(reply.body["bio"], "likes\nqueues");
    assert!(
        reply.body.get("email").is_some(),
        "my own profile: {}",
        reply.text
    );

    for ws in [&mut bob_ws, &mut alice_other_device] {
        let event = ws.next_of_type("user.updated").await;
        assert_eq!(event["user"]["id"], uid(&alice).as_str());
        assert_eq!(event["user"]["display_name"], "Alice A.");
        assert_eq!(event["user"]["bio"], "likes\nqueues");
        assert!(event["user"].get("email").is_none(), "public only: {event}");
    }
    carol_ws
        .expect_no_frame_of_type("user.updated", QUIET)
        .await;

    // Omitted fields stay; null clears.
    let reply = put_profile(&app, &alice, &json!({"bio": null})).await;
    reply.assert_status(StatusCode::OK);
    assert_eq!(reply.body["display_name"], "Alice A.");
    assert!(reply.body["bio"].is_null());
    let seen = app
        .get_authed(&format!("/users/{}", uid(&alice)), &bob.access)
        .await;
    seen.assert_status(StatusCode::OK);
    assert_eq!(seen.body["display_name"], "Alice A.");
    assert!(seen.body["bio"].is_null());

    let audit = app
        .store
        .list_audit_entries(Some("profile_update"), 10)
        .await
        .expect("audit log");
    assert_eq!(audit.len(), 2);
    assert_eq!(audit[0].actor_id.map(|u| u.to_string()), Some(uid(&alice)));
    assert_eq!(audit[0].details["fields"], json!(["bio"]));
}

#[tokio::test]
async fn bad_profile_input_is_refused_naming_each_field_and_changes_nothing() {
    let app = spawn_chat_app().await;
    let [alice] = users(&app, ["alice"]).await;
    put_profile(&app, &alice, &json!({"display_name": "Alice"}))
        .await
        .assert_status(StatusCode::OK);

    let too_long = put_profile(
        &app,
        &alice,
        &json!({"display_name": "x".repeat(65), "bio": "y".repeat(501)}),
    )
    .await;
    assert_eq!(failed_fields(&too_long), ["bio", "display_name"]);
    let control = put_profile(&app, &alice, &json!({"display_name": "Al\u{7}ice"})).await;
    assert_eq!(failed_fields(&control), ["display_name"]);
    let newline = put_profile(&app, &alice, &json!({"display_name": "Al\nice"})).await;
    assert_eq!(failed_fields(&newline), ["display_name"]);
    let unknown = put_profile(&app, &alice, &json!({"email": "x@example.com"})).await;
    assert_eq!(failed_fields(&unknown), ["email"]);
    let wrong_type = put_profile(&app, &alice, &json!({"bio": 5})).await;
    assert_eq!(failed_fields(&wrong_type), ["bio"]);

    // Exactly at the limits is fine (characters, not bytes).
    let at_limit = put_profile(
        &app,
        &alice,
        &json!({"display_name": "é".repeat(64), "bio": "ü".repeat(500)}),
    )
    .await;
    at_limit.assert_status(StatusCode::OK);
    let me = app.get_authed("/users/profile", &alice.access).await;
    assert_eq!(me.body["display_name"], "é".repeat(64));
}

/// The usernames in a search page.
fn names(page: &[Value]) -> Vec<String> {
    page.iter()
        .map(|u| u["username"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test]
async fn search_matches_username_and_display_name_prefixes_page_by_page() {
    let app = spawn_chat_app().await;
    let [alice, sam_a, sam_b, sam_c, bob, _ann] =
        users(&app, ["alice", "sam_a", "sam_b", "sam_c", "bob", "ann"]).await;
    put_profile(&app, &bob, &json!({"display_name": "Samwise Gamgee"}))
        .await
        .assert_status(StatusCode::OK);

    let first = app
        .get_authed("/users/search?q=SAM&limit=2", &alice.access)
        .await;
    let page = items(&first);
    assert_eq!(names(&page), ["bob", "sam_a"]);
    assert!(page[0].get("email").is_none(), "public profiles only");
    let cursor = first.body["next_cursor"].as_str().expect("a next page");
    let second = app
        .get_authed(
            &format!("/users/search?q=sam&limit=2&cursor={cursor}"),
            &alice.access,
        )
        .await;
    assert_eq!(names(&items(&second)), ["sam_b", "sam_c"]);
    assert!(second.body["next_cursor"].is_null());

    // `_` is a character, not a wildcard; the searcher is not listed.
    let underscore = app.get_authed("/users/search?q=sam_", &alice.access).await;
    assert_eq!(names(&items(&underscore)), ["sam_a", "sam_b", "sam_c"]);
    let none = app.get_authed("/users/search?q=s_m", &alice.access).await;
    assert!(items(&none).is_empty());
    let me = app.get_authed("/users/search?q=ali", &alice.access).await;
    assert!(items(&me).is_empty());
    let _ = (sam_a, sam_b, sam_c);

    for bad in ["", "?q=", &format!("?q={}", "a".repeat(65))] {
        let reply = app
            .get_authed(&format!("/users/search{bad}"), &alice.access)
            .await;
        assert_eq!(failed_fields(&reply), ["q"], "{bad}");
    }
}

#[tokio::test]
async fn search_leaves_out_users_blocked_either_way_and_suspended_or_banned_users() {
    let app = spawn_chat_app().await;
    let [
        alice,
        pat_blocked,
        pat_blocker,
        pat_suspended,
        pat_banned,
        pat_ok,
    ] = users(&app, ["alice", "pat1", "pat2", "pat3", "pat4", "pat5"]).await;
    app.post_json_authed(
        "/users/block",
        &alice.access,
        &json!({"user_id": uid(&pat_blocked)}),
    )
    .await
    .assert_status(StatusCode::NO_CONTENT);
    app.post_json_authed(
        "/users/block",
        &pat_blocker.access,
        &json!({"user_id": uid(&alice)}),
    )
    .await
    .assert_status(StatusCode::NO_CONTENT);
    // Setup only: suspend and ban through the store.
    for (who, status) in [
        (&pat_suspended, UserStatus::Suspended),
        (&pat_banned, UserStatus::Banned),
    ] {
        let id: UserId = uid(who).parse().expect("a user id");
        app.store
            .update_user_role_status(id, None, Some(status), chrono::Utc::now())
            .await
            .expect("status set");
    }
    let found = app.get_authed("/users/search?q=pat", &alice.access).await;
    assert_eq!(names(&items(&found)), ["pat5"]);
    let _ = pat_ok;

    // The blocked user does not find the blocker either.
    let found = app
        .get_authed("/users/search?q=ali", &pat_blocked.access)
        .await;
    assert!(items(&found).is_empty());
}

#[tokio::test]
async fn settings_have_defaults_and_a_put_merges_only_the_given_fields() {
    let app = spawn_chat_app().await;
    let [alice] = users(&app, ["alice"]).await;
    let defaults = app.get_authed("/users/settings", &alice.access).await;
    defaults.assert_status(StatusCode::OK);
    assert_eq!(
        defaults.body,
        json!({
            "theme": "system", "locale": "en", "timezone": "UTC",
            "notifications": {"direct_messages": true, "mentions": true, "room_messages": "mentions"},
            "privacy": {"dm_policy": "everyone", "show_presence": true, "read_receipts": true}
        })
    );

    let reply = put_settings(
        &app,
        &alice,
        &json!({"theme": "dark", "notifications": {"mentions": false}}),
    )
    .await;
    reply.assert_status(StatusCode::OK);
    let reply = put_settings(
        &app,
        &alice,
        &json!({"timezone": "Europe/Berlin", "privacy": {"read_receipts": false}}),
    )
    .await;
    reply.assert_status(StatusCode::OK);
    let now = app.get_authed("/users/settings", &alice.access).await;
    assert_eq!(now.body, reply.body);
    assert_eq!(now.body["theme"], "dark");
    assert_eq!(now.body["timezone"], "Europe/Berlin");
    assert_eq!(now.body["locale"], "en");
    assert_eq!(
        now.body["notifications"],
        json!({"direct_messages": true, "mentions": false, "room_messages": "mentions"})
    );
    assert_eq!(
        now.body["privacy"],
        json!({"dm_policy": "everyone", "show_presence": true, "read_receipts": false})
    );
    let audit = app
        .store
        .list_audit_entries(Some("settings_update"), 10)
        .await
        .expect("audit log");
    assert_eq!(audit.len(), 2);
    assert_eq!(audit[0].details["changed"], json!(["privacy", "timezone"]));
}

#[tokio::test]
async fn unknown_settings_keys_and_bad_values_are_422_naming_the_field() {
    let app = spawn_chat_app().await;
    let [alice] = users(&app, ["alice"]).await;
    for (body, field) in [
        (
            json!({"privacy": {"dm_policy": "friends"}}),
            "privacy.dm_policy",
        ),
        (json!({"privacy": {"colour": "red"}}), "privacy.colour"),
        (json!({"font": "serif"}), "font"),
        (json!({"theme": "neon"}), "theme"),
        (
            json!({"notifications": {"room_messages": "some"}}),
            "notifications.room_messages",
        ),
        (
            json!({"notifications": {"mentions": "yes"}}),
            "notifications.mentions",
        ),
        (json!({"privacy": "private"}), "privacy"),
        (json!({"locale": "english"}), "locale"),
        (json!({"timezone": "../etc/passwd"}), "timezone"),
    ] {
        let reply = put_settings(&app, &alice, &body).await;
        assert_eq!(failed_fields(&reply), [field], "{body}");
    }
    let bad_enum = put_settings(&app, &alice, &json!({"privacy": {"dm_policy": "friends"}})).await;
    let error = bad_enum.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert_eq!(
        error["details"]["fields"]["privacy.dm_policy"]["code"],
        "invalid_value"
    );
    let unchanged = app.get_authed("/users/settings", &alice.access).await;
    assert_eq!(unchanged.body["privacy"]["dm_policy"], "everyone");
    assert_eq!(unchanged.body["theme"], "system");
}

async fn dm(app: &TestApp, from: &Tokens, to: &Tokens) -> Reply {
    app.post_json_authed("/dm", &from.access, &json!({"user_id": uid(to)}))
        .await
}

#[tokio::test]
async fn dm_policy_decides_who_may_open_a_direct_room() {
    let app = spawn_chat_app().await;
    let [alice, roommate, stranger] = users(&app, ["alice", "roommate", "stranger"]).await;
    let room = public_room(&app, &alice, "club").await;
    join(&app, &roommate.access, &room).await;

    put_settings(&app, &alice, &json!({"privacy": {"dm_policy": "nobody"}}))
        .await
        .assert_status(StatusCode::OK);
    dm(&app, &roommate, &alice)
        .await
        .assert_error(StatusCode::FORBIDDEN, "forbidden");
    dm(&app, &stranger, &alice)
        .await
        .assert_error(StatusCode::FORBIDDEN, "forbidden");

    put_settings(
        &app,
        &alice,
        &json!({"privacy": {"dm_policy": "shared_rooms"}}),
    )
    .await
    .assert_status(StatusCode::OK);
    dm(&app, &stranger, &alice)
        .await
        .assert_error(StatusCode::FORBIDDEN, "forbidden");
    let opened = dm(&app, &roommate, &alice).await;
    assert!(opened.status.is_success(), "{}", opened.text);

    put_settings(&app, &alice, &json!({"privacy": {"dm_policy": "everyone"}}))
        .await
        .assert_status(StatusCode::OK);
    let opened = dm(&app, &stranger, &alice).await;
    assert!(opened.status.is_success(), "{}", opened.text);
    // Alice's own policy does not stop her from writing to others.
    put_settings(&app, &alice, &json!({"privacy": {"dm_policy": "nobody"}}))
        .await
        .assert_status(StatusCode::OK);
    let opened = dm(&app, &alice, &stranger).await;
    assert!(opened.status.is_success(), "{}", opened.text);
}

/// The next `presence` frame about `user`.
async fn presence_of(ws: &mut WsClient, user: &str) -> Value {
    ws.try_next_matching(WAIT, |v| v["type"] == "presence" && v["user_id"] == user)
        .await
        .unwrap_or_else(|| panic!("a presence frame about {user}; unread: {:?}", ws.backlog()))
}

fn presence_in(reply: &Reply) -> String {
    reply.assert_status(StatusCode::OK);
    reply.body["presence"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn show_presence_off_makes_me_look_offline_to_others_but_not_to_myself() {
    let app = spawn_chat_app().await;
    let [alice, bob] = users(&app, ["alice", "bob"]).await;
    let alice_id = uid(&alice);
    let room = public_room(&app, &alice, "room").await;
    join(&app, &bob.access, &room).await;
    let mut bob_ws = WsClient::connect(&app, &bob.access).await;

    put_settings(&app, &alice, &json!({"privacy": {"show_presence": false}}))
        .await
        .assert_status(StatusCode::OK);
    let mut alice_ws = WsClient::connect(&app, &alice.access).await;
    let own = presence_of(&mut alice_ws, &alice_id).await;
    assert_eq!(own["status"], "online", "my own device sees my real status");
    bob_ws
        .expect_none_matching(QUIET, "hidden presence", |v| {
            v["type"] == "presence" && v["user_id"] == alice_id.as_str()
        })
        .await;
    let profile_path = format!("/users/{alice_id}");
    assert_eq!(
        presence_in(&app.get_authed(&profile_path, &bob.access).await),
        "offline"
    );
    assert_eq!(
        presence_in(&app.get_authed(&profile_path, &alice.access).await),
        "online"
    );
    let members = app
        .get_authed(&format!("/rooms/{room}/members"), &bob.access)
        .await;
    let listed = items(&members)
        .into_iter()
        .find(|m| m["user_id"] == alice_id.as_str())
        .expect("alice is listed");
    assert_eq!(listed["presence"], "offline");

    // Turned back on while connected: others see her at once, and off again.
    put_settings(&app, &alice, &json!({"privacy": {"show_presence": true}}))
        .await
        .assert_status(StatusCode::OK);
    assert_eq!(
        presence_of(&mut bob_ws, &alice_id).await["status"],
        "online"
    );
    put_settings(&app, &alice, &json!({"privacy": {"show_presence": false}}))
        .await
        .assert_status(StatusCode::OK);
    let hidden = presence_of(&mut bob_ws, &alice_id).await;
    assert_eq!(hidden["status"], "offline");
    assert!(
        hidden["last_seen_at"].is_null(),
        "no last-seen time: {hidden}"
    );
}

#[tokio::test]
async fn read_receipts_off_keeps_my_read_markers_to_my_own_devices() {
    let app = spawn_chat_app().await;
    let [alice, bob] = users(&app, ["alice", "bob"]).await;
    let alice_id = uid(&alice);
    let room = public_room(&app, &bob, "room").await;
    join(&app, &alice.access, &room).await;
    post_message(&app, &bob.access, &room, "one").await;
    post_message(&app, &bob.access, &room, "two").await;
    let mut bob_ws = WsClient::connect(&app, &bob.access).await;
    let mut phone = WsClient::connect(&app, &alice.access).await;
    let mut laptop = WsClient::connect(&app, &alice.access).await;
    let is_alices_read = |v: &Value| v["type"] == "read" && v["user_id"] == alice_id.as_str();

    // Receipts on (the default): Bob gets one.
    phone
        .ack(json!({"type": "read", "room_id": room, "seq": 1}))
        .await;
    bob_ws
        .try_next_matching(WAIT, is_alices_read)
        .await
        .expect("a receipt while receipts are on");
    laptop
        .try_next_matching(WAIT, is_alices_read)
        .await
        .expect("my other device hears of it");

    put_settings(&app, &alice, &json!({"privacy": {"read_receipts": false}}))
        .await
        .assert_status(StatusCode::OK);
    phone
        .ack(json!({"type": "read", "room_id": room, "seq": 2}))
        .await;
    let mine = laptop
        .try_next_matching(WAIT, is_alices_read)
        .await
        .expect("my other device still hears of my read marker");
    assert_eq!(mine["seq"], 2);
    app.post_json_authed(
        &format!("/rooms/{room}/read"),
        &alice.access,
        &json!({"seq": 2}),
    )
    .await
    .assert_status(StatusCode::OK);
    bob_ws
        .expect_none_matching(QUIET, "a read receipt with receipts off", is_alices_read)
        .await;
}

#[tokio::test]
async fn a_report_is_stored_audited_and_validated() {
    let app = spawn_chat_app().await;
    let [alice, bob, carol] = users(&app, ["alice", "bob", "carol"]).await;
    let room = public_room(&app, &bob, "bobs").await;
    join(&app, &alice.access, &room).await;
    let by_bob = post_message(&app, &bob.access, &room, "buy cheap watches").await;
    let by_alice = post_message(&app, &alice.access, &room, "no thanks").await;
    let private = crate::chat::create_room(&app, &bob.access, "secret", "private").await;
    let private_id = private["id"].as_str().expect("room id").to_owned();
    let hidden = post_message(&app, &bob.access, &private_id, "hidden").await;

    let reply = app
        .post_json_authed(
            "/users/report",
            &alice.access,
            &json!({"user_id": uid(&bob), "reason": "spam",
                    "message_id": by_bob["id"], "details": "  ads  "}),
        )
        .await;
    reply.assert_status(StatusCode::CREATED);
    assert!(reply.header("x-ratelimit-limit").is_some());
    let id = reply.body["id"].as_str().expect("an id").to_owned();
    let stored = app.store.list_reports(10).await.expect("reports");
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].id.to_string(), id);
    assert_eq!(stored[0].reporter_id.to_string(), uid(&alice));
    assert_eq!(stored[0].reported_id.to_string(), uid(&bob));
    assert_eq!(stored[0].reason.as_str(), "spam");
    assert_eq!(stored[0].details.as_deref(), Some("ads"));
    assert_eq!(stored[0].status, "open");
    let audit = app
        .store
        .list_audit_entries(Some("report"), 10)
        .await
        .expect("audit");
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].details["report_id"], id.as_str());

    let report = |body: Value| {
        let app = &app;
        let token = alice.access.clone();
        async move { app.post_json_authed("/users/report", &token, &body).await }
    };
    let myself = report(json!({"user_id": uid(&alice), "reason": "spam"})).await;
    assert_eq!(failed_fields(&myself), ["user_id"]);
    let bad_reason = report(json!({"user_id": uid(&bob), "reason": "rude"})).await;
    assert_eq!(failed_fields(&bad_reason), ["reason"]);
    let long =
        report(json!({"user_id": uid(&bob), "reason": "other", "details": "x".repeat(1001)})).await;
    assert_eq!(failed_fields(&long), ["details"]);
    let not_bobs =
        report(json!({"user_id": uid(&bob), "reason": "abuse", "message_id": by_alice["id"]}))
            .await;
    assert_eq!(failed_fields(&not_bobs), ["message_id"]);
    // A message in a room Alice is not in is as good as missing.
    report(json!({"user_id": uid(&bob), "reason": "abuse", "message_id": hidden["id"]}))
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found");
    report(json!({"user_id": uuid_like(), "reason": "abuse"}))
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found");
    assert_eq!(app.store.list_reports(10).await.expect("reports").len(), 1);
    let _ = carol;
}

fn uuid_like() -> String {
    UserId::new().to_string()
}

#[tokio::test]
async fn reports_are_rate_limited_per_reporter() {
    let app = spawn_chat_app().await;
    let [alice, bob, carol] = users(&app, ["alice", "bob", "carol"]).await;
    let report = |who: &Tokens| {
        let (app, token, target) = (&app, who.access.clone(), uid(&bob));
        async move {
            app.post_json_authed(
                "/users/report",
                &token,
                &json!({"user_id": target, "reason": "spam"}),
            )
            .await
        }
    };
    // The allowance is 5 a minute, all usable at once.
    for _ in 0..5 {
        report(&alice).await.assert_status(StatusCode::CREATED);
    }
    let refused = report(&alice).await;
    refused.assert_error(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    assert!(refused.header("retry-after").is_some());
    assert_eq!(refused.header("x-ratelimit-limit"), Some("5"));
    // Another reporter has an allowance of their own.
    report(&carol).await.assert_status(StatusCode::CREATED);
}
