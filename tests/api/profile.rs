//! GET /users/profile.

use reqwest::StatusCode;

use crate::helpers::{PASSWORD, spawn_app};

#[tokio::test]
async fn the_profile_is_the_user_returned_at_registration() {
    let app = spawn_app().await;
    let body = app.register("Alice", "Alice@Example.com", PASSWORD).await;
    let token = body["access_token"].as_str().expect("access_token");

    let reply = app.get_authed("/users/profile", token).await;

    reply.assert_status(StatusCode::OK);
    let profile = &reply.body;
    let registered = &body["user"];
    for field in [
        "id",
        "username",
        "email",
        "display_name",
        "bio",
        "avatar_url",
        "role",
        "status",
        "two_factor_enabled",
    ] {
        assert_eq!(profile[field], registered[field], "{field}: {profile}");
    }
    assert_eq!(profile["username"], "alice");
    assert_eq!(profile["email"], "alice@example.com");
    let at = |v: &serde_json::Value| {
        chrono::DateTime::parse_from_rfc3339(v.as_str().expect("created_at string"))
            .expect("created_at is RFC 3339")
    };
    let drift = (at(&profile["created_at"]) - at(&registered["created_at"]))
        .num_milliseconds()
        .abs();
    assert!(drift < 1000, "created_at is the same instant: {profile}");
    assert!(profile.get("password_hash").is_none());
}

#[tokio::test]
async fn each_user_sees_their_own_profile() {
    let app = spawn_app().await;
    let alice = app.register_user("alice").await;
    let bob = app.register_user("bob").await;

    let as_alice = app.get_authed("/users/profile", &alice.access).await;
    let as_bob = app.get_authed("/users/profile", &bob.access).await;

    assert_eq!(as_alice.body["username"], "alice", "{}", as_alice.text);
    assert_eq!(as_bob.body["username"], "bob", "{}", as_bob.text);
    assert_ne!(as_alice.body["id"], as_bob.body["id"]);
}
