//! Rate limits: register and login per IP, authenticated routes per user.

use reqwest::StatusCode;

use crate::helpers::{PASSWORD, Reply, spawn_app, spawn_app_with};

/// The three X-RateLimit-* headers: (limit, remaining, reset).
#[track_caller]
fn rate_headers(reply: &Reply) -> (u64, u64, u64) {
    (
        reply.int_header("x-ratelimit-limit"),
        reply.int_header("x-ratelimit-remaining"),
        reply.int_header("x-ratelimit-reset"),
    )
}

/// Asserts a 429 `rate_limited` with `Retry-After` ≥ 1 and the three
/// headers, and returns the limit it reports.
#[track_caller]
fn assert_rate_limited(reply: &Reply) -> u64 {
    reply.assert_error(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    let retry_after = reply.int_header("retry-after");
    assert!(
        (1..=60).contains(&retry_after),
        "Retry-After within a minute: {retry_after}"
    );
    let (limit, remaining, _reset) = rate_headers(reply);
    assert_eq!(remaining, 0, "nothing remains when limited");
    limit
}

#[tokio::test]
async fn successful_responses_on_limited_routes_carry_the_rate_limit_headers() {
    let app = spawn_app().await;

    let register = app
        .try_register("alice", "alice@example.com", PASSWORD)
        .await;
    register.assert_status(StatusCode::CREATED);
    let login = Reply::of(app.login("alice", PASSWORD).await).await;
    login.assert_status(StatusCode::OK);
    let token = login.body["access_token"].as_str().expect("access_token");
    let profile = app.get_authed("/users/profile", token).await;
    profile.assert_status(StatusCode::OK);

    for (reply, default_limit) in [(&register, 10), (&login, 30), (&profile, 600)] {
        let (limit, remaining, reset) = rate_headers(reply);
        assert_eq!(limit, default_limit, "{}", reply.text);
        assert!(remaining < limit, "one request is spent already");
        assert!(
            reset <= 60,
            "X-RateLimit-Reset is seconds within the minute: {reset}"
        );
    }
}

#[tokio::test]
async fn registering_too_often_from_one_ip_is_rate_limited() {
    let app = spawn_app_with(|s| s.register_per_minute = 3).await;

    let mut remaining = Vec::new();
    for name in ["ann", "ben", "cat"] {
        let reply = app
            .try_register(name, &format!("{name}@example.com"), PASSWORD)
            .await;
        reply.assert_status(StatusCode::CREATED);
        let (limit, left, _reset) = rate_headers(&reply);
        assert_eq!(limit, 3);
        remaining.push(left);
    }
    assert_eq!(remaining, vec![2, 1, 0], "remaining counts down");

    let reply = app.try_register("dan", "dan@example.com", PASSWORD).await;

    assert_eq!(assert_rate_limited(&reply), 3);
    // The refused registration created nobody.
    Reply::of(app.login("dan", PASSWORD).await)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "invalid_credentials");
}

#[tokio::test]
async fn logging_in_too_often_from_one_ip_is_rate_limited() {
    let app = spawn_app_with(|s| s.login_per_minute = 2).await;
    app.register_user("alice").await;

    for _ in 0..2 {
        Reply::of(app.login("alice", PASSWORD).await)
            .await
            .assert_status(StatusCode::OK);
    }
    let reply = Reply::of(app.login("alice", PASSWORD).await).await;

    assert_eq!(assert_rate_limited(&reply), 2);
}

#[tokio::test]
async fn authenticated_routes_are_limited_per_user_not_per_ip() {
    let app = spawn_app_with(|s| s.api_per_minute = 3).await;
    let alice = app.register_user("alice").await;
    let bob = app.register_user("bob").await;

    for _ in 0..3 {
        app.get_authed("/users/profile", &alice.access)
            .await
            .assert_status(StatusCode::OK);
    }
    let limited = app.get_authed("/users/profile", &alice.access).await;

    assert_eq!(assert_rate_limited(&limited), 3);
    let other_user = app.get_authed("/users/profile", &bob.access).await;
    other_user.assert_status(StatusCode::OK);
    assert_eq!(rate_headers(&other_user).0, 3);
}

#[tokio::test]
async fn the_per_user_limit_spans_all_of_a_users_sessions() {
    let app = spawn_app_with(|s| s.api_per_minute = 2).await;
    let first = app.register_user("alice").await;
    let second = app.login_ok("alice", PASSWORD).await;

    app.get_authed("/users/profile", &first.access)
        .await
        .assert_status(StatusCode::OK);
    app.get_authed("/sessions", &second.access)
        .await
        .assert_status(StatusCode::OK);
    let reply = app.get_authed("/users/profile", &second.access).await;

    assert_rate_limited(&reply);
}

#[tokio::test]
async fn the_default_register_limit_is_ten_a_minute() {
    let app = spawn_app().await;

    for i in 0..10 {
        app.register_user(&format!("user{i}")).await;
    }
    let reply = app
        .try_register("user10", "user10@example.com", PASSWORD)
        .await;

    assert_eq!(assert_rate_limited(&reply), 10);
}

#[tokio::test]
async fn a_forged_x_forwarded_for_does_not_dodge_the_per_ip_limit() {
    let app = spawn_app_with(|s| s.register_per_minute = 1).await;
    app.register_user("ann").await;

    let spoofed = app
        .client
        .post(app.api_url("/auth/register"))
        .header("x-forwarded-for", "203.0.113.7")
        .json(&serde_json::json!({
            "username": "ben",
            "email": "ben@example.com",
            "password": PASSWORD,
        }))
        .send()
        .await
        .expect("request sent");

    assert_rate_limited(&Reply::of(spoofed).await);
}

#[tokio::test]
async fn behind_a_trusted_proxy_limits_and_sessions_use_the_forwarded_address() {
    let app = spawn_app_with(|s| {
        s.register_per_minute = 1;
        s.trust_forwarded_for = true;
    })
    .await;
    let register_from = |ip: &'static str, name: &'static str| {
        app.client
            .post(app.api_url("/auth/register"))
            .header("x-forwarded-for", ip)
            .json(&serde_json::json!({
                "username": name,
                "email": format!("{name}@example.com"),
                "password": PASSWORD,
            }))
            .send()
    };

    let ann = Reply::of(register_from("203.0.113.7", "ann").await.expect("sent")).await;
    let ben = Reply::of(register_from("198.51.100.9", "ben").await.expect("sent")).await;
    let cat = Reply::of(register_from("203.0.113.7", "cat").await.expect("sent")).await;

    ann.assert_status(StatusCode::CREATED);
    ben.assert_status(StatusCode::CREATED);
    assert_rate_limited(&cat);
    let token = ann.body["access_token"].as_str().expect("access_token");
    let sessions = app.get_authed("/sessions", token).await;
    sessions.assert_status(StatusCode::OK);
    assert_eq!(
        sessions.body["items"][0]["ip"], "203.0.113.7",
        "{}",
        sessions.text
    );
}
