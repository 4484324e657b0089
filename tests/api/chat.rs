//! Shared vocabulary of the realtime tests: a server tuned for chatting,
//! REST calls for rooms and messages, and small readers of list bodies.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{Reply, TestApp, Tokens, spawn_app_with};

/// A server whose per-IP registration and per-user API limits do not get
/// in the way of tests that register many users or post many messages.
pub async fn spawn_chat_app() -> TestApp {
    spawn_chat_app_with(|_| {}).await
}

/// [`spawn_chat_app`] with more tuning.
pub async fn spawn_chat_app_with(tune: impl FnOnce(&mut parley::Settings)) -> TestApp {
    spawn_app_with(|s| {
        relax_limits(s);
        tune(s);
    })
    .await
}

/// Raises the REST limits that tests doing many calls would hit.
pub fn relax_limits(s: &mut parley::Settings) {
    s.register_per_minute = 1_000;
    s.api_per_minute = 100_000;
}

/// A user's id.
pub fn uid(tokens: &Tokens) -> String {
    tokens.user["id"]
        .as_str()
        .unwrap_or_else(|| panic!("user.id is a string: {}", tokens.user))
        .to_owned()
}

/// The `items` of a list body.
#[track_caller]
pub fn items(reply: &Reply) -> Vec<Value> {
    reply.assert_status(StatusCode::OK);
    assert!(
        reply.body.get("next_cursor").is_some(),
        "a list has next_cursor: {}",
        reply.text
    );
    reply.body["items"]
        .as_array()
        .unwrap_or_else(|| panic!("items is an array: {}", reply.text))
        .clone()
}

/// A string field.
#[track_caller]
pub fn text(value: &Value, key: &str) -> String {
    value[key]
        .as_str()
        .unwrap_or_else(|| panic!("`{key}` is a string in {value}"))
        .to_owned()
}

/// Sends a request with a bearer token and an optional JSON body.
pub async fn call(
    app: &TestApp,
    method: reqwest::Method,
    path: &str,
    token: &str,
    body: Option<&Value>,
) -> Reply {
    let mut request = app
        .client
        .request(method, app.api_url(path))
        .bearer_auth(token);
    if let Some(body) = body {
        request = request.json(body);
    }
    Reply::of(request.send().await.expect("request sent")).await
}

/// PUT without a body.
pub async fn put(app: &TestApp, path: &str, token: &str) -> Reply {
    call(app, reqwest::Method::PUT, path, token, None).await
}

/// PUT with a JSON body.
pub async fn put_json(app: &TestApp, path: &str, token: &str, body: &Value) -> Reply {
    call(app, reqwest::Method::PUT, path, token, Some(body)).await
}

/// PATCH with a JSON body.
pub async fn patch_json(app: &TestApp, path: &str, token: &str, body: &Value) -> Reply {
    call(app, reqwest::Method::PATCH, path, token, Some(body)).await
}

/// Creates a room (asserting 201) and returns it.
pub async fn create_room(app: &TestApp, token: &str, name: &str, visibility: &str) -> Value {
    let reply = app
        .post_json_authed(
            "/rooms",
            token,
            &json!({"name": name, "visibility": visibility}),
        )
        .await;
    reply.assert_status(StatusCode::CREATED);
    reply.body
}

/// Creates a public room and returns its id.
pub async fn public_room(app: &TestApp, owner: &Tokens, name: &str) -> String {
    text(&create_room(app, &owner.access, name, "public").await, "id")
}

/// Joins a public room (asserting 200).
pub async fn join(app: &TestApp, token: &str, room_id: &str) {
    app.post_authed(&format!("/rooms/{room_id}/join"), token)
        .await
        .assert_status(StatusCode::OK);
}

/// Posts a message over REST (asserting 201) and returns it.
pub async fn post_message(app: &TestApp, token: &str, room_id: &str, body: &str) -> Value {
    let reply = app
        .post_json_authed(
            &format!("/rooms/{room_id}/messages"),
            token,
            &json!({"body": body}),
        )
        .await;
    reply.assert_status(StatusCode::CREATED);
    reply.body
}

/// GET /rooms/{id}/messages with a query string (may be empty).
pub async fn history(app: &TestApp, token: &str, room_id: &str, query: &str) -> Vec<Value> {
    let reply = app
        .get_authed(&format!("/rooms/{room_id}/messages{query}"), token)
        .await;
    items(&reply)
}

/// The seqs of a list of messages, in list order.
pub fn seqs(messages: &[Value]) -> Vec<i64> {
    messages
        .iter()
        .map(|m| {
            m["seq"]
                .as_i64()
                .unwrap_or_else(|| panic!("seq is an integer: {m}"))
        })
        .collect()
}

/// My entry for `room_id` in GET /rooms.
pub async fn my_room(app: &TestApp, token: &str, room_id: &str) -> Value {
    let rooms = items(&app.get_authed("/rooms", token).await);
    rooms
        .into_iter()
        .find(|r| r["id"] == room_id)
        .unwrap_or_else(|| panic!("room {room_id} is among my rooms"))
}

/// Registers `names` (with the chat app's relaxed limits).
pub async fn register_all(app: &TestApp, names: &[&str]) -> Vec<Tokens> {
    let mut all = Vec::with_capacity(names.len());
    for name in names {
        all.push(app.register_user(name).await);
    }
    all
}

/// Asserts the contract's message object.
#[track_caller]
pub fn assert_message_shape(m: &Value) {
    for key in [
        "id",
        "room_id",
        "seq",
        "author_id",
        "body",
        "reply_to",
        "created_at",
        "edited_at",
        "deleted",
        "reactions",
    ] {
        assert!(m.get(key).is_some(), "message has `{key}`: {m}");
    }
    assert!(m["seq"].as_i64().is_some_and(|s| s >= 1), "seq ≥ 1: {m}");
    assert!(m["deleted"].is_boolean(), "deleted is a bool: {m}");
    assert!(m["reactions"].is_object(), "reactions is an object: {m}");
    let created = m["created_at"].as_str().expect("created_at is a string");
    chrono::DateTime::parse_from_rfc3339(created).expect("created_at is RFC 3339");
}

/// Registers `N` users, in order.
pub async fn users<const N: usize>(app: &TestApp, names: [&str; N]) -> [Tokens; N] {
    register_all(app, &names)
        .await
        .try_into()
        .unwrap_or_else(|v: Vec<Tokens>| panic!("{N} users, got {}", v.len()))
}
