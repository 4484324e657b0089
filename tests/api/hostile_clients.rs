//! What a hostile or careless client sends: floods past the event rate,
//! invalid UTF-8, oversized bodies, CR line endings, NUL characters and
//! CORS preflights from foreign origins. Each gets the documented answer.

use std::collections::HashSet;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::chat::{call, history, public_room, spawn_chat_app, users};
use crate::helpers::{Reply, spawn_app_with};
use crate::ws_client::WsClient;

#[tokio::test]
async fn a_flood_past_the_event_rate_answers_every_stored_send_before_the_1008() {
    // Default limits: 10 events a second, a burst of 30, 20 strikes.
    let app = spawn_chat_app().await;
    let [alice] = users(&app, ["alice"]).await;
    let room = public_room(&app, &alice, "general").await;
    let mut ws = WsClient::connect(&app, &alice.access).await;

    let frames: Vec<String> = (0..60)
        .map(|i| {
            json!({"type": "message.send", "room_id": room, "body": format!("m{i}"), "ref": format!("m{i}")})
                .to_string()
        })
        .collect();
    ws.send_all_at_once(&frames).await;

    let mut acked = HashSet::new();
    let mut refused = HashSet::new();
    let code = loop {
        match ws.frame_or_close().await {
            Ok(frame) => {
                let reference = frame["ref"].as_str().unwrap_or_default().to_owned();
                match frame["type"].as_str() {
                    Some("ack") => assert!(acked.insert(reference), "one answer each"),
                    Some("error") => {
                        assert_eq!(frame["code"], "rate_limited", "{frame}");
                        assert!(refused.insert(reference), "one answer each");
                    }
                    _ => {}
                }
            }
            Err(code) => break code,
        }
    };

    eprintln!(
        "flood: acked {}, refused {}, close {code:?}",
        acked.len(),
        refused.len()
    );
    assert_eq!(code, Some(1008), "persistent flooding closes with 1008");
    assert!(
        !refused.is_empty(),
        "the promised rate_limited errors arrive before the close"
    );
    let stored: HashSet<String> = history(&app, &alice.access, &room, "?limit=100")
        .await
        .iter()
        .map(|m| m["body"].as_str().unwrap_or_default().to_owned())
        .collect();
    let unanswered: Vec<&String> = stored.difference(&acked).collect();
    assert!(
        unanswered.is_empty(),
        "every stored send was acknowledged; not: {unanswered:?} (acked {}, refused {}, stored {})",
        acked.len(),
        refused.len(),
        stored.len()
    );
    assert!(
        acked.is_subset(&stored),
        "every ack is for a stored message"
    );
    assert!(
        acked.len() >= 30,
        "the burst of 30 was taken in and answered: {}",
        acked.len()
    );
    assert!(
        acked.is_disjoint(&refused),
        "no send is both acked and refused"
    );
}

#[tokio::test]
async fn a_text_frame_with_invalid_utf8_is_closed_with_1007() {
    let app = spawn_chat_app().await;
    let alice = app.register_user("alice").await;
    let mut ws = WsClient::connect(&app, &alice.access).await;

    ws.send_raw_text(b"{\"type\":\"ping\",\"ref\":\"\xff\xfe\"}".to_vec())
        .await;

    assert_eq!(
        ws.close_code_within(Duration::from_secs(5)).await,
        Some(1007)
    );
}

/// The status line and headers of the answer to `request`, read from a
/// raw connection, and whether the server closed the connection after it.
async fn raw_exchange(addr: std::net::SocketAddr, request: &[u8]) -> (String, bool) {
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .expect("TCP connect");
    stream.write_all(request).await.expect("request written");
    let mut received = Vec::new();
    let mut buf = [0_u8; 4096];
    let closed = loop {
        match tokio::time::timeout(Duration::from_secs(2), stream.read(&mut buf)).await {
            Ok(Ok(0)) => break true,
            Ok(Ok(n)) => received.extend_from_slice(&buf[..n]),
            Ok(Err(_)) => break true,
            Err(_) => break false,
        }
    };
    let text = String::from_utf8_lossy(&received).into_owned();
    let head = text.split("\r\n\r\n").next().unwrap_or_default().to_owned();
    (head, closed)
}

#[tokio::test]
async fn a_413_says_connection_close_before_the_server_drops_the_connection() {
    let app = spawn_app_with(|s| s.body_limit_bytes = 1024).await;
    let body = format!("{{\"padding\":\"{}\"}}", "x".repeat(4096));
    let request = format!(
        "POST /api/v1/auth/register HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        app.addr,
        body.len()
    );

    let (head, closed) = raw_exchange(app.addr, request.as_bytes()).await;

    assert!(head.starts_with("HTTP/1.1 413"), "{head}");
    let says_close = head
        .lines()
        .any(|l| l.eq_ignore_ascii_case("connection: close"));
    assert!(
        says_close || !closed,
        "a 413 either says `Connection: close` or keeps the connection: {head}"
    );
    assert!(says_close, "{head}");
}

#[tokio::test]
async fn crlf_and_lone_cr_in_a_body_become_lf() {
    let app = spawn_chat_app().await;
    let [alice] = users(&app, ["alice"]).await;
    let room = public_room(&app, &alice, "general").await;
    let mut ws = WsClient::connect(&app, &alice.access).await;

    let rest = call(
        &app,
        Method::POST,
        &format!("/rooms/{room}/messages"),
        &alice.access,
        Some(&json!({"body": "line one\r\nline two\rline three"})),
    )
    .await;
    rest.assert_status(StatusCode::CREATED);
    let ack = ws
        .ack(json!({"type": "message.send", "room_id": room, "body": "a\r\nb\r\n\r\nc"}))
        .await;

    assert_eq!(rest.body["body"], "line one\nline two\nline three");
    assert_eq!(ack["message"]["body"], "a\nb\n\nc");
    // Other control characters are still refused.
    let bell = call(
        &app,
        Method::POST,
        &format!("/rooms/{room}/messages"),
        &alice.access,
        Some(&json!({"body": "ding\u{7}"})),
    )
    .await;
    assert_eq!(bell.status, StatusCode::UNPROCESSABLE_ENTITY);
}

/// The field a 422 names.
fn field_of(reply: &Reply) -> Value {
    assert_eq!(
        reply.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{:?}",
        reply.body
    );
    let fields = reply.body["error"]["details"]["fields"]
        .as_object()
        .unwrap_or_else(|| panic!("a 422 naming its field: {:?}", reply.body));
    Value::from(fields.keys().cloned().collect::<Vec<_>>().join(","))
}

#[tokio::test]
async fn nul_characters_are_refused_with_a_422_naming_the_field() {
    let app = spawn_chat_app().await;
    let [alice] = users(&app, ["alice"]).await;
    let room = public_room(&app, &alice, "general").await;

    let search = app
        .get_authed("/search/messages?q=%00", &alice.access)
        .await;
    let search_inner = app
        .get_authed("/search/messages?q=hello%00world", &alice.access)
        .await;
    let public = app.get_authed("/rooms/public?q=a%00", &alice.access).await;
    let client_id = call(
        &app,
        Method::POST,
        &format!("/rooms/{room}/messages"),
        &alice.access,
        Some(&json!({"body": "hi", "client_id": "a\u{0}b"})),
    )
    .await;
    let login = app
        .client
        .post(app.api_url("/auth/login"))
        .json(&json!({"login": "ali\u{0}ce", "password": "x"}))
        .send()
        .await
        .expect("request sent");
    let login = Reply::of(login).await;

    assert_eq!(field_of(&search), "q");
    assert_eq!(field_of(&search_inner), "q");
    assert_eq!(field_of(&public), "q");
    assert_eq!(field_of(&client_id), "client_id");
    assert_eq!(field_of(&login), "login");
    // Over the socket too.
    let mut ws = WsClient::connect(&app, &alice.access).await;
    let answer = ws
        .request(
            json!({"type": "message.send", "room_id": room, "body": "hi", "client_id": "x\u{0}"}),
        )
        .await;
    assert_eq!(answer["type"], "error", "{answer}");
    assert_eq!(ws.request(json!({"type": "ping"})).await["type"], "pong");
    assert!(
        history(&app, &alice.access, &room, "").await.is_empty(),
        "nothing was stored"
    );
}

#[tokio::test]
async fn a_preflight_from_an_unlisted_origin_gets_nothing_cors_related() {
    let app =
        spawn_app_with(|s| s.cors_allowed_origins = "https://chat.example.com".to_owned()).await;

    let preflight = app
        .client
        .request(Method::OPTIONS, app.api_url("/auth/login"))
        .header("origin", "https://evil.example.net")
        .header("access-control-request-method", "POST")
        .header("access-control-request-headers", "authorization")
        .send()
        .await
        .expect("request sent");

    let cors: Vec<String> = preflight
        .headers()
        .keys()
        .map(|k| k.as_str().to_owned())
        .filter(|k| k.starts_with("access-control-"))
        .collect();
    assert!(
        cors.is_empty(),
        "CORS headers for a foreign origin: {cors:?}"
    );
}

#[tokio::test]
async fn search_takes_any_text_up_to_200_characters_as_plain_words() {
    let app = spawn_chat_app().await;
    let [alice] = users(&app, ["alice"]).await;
    let room = public_room(&app, &alice, "general").await;
    crate::chat::post_message(&app, &alice.access, &room, "hello world").await;

    // Query syntax of either database's full-text search is taken as text.
    for q in [
        "\"",
        "\"hello",
        "hello*",
        "NEAR(hello world)",
        "hello AND",
        "OR",
        "-hello",
        "hello:*",
        "^hello",
        "(hello",
        "body:hello",
        "hello | world",
        "!hello",
        "'",
        "héllo wörld 😀",
        "*",
        "{hello}",
        "hello & !world",
        "\\",
    ] {
        let reply = app
            .client
            .get(
                reqwest::Url::parse_with_params(&app.api_url("/search/messages"), [("q", q)])
                    .expect("a URL"),
            )
            .bearer_auth(&alice.access)
            .send()
            .await
            .expect("request sent");
        assert_eq!(reply.status(), StatusCode::OK, "q = {q:?}");
    }
    let found = app
        .get_authed("/search/messages?q=hello", &alice.access)
        .await;
    assert_eq!(crate::chat::items(&found).len(), 1);

    let at_limit = "a".repeat(200);
    let over = "a".repeat(201);
    let ok = app
        .get_authed(&format!("/search/messages?q={at_limit}"), &alice.access)
        .await;
    let too_long = app
        .get_authed(&format!("/search/messages?q={over}"), &alice.access)
        .await;
    ok.assert_status(StatusCode::OK);
    assert_eq!(field_of(&too_long), "q");
}

#[tokio::test]
async fn history_pages_hold_at_most_200_messages() {
    let app = spawn_chat_app().await;
    let [alice] = users(&app, ["alice"]).await;
    let room = public_room(&app, &alice, "general").await;

    let ok = app
        .get_authed(&format!("/rooms/{room}/messages?limit=200"), &alice.access)
        .await;
    let over = app
        .get_authed(&format!("/rooms/{room}/messages?limit=201"), &alice.access)
        .await;

    ok.assert_status(StatusCode::OK);
    assert_eq!(field_of(&over), "limit");
}

#[tokio::test]
async fn a_message_takes_distinct_reactions_up_to_the_limit_and_more_of_each() {
    let app = crate::chat::spawn_chat_app_with(|s| s.message_max_reactions = 2).await;
    let [alice, bob] = users(&app, ["alice", "bob"]).await;
    let room = public_room(&app, &alice, "general").await;
    crate::chat::join(&app, &bob.access, &room).await;
    let message = crate::chat::post_message(&app, &alice.access, &room, "react").await;
    let id = message["id"].as_str().expect("an id");
    let react = |token: &str, emoji: &str| {
        let path = format!("/rooms/{room}/messages/{id}/reactions/{emoji}");
        let token = token.to_owned();
        let app = &app;
        async move { crate::chat::put(app, &path, &token).await }
    };

    react(&alice.access, "%F0%9F%91%8D")
        .await
        .assert_status(StatusCode::NO_CONTENT); // 👍
    react(&alice.access, "%F0%9F%8E%89")
        .await
        .assert_status(StatusCode::NO_CONTENT); // 🎉
    let third = react(&alice.access, "%F0%9F%98%80").await; // 😀
    let same = react(&bob.access, "%F0%9F%91%8D").await;
    let again = react(&alice.access, "%F0%9F%8E%89").await;

    third.assert_error(StatusCode::CONFLICT, "conflict");
    same.assert_status(StatusCode::NO_CONTENT);
    again.assert_status(StatusCode::NO_CONTENT);
    let stored = history(&app, &alice.access, &room, "").await;
    assert_eq!(stored[0]["reactions"], json!({"👍": 2, "🎉": 1}));
    // Once one is gone, another may take its place.
    let path = format!("/rooms/{room}/messages/{id}/reactions/%F0%9F%8E%89");
    call(&app, Method::DELETE, &path, &alice.access, None)
        .await
        .assert_status(StatusCode::NO_CONTENT);
    react(&bob.access, "%F0%9F%98%80")
        .await
        .assert_status(StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn a_room_takes_members_up_to_the_limit() {
    let app = crate::chat::spawn_chat_app_with(|s| s.room_max_members = 2).await;
    let [alice, bob, carol] = users(&app, ["alice", "bob", "carol"]).await;
    let room = public_room(&app, &alice, "general").await;

    crate::chat::join(&app, &bob.access, &room).await;
    let full = app
        .post_authed(&format!("/rooms/{room}/join"), &carol.access)
        .await;

    full.assert_error(StatusCode::CONFLICT, "conflict");
    // Once someone leaves, there is room again.
    let left = app
        .post_authed(&format!("/rooms/{room}/leave"), &bob.access)
        .await;
    assert!(left.status.is_success(), "{}", left.status);
    crate::chat::join(&app, &carol.access, &room).await;
}
