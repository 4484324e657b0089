//! POST /auth/register: the reply's shape, the validation rules and the
//! access token's claims.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{PASSWORD, Reply, jwt_parts, spawn_app};

const USER_FIELDS: [&str; 10] = [
    "id",
    "username",
    "email",
    "display_name",
    "bio",
    "avatar_url",
    "role",
    "status",
    "created_at",
    "two_factor_enabled",
];

#[tokio::test]
async fn registering_returns_201_with_the_user_and_a_token_pair() {
    let app = spawn_app().await;

    let body = app.register("alice", "alice@example.com", PASSWORD).await;

    let user = &body["user"];
    for field in USER_FIELDS {
        assert!(user.get(field).is_some(), "user.{field} is present: {user}");
    }
    assert!(user["id"].as_str().is_some_and(|id| !id.is_empty()));
    assert_eq!(user["username"], "alice");
    assert_eq!(user["email"], "alice@example.com");
    assert_eq!(user["role"], "user");
    assert_eq!(user["status"], "active");
    assert_eq!(user["two_factor_enabled"], false);
    let created_at = user["created_at"].as_str().expect("created_at is a string");
    chrono::DateTime::parse_from_rfc3339(created_at).expect("created_at is RFC 3339");
    for secret in ["password", "password_hash"] {
        assert!(user.get(secret).is_none(), "user has no `{secret}`: {user}");
    }
    assert!(body["access_token"].as_str().is_some_and(|t| !t.is_empty()));
    assert!(
        body["refresh_token"]
            .as_str()
            .is_some_and(|t| !t.is_empty())
    );
    assert_ne!(body["access_token"], body["refresh_token"]);
    assert_eq!(body["expires_in"], 900, "default access token TTL");
    assert_eq!(body["token_type"], "Bearer");
    assert!(body["session_id"].as_str().is_some_and(|s| !s.is_empty()));
}

#[tokio::test]
async fn a_registered_user_can_use_the_access_token_at_once() {
    let app = spawn_app().await;
    let alice = app.register_user("alice").await;

    let reply = app.get_authed("/users/profile", &alice.access).await;

    reply.assert_status(StatusCode::OK);
    assert_eq!(reply.body["id"], alice.user["id"]);
}

#[tokio::test]
async fn registration_folds_the_username_to_lowercase() {
    let app = spawn_app().await;

    let body = app.register("Alice", "alice@example.com", PASSWORD).await;

    assert_eq!(body["user"]["username"], "alice");
}

#[tokio::test]
async fn a_username_taken_in_another_case_is_a_conflict_on_username() {
    let app = spawn_app().await;
    app.register("alice", "alice@example.com", PASSWORD).await;

    let reply = app
        .try_register("ALICE", "other@example.com", PASSWORD)
        .await;

    let error = reply.assert_error(StatusCode::CONFLICT, "conflict");
    assert_eq!(error["details"]["field"], "username", "{}", reply.text);
}

#[tokio::test]
async fn a_taken_email_in_another_case_is_a_conflict_on_email() {
    let app = spawn_app().await;
    app.register("bob", "Bob@Example.com", PASSWORD).await;

    let reply = app
        .try_register("robert", "bob@example.COM", PASSWORD)
        .await;

    let error = reply.assert_error(StatusCode::CONFLICT, "conflict");
    assert_eq!(error["details"]["field"], "email", "{}", reply.text);
}

/// Registers with `password` and returns the `details.fields.password.code`.
async fn password_rejection(password: &str) -> String {
    let app = spawn_app().await;
    let reply = app
        .try_register("alice", "alice@example.com", password)
        .await;
    let error = reply.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    error["details"]["fields"]["password"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("details.fields.password.code is named: {}", reply.text))
        .to_owned()
}

#[tokio::test]
async fn a_password_under_8_characters_is_rejected_as_too_short() {
    assert_eq!(password_rejection("Ab1defg").await, "too_short");
}

#[tokio::test]
async fn a_password_over_128_characters_is_rejected_as_too_long() {
    let long = format!("Ab1{}", "x".repeat(126));
    assert_eq!(password_rejection(&long).await, "too_long");
}

#[tokio::test]
async fn a_password_without_upper_lower_and_digit_is_rejected_as_too_weak() {
    for weak in ["alllowercase1", "ALLUPPERCASE1", "NoDigitsHere"] {
        assert_eq!(password_rejection(weak).await, "too_weak", "for {weak:?}");
    }
}

#[tokio::test]
async fn a_common_password_is_rejected_even_when_it_meets_the_character_rules() {
    assert_eq!(password_rejection("Password1").await, "common_password");
}

#[tokio::test]
async fn bad_usernames_are_rejected_with_a_field_error() {
    let app = spawn_app().await;
    let long = "a".repeat(33);
    for (i, bad) in ["ab", long.as_str(), "has space", "bad!name", "émile"]
        .into_iter()
        .enumerate()
    {
        let reply = app
            .try_register(bad, &format!("u{i}@example.com"), PASSWORD)
            .await;
        let error = reply.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        assert!(
            error["details"]["fields"]["username"]["code"].is_string(),
            "username {bad:?} is named: {}",
            reply.text
        );
    }
}

#[tokio::test]
async fn bad_emails_are_rejected_with_a_field_error() {
    let app = spawn_app().await;
    for (i, bad) in [
        "not-an-email",
        "a@b",
        "@example.com",
        "two words@example.com",
    ]
    .into_iter()
    .enumerate()
    {
        let reply = app.try_register(&format!("user{i}"), bad, PASSWORD).await;
        let error = reply.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        assert!(
            error["details"]["fields"]["email"]["code"].is_string(),
            "email {bad:?} is named: {}",
            reply.text
        );
    }
}

#[tokio::test]
async fn several_bad_fields_are_all_named_in_one_reply() {
    let app = spawn_app().await;

    let reply = app.try_register("x", "nope", "short").await;

    let error = reply.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    let fields = &error["details"]["fields"];
    for field in ["username", "email", "password"] {
        assert!(
            fields[field]["code"].is_string(),
            "{field} is named: {}",
            reply.text
        );
    }
    assert_eq!(fields["password"]["code"], "too_short");
}

#[tokio::test]
async fn a_missing_field_is_reported_as_required() {
    let app = spawn_app().await;

    let body = json!({"username": "alice", "password": PASSWORD});
    let reply = Reply::of(app.post_json("/auth/register", &body).await).await;

    let error = reply.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert_eq!(
        error["details"]["fields"]["email"]["code"], "required",
        "{}",
        reply.text
    );
}

#[tokio::test]
async fn an_unknown_field_in_the_register_body_is_rejected_by_name() {
    let app = spawn_app().await;

    let body = json!({
        "username": "alice",
        "email": "alice@example.com",
        "password": PASSWORD,
        "role": "admin",
    });
    let reply = Reply::of(app.post_json("/auth/register", &body).await).await;

    let error = reply.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert_eq!(
        error["details"]["fields"]["role"]["code"], "unknown_field",
        "{}",
        reply.text
    );
    // And nobody was created: the same registration without the extra field works.
    app.register("alice", "alice@example.com", PASSWORD).await;
}

#[tokio::test]
async fn the_access_token_is_a_jwt_carrying_the_contract_claims() {
    let app = spawn_app().await;
    let body = app.register("alice", "alice@example.com", PASSWORD).await;
    let token = body["access_token"].as_str().expect("access_token");

    let (header, claims) = jwt_parts(token);

    assert_eq!(header["alg"], "HS256", "HS256 by default: {header}");
    for claim in [
        "sub", "username", "role", "sid", "exp", "iat", "iss", "aud", "jti",
    ] {
        assert!(claims.get(claim).is_some(), "claim `{claim}` in {claims}");
    }
    assert_eq!(claims["sub"], body["user"]["id"]);
    assert_eq!(claims["sid"], body["session_id"]);
    assert_eq!(claims["username"], "alice");
    assert_eq!(claims["role"], "user");
    let iat = claims["iat"].as_i64().expect("iat is a number");
    let exp = claims["exp"].as_i64().expect("exp is a number");
    assert!(
        (exp - iat - 900).abs() <= 1,
        "exp is iat + 15 min: {claims}"
    );
    let now = chrono::Utc::now().timestamp();
    assert!((iat - now).abs() < 60, "iat is now: {iat} vs {now}");
    assert!(claims["jti"].as_str().is_some_and(|j| !j.is_empty()));
}

#[tokio::test]
async fn every_token_gets_its_own_jti_and_every_login_its_own_session() {
    let app = spawn_app().await;
    let registered = app.register_user("alice").await;
    let logged_in = app.login_ok("alice", PASSWORD).await;

    let (_, first) = jwt_parts(&registered.access);
    let (_, second) = jwt_parts(&logged_in.access);

    assert_ne!(first["jti"], second["jti"]);
    assert_ne!(registered.session_id, logged_in.session_id);
    assert_eq!(second["sid"], Value::from(logged_in.session_id));
}

#[tokio::test]
async fn concurrent_registrations_of_one_username_create_exactly_one_account() {
    let app = spawn_app().await;

    let attempts = (0..5).map(|i| {
        let app = &app;
        async move {
            app.try_register("alice", &format!("alice{i}@example.com"), PASSWORD)
                .await
        }
    });
    let replies = futures_util::future::join_all(attempts).await;

    let created = replies
        .iter()
        .filter(|r| r.status == StatusCode::CREATED)
        .count();
    assert_eq!(created, 1, "one winner");
    for reply in replies.iter().filter(|r| r.status != StatusCode::CREATED) {
        let error = reply.assert_error(StatusCode::CONFLICT, "conflict");
        assert_eq!(error["details"]["field"], "username");
    }
}

#[tokio::test]
async fn concurrent_registrations_of_one_email_create_exactly_one_account() {
    let app = spawn_app().await;

    let attempts = (0..5).map(|i| {
        let app = &app;
        async move {
            app.try_register(&format!("user{i}"), "same@example.com", PASSWORD)
                .await
        }
    });
    let replies = futures_util::future::join_all(attempts).await;

    let created = replies
        .iter()
        .filter(|r| r.status == StatusCode::CREATED)
        .count();
    assert_eq!(created, 1, "one winner");
    for reply in replies.iter().filter(|r| r.status != StatusCode::CREATED) {
        let error = reply.assert_error(StatusCode::CONFLICT, "conflict");
        assert_eq!(error["details"]["field"], "email");
    }
}
