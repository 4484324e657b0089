//! Email verification: the mail sent at registration, its single-use
//! token, resending, and `require_verified_email`.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{PASSWORD, Reply, TestApp, spawn_app, spawn_app_with};

async fn verify(app: &TestApp, token: &str) -> Reply {
    Reply::of(
        app.post_json("/auth/email/verify", &json!({"token": token}))
            .await,
    )
    .await
}

#[tokio::test]
async fn registering_sends_a_verification_mail_whose_token_verifies_the_address() {
    let app = spawn_app().await;
    let alice = app.register_user("alice").await;
    let profile = app.get_authed("/users/profile", &alice.access).await;
    assert_eq!(profile.body["email_verified"], false);

    let token = app.verification_token("alice@example.com").await;
    verify(&app, &token)
        .await
        .assert_status(StatusCode::NO_CONTENT);

    let profile = app.get_authed("/users/profile", &alice.access).await;
    assert_eq!(profile.body["email_verified"], true);
    let audit = app
        .store
        .list_audit_entries(Some("email_verified"), 10)
        .await
        .expect("audit");
    assert_eq!(audit.len(), 1, "{audit:?}");
}

#[tokio::test]
async fn a_used_token_is_invalid() {
    let app = spawn_app().await;
    app.register_user("alice").await;
    let token = app.verification_token("alice@example.com").await;
    verify(&app, &token)
        .await
        .assert_status(StatusCode::NO_CONTENT);

    verify(&app, &token)
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid_token");
}

#[tokio::test]
async fn an_expired_token_is_invalid() {
    let app = spawn_app_with(|s| s.email_verify_ttl_secs = 1).await;
    let alice = app.register_user("alice").await;
    let token = app.verification_token("alice@example.com").await;

    tokio::time::sleep(Duration::from_millis(1500)).await;

    verify(&app, &token)
        .await
        .assert_error(StatusCode::BAD_REQUEST, "invalid_token");
    let profile = app.get_authed("/users/profile", &alice.access).await;
    assert_eq!(profile.body["email_verified"], false);
}

#[tokio::test]
async fn a_forged_token_is_invalid() {
    let app = spawn_app().await;
    app.register_user("alice").await;
    let real = app.verification_token("alice@example.com").await;
    let mut forged = real.clone().into_bytes();
    forged[10] = if forged[10] == b'A' { b'B' } else { b'A' };
    let forged = String::from_utf8(forged).expect("ascii");

    for token in [forged.as_str(), "", "not-a-token", &"A".repeat(43)] {
        verify(&app, token)
            .await
            .assert_error(StatusCode::BAD_REQUEST, "invalid_token");
    }
    verify(&app, &real)
        .await
        .assert_status(StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn resending_sends_a_new_mail_and_is_rate_limited() {
    let app = spawn_app_with(|s| s.email_resend_per_hour = 2).await;
    let alice = app.register_user("alice").await;
    app.wait_for_mail("alice@example.com", "Confirm your email", 1)
        .await;

    for n in 2..=3 {
        let reply = app.post_authed("/auth/email/resend", &alice.access).await;
        reply.assert_status(StatusCode::ACCEPTED);
        app.wait_for_mail("alice@example.com", "Confirm your email", n)
            .await;
    }
    let limited = app.post_authed("/auth/email/resend", &alice.access).await;
    limited.assert_error(StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    assert!(limited.header("retry-after").is_some());

    // Each mail's token works (the newest here).
    let token = app.verification_token("alice@example.com").await;
    verify(&app, &token)
        .await
        .assert_status(StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn the_mail_is_an_eml_file_with_the_token_on_a_line_of_its_own() {
    let app = spawn_app().await;
    app.register_user("alice").await;

    let mail = app
        .wait_for_mail("alice@example.com", "Confirm your email", 1)
        .await;

    assert!(
        mail.has_header("Subject: Confirm your email"),
        "{}",
        mail.raw
    );
    assert!(
        mail.has_header("From: Parley <parley@localhost>"),
        "{}",
        mail.raw
    );
    assert_eq!(mail.token().len(), 43);
}

#[tokio::test]
async fn require_verified_email_refuses_login_until_the_address_is_verified() {
    let app = spawn_app_with(|s| s.require_verified_email = true).await;
    app.register("alice", "alice@example.com", PASSWORD).await;

    let refused = Reply::of(app.login("alice", PASSWORD).await).await;
    refused.assert_error(StatusCode::FORBIDDEN, "email_not_verified");
    let wrong_password = Reply::of(app.login("alice", "Wrong-Horse-42").await).await;
    wrong_password.assert_error(StatusCode::UNAUTHORIZED, "invalid_credentials");

    let token = app.verification_token("alice@example.com").await;
    verify(&app, &token)
        .await
        .assert_status(StatusCode::NO_CONTENT);
    Reply::of(app.login("alice", PASSWORD).await)
        .await
        .assert_status(StatusCode::OK);
}
