//! GET /sessions, DELETE /sessions/{id}, DELETE /sessions.

use std::collections::HashSet;

use reqwest::StatusCode;
use serde_json::Value;

use crate::helpers::{PASSWORD, TestApp, Tokens, USER_AGENT, spawn_app};

/// The `items` of a session listing, asserting the list shape.
#[track_caller]
fn items(body: &Value) -> &Vec<Value> {
    assert!(
        body.get("next_cursor").is_some(),
        "next_cursor is present (maybe null): {body}"
    );
    body["items"]
        .as_array()
        .unwrap_or_else(|| panic!("items is an array: {body}"))
}

/// The ids in a session listing.
fn ids(body: &Value) -> Vec<String> {
    items(body)
        .iter()
        .map(|s| s["id"].as_str().expect("session id").to_owned())
        .collect()
}

/// Registers alice and logs her in `extra` more times.
async fn alice_with_sessions(app: &TestApp, extra: usize) -> Vec<Tokens> {
    let mut all = vec![app.register_user("alice").await];
    for _ in 0..extra {
        all.push(app.login_ok("alice", PASSWORD).await);
    }
    all
}

#[tokio::test]
async fn listing_sessions_shows_each_one_with_its_details() {
    let app = spawn_app().await;
    let sessions = alice_with_sessions(&app, 1).await;

    let reply = app.get_authed("/sessions", &sessions[0].access).await;

    reply.assert_status(StatusCode::OK);
    let listed = items(&reply.body);
    assert_eq!(listed.len(), 2, "{}", reply.text);
    for session in listed {
        for field in [
            "id",
            "device",
            "user_agent",
            "ip",
            "created_at",
            "last_seen_at",
            "current",
        ] {
            assert!(session.get(field).is_some(), "{field} in {session}");
        }
        assert_eq!(session["user_agent"], USER_AGENT);
        assert_eq!(
            session["ip"],
            app.addr.ip().to_string(),
            "the client's address"
        );
        for time in ["created_at", "last_seen_at"] {
            let text = session[time].as_str().expect("a time string");
            chrono::DateTime::parse_from_rfc3339(text).expect("RFC 3339");
        }
    }
    let mut listed_ids = ids(&reply.body);
    listed_ids.sort();
    let mut expected: Vec<String> = sessions.iter().map(|t| t.session_id.clone()).collect();
    expected.sort();
    assert_eq!(listed_ids, expected);
}

#[tokio::test]
async fn exactly_the_session_asking_is_marked_current() {
    let app = spawn_app().await;
    let sessions = alice_with_sessions(&app, 2).await;

    for asking in &sessions {
        let reply = app.get_authed("/sessions", &asking.access).await;
        reply.assert_status(StatusCode::OK);
        let current: Vec<&Value> = items(&reply.body)
            .iter()
            .filter(|s| s["current"] == true)
            .collect();
        assert_eq!(current.len(), 1, "one current session: {}", reply.text);
        assert_eq!(current[0]["id"], asking.session_id.as_str());
        assert!(
            items(&reply.body).iter().all(|s| s["current"].is_boolean()),
            "current is a boolean everywhere"
        );
    }
}

#[tokio::test]
async fn users_only_see_their_own_sessions() {
    let app = spawn_app().await;
    let alice = app.register_user("alice").await;
    let bob = app.register_user("bob").await;

    let reply = app.get_authed("/sessions", &bob.access).await;

    reply.assert_status(StatusCode::OK);
    assert_eq!(ids(&reply.body), vec![bob.session_id.clone()]);
    assert!(!ids(&reply.body).contains(&alice.session_id));
}

#[tokio::test]
async fn session_listings_page_through_every_session_with_the_cursor() {
    let app = spawn_app().await;
    let sessions = alice_with_sessions(&app, 4).await;
    let token = &sessions[0].access;

    let mut seen = Vec::new();
    let mut path = "/sessions?limit=2".to_owned();
    for _page in 0..10 {
        let reply = app.get_authed(&path, token).await;
        reply.assert_status(StatusCode::OK);
        let page = ids(&reply.body);
        assert!(page.len() <= 2, "limit is honoured: {}", reply.text);
        seen.extend(page);
        match reply.body["next_cursor"].as_str() {
            Some(cursor) => path = format!("/sessions?limit=2&cursor={cursor}"),
            None => break,
        }
    }

    assert_eq!(seen.len(), 5, "every session once: {seen:?}");
    let unique: HashSet<&String> = seen.iter().collect();
    assert_eq!(unique.len(), 5, "no session twice: {seen:?}");
}

#[tokio::test]
async fn a_listing_that_fits_one_page_has_no_next_cursor() {
    let app = spawn_app().await;
    let sessions = alice_with_sessions(&app, 1).await;

    let reply = app
        .get_authed("/sessions?limit=200", &sessions[0].access)
        .await;

    reply.assert_status(StatusCode::OK);
    assert_eq!(items(&reply.body).len(), 2);
    assert!(reply.body["next_cursor"].is_null(), "{}", reply.text);
}

#[tokio::test]
async fn a_limit_outside_1_to_200_is_a_validation_error() {
    let app = spawn_app().await;
    let alice = app.register_user("alice").await;

    for limit in ["0", "201", "-1", "lots"] {
        let reply = app
            .get_authed(&format!("/sessions?limit={limit}"), &alice.access)
            .await;
        assert!(
            reply.status == StatusCode::UNPROCESSABLE_ENTITY
                || (matches!(limit, "-1" | "lots") && reply.status == StatusCode::BAD_REQUEST),
            "limit={limit} is refused: {} {}",
            reply.status,
            reply.text
        );
        reply.assert_envelope();
    }
    for limit in ["1", "200"] {
        app.get_authed(&format!("/sessions?limit={limit}"), &alice.access)
            .await
            .assert_status(StatusCode::OK);
    }
}

#[tokio::test]
async fn revoking_one_session_kills_its_tokens_and_nothing_else() {
    let app = spawn_app().await;
    let sessions = alice_with_sessions(&app, 1).await;
    let (me, doomed) = (&sessions[0], &sessions[1]);

    let reply = app
        .delete_authed(&format!("/sessions/{}", doomed.session_id), &me.access)
        .await;

    reply.assert_status(StatusCode::NO_CONTENT);
    app.get_authed("/users/profile", &doomed.access)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "invalid_token");
    app.refresh(&doomed.refresh)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "invalid_refresh_token");
    let listing = app.get_authed("/sessions", &me.access).await;
    listing.assert_status(StatusCode::OK);
    assert_eq!(ids(&listing.body), vec![me.session_id.clone()]);
}

#[tokio::test]
async fn revoking_someone_elses_session_is_not_found_and_harmless() {
    let app = spawn_app().await;
    let alice = app.register_user("alice").await;
    let bob = app.register_user("bob").await;

    let reply = app
        .delete_authed(&format!("/sessions/{}", alice.session_id), &bob.access)
        .await;

    reply.assert_error(StatusCode::NOT_FOUND, "not_found");
    assert_eq!(app.profile_status(&alice.access).await, StatusCode::OK);
}

#[tokio::test]
async fn revoking_an_unknown_session_is_not_found() {
    let app = spawn_app().await;
    let alice = app.register_user("alice").await;

    let unknown = uuid::Uuid::now_v7();
    let reply = app
        .delete_authed(&format!("/sessions/{unknown}"), &alice.access)
        .await;

    reply.assert_error(StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn revoking_an_already_revoked_session_is_not_found() {
    let app = spawn_app().await;
    let sessions = alice_with_sessions(&app, 1).await;
    let path = format!("/sessions/{}", sessions[1].session_id);
    app.delete_authed(&path, &sessions[0].access)
        .await
        .assert_status(StatusCode::NO_CONTENT);

    let again = app.delete_authed(&path, &sessions[0].access).await;

    again.assert_error(StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn a_session_id_that_is_not_a_uuid_is_refused() {
    let app = spawn_app().await;
    let alice = app.register_user("alice").await;

    let reply = app
        .delete_authed("/sessions/not-a-uuid", &alice.access)
        .await;

    assert!(
        reply.status == StatusCode::NOT_FOUND || reply.status == StatusCode::UNPROCESSABLE_ENTITY,
        "404 or 422, got {} {}",
        reply.status,
        reply.text
    );
    reply.assert_envelope();
    assert_eq!(app.profile_status(&alice.access).await, StatusCode::OK);
}

#[tokio::test]
async fn revoking_all_other_sessions_keeps_only_the_current_one() {
    let app = spawn_app().await;
    let sessions = alice_with_sessions(&app, 2).await;
    let bob = app.register_user("bob").await;
    let me = &sessions[1];

    let reply = app.delete_authed("/sessions", &me.access).await;

    reply.assert_status(StatusCode::OK);
    assert_eq!(reply.body["revoked_sessions"], 2, "{}", reply.text);
    for other in [&sessions[0], &sessions[2]] {
        app.get_authed("/users/profile", &other.access)
            .await
            .assert_error(StatusCode::UNAUTHORIZED, "invalid_token");
        app.refresh(&other.refresh)
            .await
            .assert_error(StatusCode::UNAUTHORIZED, "invalid_refresh_token");
    }
    assert_eq!(app.profile_status(&me.access).await, StatusCode::OK);
    assert_eq!(
        app.profile_status(&bob.access).await,
        StatusCode::OK,
        "other users are untouched"
    );
    let listing = app.get_authed("/sessions", &me.access).await;
    assert_eq!(ids(&listing.body), vec![me.session_id.clone()]);
}

#[tokio::test]
async fn revoking_all_other_sessions_when_there_are_none_revokes_zero() {
    let app = spawn_app().await;
    let alice = app.register_user("alice").await;

    let reply = app.delete_authed("/sessions", &alice.access).await;

    reply.assert_status(StatusCode::OK);
    assert_eq!(reply.body["revoked_sessions"], 0, "{}", reply.text);
    assert_eq!(app.profile_status(&alice.access).await, StatusCode::OK);
}

#[tokio::test]
async fn revoking_the_current_session_by_id_logs_it_out() {
    let app = spawn_app().await;
    let alice = app.register_user("alice").await;

    let reply = app
        .delete_authed(&format!("/sessions/{}", alice.session_id), &alice.access)
        .await;

    reply.assert_status(StatusCode::NO_CONTENT);
    app.get_authed("/users/profile", &alice.access)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "invalid_token");
}

#[tokio::test]
async fn a_malformed_cursor_is_refused() {
    let app = spawn_app().await;
    let alice = app.register_user("alice").await;

    let reply = app
        .get_authed("/sessions?cursor=not-a-cursor", &alice.access)
        .await;

    assert!(
        reply.status == StatusCode::UNPROCESSABLE_ENTITY || reply.status == StatusCode::BAD_REQUEST,
        "422 or 400, got {} {}",
        reply.status,
        reply.text
    );
    reply.assert_envelope();
}
