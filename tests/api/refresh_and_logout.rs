//! Token lifecycle: refresh rotation and reuse detection, logout, password
//! change, and the 401 codes for bad access tokens.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{
    NEW_PASSWORD, PASSWORD, Reply, Tokens, base64url_encode, jwt_parts, spawn_app, spawn_app_with,
};

#[tokio::test]
async fn refreshing_returns_a_new_working_pair_with_a_different_refresh_token() {
    let app = spawn_app().await;
    let alice = app.register_user("alice").await;

    let reply = app.refresh(&alice.refresh).await;

    reply.assert_status(StatusCode::OK);
    let fresh = Tokens::from_body(&reply.body);
    assert_ne!(fresh.refresh, alice.refresh, "the refresh token rotates");
    assert_eq!(fresh.session_id, alice.session_id, "same session");
    assert_eq!(reply.body["token_type"], "Bearer");
    assert_eq!(reply.body["expires_in"], 900);
    assert_eq!(app.profile_status(&fresh.access).await, StatusCode::OK);
    let (_, claims) = jwt_parts(&fresh.access);
    assert_eq!(claims["sid"], alice.session_id.as_str());
    // The new refresh token is itself good for one more rotation.
    app.refresh(&fresh.refresh)
        .await
        .assert_status(StatusCode::OK);
}

#[tokio::test]
async fn reusing_a_spent_refresh_token_revokes_the_whole_session() {
    let app = spawn_app().await;
    let alice = app.register_user("alice").await;
    let first = app.refresh(&alice.refresh).await;
    first.assert_status(StatusCode::OK);
    let newest = Tokens::from_body(&first.body);
    assert_eq!(app.profile_status(&newest.access).await, StatusCode::OK);

    let replay = app.refresh(&alice.refresh).await;

    replay.assert_error(StatusCode::UNAUTHORIZED, "invalid_refresh_token");
    let profile = app.get_authed("/users/profile", &newest.access).await;
    profile.assert_error(StatusCode::UNAUTHORIZED, "invalid_token");
    app.refresh(&newest.refresh)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "invalid_refresh_token");
}

#[tokio::test]
async fn refresh_token_reuse_is_audited_and_spares_other_sessions() {
    let app = spawn_app().await;
    let stolen = app.register_user("alice").await;
    let other = app.login_ok("alice", PASSWORD).await;
    app.refresh(&stolen.refresh)
        .await
        .assert_status(StatusCode::OK);

    app.refresh(&stolen.refresh)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "invalid_refresh_token");

    assert_eq!(app.profile_status(&other.access).await, StatusCode::OK);
    let entries = app
        .store
        .list_audit_entries(Some("refresh_reuse"), 10)
        .await
        .expect("audit entries");
    assert_eq!(entries.len(), 1, "one reuse entry: {entries:?}");
}

#[tokio::test]
async fn two_concurrent_refreshes_with_one_token_rotate_it_only_once() {
    let app = spawn_app().await;
    let alice = app.register_user("alice").await;

    let (a, b) = tokio::join!(app.refresh(&alice.refresh), app.refresh(&alice.refresh));

    let successes = [&a, &b]
        .iter()
        .filter(|r| r.status == StatusCode::OK)
        .count();
    assert_eq!(
        successes, 1,
        "exactly one rotation wins: {} / {}",
        a.text, b.text
    );
    let loser = if a.status == StatusCode::OK { &b } else { &a };
    loser.assert_error(StatusCode::UNAUTHORIZED, "invalid_refresh_token");
}

#[tokio::test]
async fn a_garbage_refresh_token_is_rejected() {
    let app = spawn_app().await;
    let alice = app.register_user("alice").await;

    for garbage in ["garbage", alice.access.as_str()] {
        app.refresh(garbage)
            .await
            .assert_error(StatusCode::UNAUTHORIZED, "invalid_refresh_token");
    }
    // Garbage does not hurt the real session.
    app.refresh(&alice.refresh)
        .await
        .assert_status(StatusCode::OK);
}

#[tokio::test]
async fn logging_out_kills_the_access_and_refresh_tokens_at_once() {
    let app = spawn_app().await;
    let alice = app.register_user("alice").await;
    let other = app.login_ok("alice", PASSWORD).await;

    let reply = app.post_authed("/auth/logout", &alice.access).await;

    reply.assert_status(StatusCode::NO_CONTENT);
    app.get_authed("/users/profile", &alice.access)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "invalid_token");
    app.refresh(&alice.refresh)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "invalid_refresh_token");
    let listing = app.get_authed("/sessions", &other.access).await;
    listing.assert_status(StatusCode::OK);
    let ids: Vec<&str> = listing.body["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|s| s["id"].as_str())
        .collect();
    assert_eq!(
        ids,
        vec![other.session_id.as_str()],
        "only the current session is logged out"
    );
}

#[tokio::test]
async fn logging_out_twice_with_the_same_token_is_unauthorized() {
    let app = spawn_app().await;
    let alice = app.register_user("alice").await;
    app.post_authed("/auth/logout", &alice.access)
        .await
        .assert_status(StatusCode::NO_CONTENT);

    app.post_authed("/auth/logout", &alice.access)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "invalid_token");
}

#[tokio::test]
async fn a_missing_authorization_header_is_unauthenticated() {
    let app = spawn_app().await;

    for path in ["/users/profile", "/sessions"] {
        app.get_api(path)
            .await
            .assert_error(StatusCode::UNAUTHORIZED, "unauthenticated");
    }
    let logout = app
        .client
        .post(app.api_url("/auth/logout"))
        .send()
        .await
        .expect("request sent");
    Reply::of(logout)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "unauthenticated");
}

#[tokio::test]
async fn a_malformed_or_tampered_access_token_is_an_invalid_token() {
    let app = spawn_app().await;
    let alice = app.register_user("alice").await;
    let (header, claims) = jwt_parts(&alice.access);
    let parts: Vec<&str> = alice.access.split('.').collect();

    // The same claims with the role raised, keeping the old signature.
    let mut admin_claims = claims.clone();
    admin_claims["role"] = json!("admin");
    let raised = format!(
        "{}.{}.{}",
        parts[0],
        base64url_encode(admin_claims.to_string().as_bytes()),
        parts[2]
    );
    // The classic `alg: none` forgery.
    let mut none_header = header.clone();
    none_header["alg"] = json!("none");
    let unsigned = format!(
        "{}.{}.",
        base64url_encode(none_header.to_string().as_bytes()),
        parts[1]
    );
    // A flipped character in the signature.
    let mut signature: Vec<char> = parts[2].chars().collect();
    signature[0] = if signature[0] == 'A' { 'B' } else { 'A' };
    let bad_signature = format!(
        "{}.{}.{}",
        parts[0],
        parts[1],
        signature.iter().collect::<String>()
    );

    for token in [
        "not-a-jwt",
        "a.b.c",
        raised.as_str(),
        unsigned.as_str(),
        bad_signature.as_str(),
        alice.refresh.as_str(),
    ] {
        let reply = app.get_authed("/users/profile", token).await;
        reply.assert_error(StatusCode::UNAUTHORIZED, "invalid_token");
    }
    let wrong_scheme = app
        .client
        .get(app.api_url("/users/profile"))
        .header("authorization", format!("Basic {}", alice.access))
        .send()
        .await
        .expect("request sent");
    let wrong_scheme = Reply::of(wrong_scheme).await;
    assert_eq!(
        wrong_scheme.status,
        StatusCode::UNAUTHORIZED,
        "{}",
        wrong_scheme.text
    );
    wrong_scheme.assert_envelope();
}

#[tokio::test]
async fn an_expired_access_token_is_an_invalid_token() {
    let app = spawn_app_with(|s| s.access_token_ttl_secs = 1).await;
    let alice = app.register_user("alice").await;
    let (_, claims) = jwt_parts(&alice.access);
    assert_eq!(
        claims["exp"].as_i64().expect("exp") - claims["iat"].as_i64().expect("iat"),
        1,
        "the TTL setting is honoured"
    );

    // The server may allow a few seconds of clock-skew leeway past `exp`
    // (it uses 5 s); the token must stop working well within 15 s.
    let started = Instant::now();
    let expired = loop {
        let reply = app.get_authed("/users/profile", &alice.access).await;
        if reply.status != StatusCode::OK {
            break reply;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "a 1 s token still works after 15 s"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };

    expired.assert_error(StatusCode::UNAUTHORIZED, "invalid_token");
    // The refresh token outlives it and gets a new one.
    let reply = app.refresh(&alice.refresh).await;
    reply.assert_status(StatusCode::OK);
    assert_eq!(reply.body["expires_in"], 1);
}

#[tokio::test]
async fn changing_the_password_revokes_other_sessions_but_keeps_this_one() {
    let app = spawn_app().await;
    let current = app.register_user("alice").await;
    let other_a = app.login_ok("alice", PASSWORD).await;
    let other_b = app.login_ok("alice@example.com", PASSWORD).await;

    let reply = app
        .post_json_authed(
            "/auth/password",
            &current.access,
            &json!({"current_password": PASSWORD, "new_password": NEW_PASSWORD}),
        )
        .await;

    reply.assert_status(StatusCode::OK);
    assert_eq!(reply.body["revoked_sessions"], 2, "{}", reply.text);
    for other in [&other_a, &other_b] {
        app.get_authed("/users/profile", &other.access)
            .await
            .assert_error(StatusCode::UNAUTHORIZED, "invalid_token");
        app.refresh(&other.refresh)
            .await
            .assert_error(StatusCode::UNAUTHORIZED, "invalid_refresh_token");
    }
    assert_eq!(app.profile_status(&current.access).await, StatusCode::OK);
    app.refresh(&current.refresh)
        .await
        .assert_status(StatusCode::OK);
}

#[tokio::test]
async fn after_a_password_change_only_the_new_password_logs_in() {
    let app = spawn_app().await;
    let alice = app.register_user("alice").await;
    app.post_json_authed(
        "/auth/password",
        &alice.access,
        &json!({"current_password": PASSWORD, "new_password": NEW_PASSWORD}),
    )
    .await
    .assert_status(StatusCode::OK);

    Reply::of(app.login("alice", PASSWORD).await)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "invalid_credentials");
    Reply::of(app.login("alice", NEW_PASSWORD).await)
        .await
        .assert_status(StatusCode::OK);
}

#[tokio::test]
async fn a_wrong_current_password_is_forbidden_and_changes_nothing() {
    let app = spawn_app().await;
    let alice = app.register_user("alice").await;
    let other = app.login_ok("alice", PASSWORD).await;

    let reply = app
        .post_json_authed(
            "/auth/password",
            &alice.access,
            &json!({"current_password": "Wrong-Horse-42", "new_password": NEW_PASSWORD}),
        )
        .await;

    reply.assert_error(StatusCode::FORBIDDEN, "invalid_password");
    assert_eq!(app.profile_status(&other.access).await, StatusCode::OK);
    Reply::of(app.login("alice", PASSWORD).await)
        .await
        .assert_status(StatusCode::OK);
}

#[tokio::test]
async fn a_weak_new_password_is_rejected_with_a_field_error() {
    let app = spawn_app().await;
    let alice = app.register_user("alice").await;

    let reply = app
        .post_json_authed(
            "/auth/password",
            &alice.access,
            &json!({"current_password": PASSWORD, "new_password": "weak"}),
        )
        .await;

    let error = reply.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert_eq!(
        error["details"]["fields"]["new_password"]["code"], "too_short",
        "{}",
        reply.text
    );
    Reply::of(app.login("alice", PASSWORD).await)
        .await
        .assert_status(StatusCode::OK);
}

#[tokio::test]
async fn changing_the_password_requires_a_token() {
    let app = spawn_app().await;
    app.register_user("alice").await;

    let body = json!({"current_password": PASSWORD, "new_password": NEW_PASSWORD});
    let reply = Reply::of(app.post_json("/auth/password", &body).await).await;

    reply.assert_error(StatusCode::UNAUTHORIZED, "unauthenticated");
}

#[tokio::test]
async fn an_expired_refresh_token_is_rejected() {
    let app = spawn_app_with(|s| s.refresh_token_ttl_secs = 1).await;
    let alice = app.register_user("alice").await;

    tokio::time::sleep(Duration::from_millis(2100)).await;

    app.refresh(&alice.refresh)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "invalid_refresh_token");
}

#[tokio::test]
async fn refresh_tokens_are_opaque_long_random_strings() {
    let app = spawn_app().await;
    let first = app.register_user("alice").await;
    let second = app.login_ok("alice", PASSWORD).await;

    for token in [&first.refresh, &second.refresh] {
        assert!(token.len() >= 32, "at least 32 characters: {token}");
        assert_ne!(token.split('.').count(), 3, "not a JWT: {token}");
    }
    assert_ne!(first.refresh, second.refresh);
}
