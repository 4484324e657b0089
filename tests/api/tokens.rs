//! Access tokens signed with the server's own secret (read from its data
//! dir): the signature alone must not be enough — audience, issuer, expiry
//! and the session behind `sid` are checked too. Also: the secret file is
//! private and survives a restart.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{PASSWORD, Reply, Tokens, jwt_parts, spawn_app};
use crate::signing::{secret_file, sign_jwt};

/// Re-signs `token`'s claims after `change` with the server's secret.
fn resign(secret: &[u8], token: &str, change: impl FnOnce(&mut Value)) -> String {
    let (header, mut claims) = jwt_parts(token);
    change(&mut claims);
    sign_jwt(secret, &header, &claims)
}

/// GET /users/profile with a forged token.
async fn profile_with(app: &crate::helpers::TestApp, token: &str) -> Reply {
    app.get_authed("/users/profile", token).await
}

#[tokio::test]
async fn a_token_re_signed_unchanged_with_the_servers_secret_is_accepted() {
    // The sanity check for every other test here: the tests sign like the
    // server does, so a refusal below is about the claims, not the signature.
    let app = spawn_app().await;
    let alice = app.register_user("alice").await;

    let token = resign(&app.jwt_secret(), &alice.access, |_| {});

    profile_with(&app, &token)
        .await
        .assert_status(StatusCode::OK);
}

#[tokio::test]
async fn a_signed_token_for_another_audience_or_issuer_is_refused() {
    let app = spawn_app().await;
    let alice = app.register_user("alice").await;
    let secret = app.jwt_secret();

    let wrong_aud = resign(&secret, &alice.access, |c| c["aud"] = json!("someone-else"));
    let wrong_iss = resign(&secret, &alice.access, |c| c["iss"] = json!("someone-else"));

    for token in [wrong_aud, wrong_iss] {
        profile_with(&app, &token)
            .await
            .assert_error(StatusCode::UNAUTHORIZED, "invalid_token");
    }
}

#[tokio::test]
async fn a_signed_token_that_expired_an_hour_ago_is_refused() {
    let app = spawn_app().await;
    let alice = app.register_user("alice").await;
    let hour_ago = chrono::Utc::now().timestamp() - 3600;

    let token = resign(&app.jwt_secret(), &alice.access, |c| {
        c["iat"] = json!(hour_ago - 900);
        c["exp"] = json!(hour_ago);
    });

    profile_with(&app, &token)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "invalid_token");
}

#[tokio::test]

async fn a_signed_token_for_a_session_that_does_not_exist_is_refused() {
    let app = spawn_app().await;
    let alice = app.register_user("alice").await;

    let token = resign(&app.jwt_secret(), &alice.access, |c| {
        c["sid"] = json!(uuid::Uuid::now_v7().to_string());
    });

    profile_with(&app, &token)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "invalid_token");
}

#[tokio::test]

async fn a_signed_token_pairing_one_users_id_with_anothers_session_is_refused() {
    let app = spawn_app().await;
    let alice = app.register_user("alice").await;
    let bob = app.register_user("bob").await;

    // Bob's live session, but claiming to be alice.
    let token = resign(&app.jwt_secret(), &bob.access, |c| {
        c["sub"] = alice.user["id"].clone();
        c["username"] = json!("alice");
    });

    let reply = profile_with(&app, &token).await;
    reply.assert_error(StatusCode::UNAUTHORIZED, "invalid_token");
}

#[tokio::test]
async fn a_signed_token_without_a_session_claim_is_refused() {
    let app = spawn_app().await;
    let alice = app.register_user("alice").await;

    let token = resign(&app.jwt_secret(), &alice.access, |c| {
        if let Some(claims) = c.as_object_mut() {
            claims.remove("sid");
        }
    });

    profile_with(&app, &token)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "invalid_token");
}

#[tokio::test]
async fn a_re_signed_token_of_a_logged_out_session_stays_refused() {
    let app = spawn_app().await;
    let alice = app.register_user("alice").await;
    app.post_authed("/auth/logout", &alice.access)
        .await
        .assert_status(StatusCode::NO_CONTENT);

    // A fresh jti and iat do not bring a revoked session back.
    let now = chrono::Utc::now().timestamp();
    let token = resign(&app.jwt_secret(), &alice.access, |c| {
        c["jti"] = json!(uuid::Uuid::new_v4().to_string());
        c["iat"] = json!(now);
        c["exp"] = json!(now + 900);
    });

    profile_with(&app, &token)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "invalid_token");
}

#[tokio::test]
async fn a_token_from_another_server_is_refused() {
    let ours = spawn_app().await;
    let theirs = spawn_app().await;
    let stranger = theirs.register_user("alice").await;
    ours.register_user("alice").await;

    let reply = ours.get_authed("/users/profile", &stranger.access).await;

    reply.assert_error(StatusCode::UNAUTHORIZED, "invalid_token");
}

#[cfg(unix)]
#[tokio::test]
async fn the_generated_jwt_secret_file_is_readable_by_its_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let app = spawn_app().await;

    let path = secret_file(app._tmp.path());
    let mode = std::fs::metadata(&path)
        .expect("the secret file's metadata")
        .permissions()
        .mode();

    assert_eq!(
        mode & 0o777,
        0o600,
        "{} has mode {:o}",
        path.display(),
        mode
    );
    assert!(
        app.jwt_secret().len() >= 32,
        "the secret has at least 32 characters"
    );
}

#[tokio::test]
async fn tokens_and_accounts_survive_a_restart_on_the_same_data_dir() {
    let app = spawn_app().await;
    let alice = app.register_user("alice").await;

    let second_api = app.spawn_sibling().await;

    let profile = app
        .client
        .get(format!("{second_api}/users/profile"))
        .bearer_auth(&alice.access)
        .send()
        .await
        .expect("request sent");
    let profile = Reply::of(profile).await;
    profile.assert_status(StatusCode::OK);
    assert_eq!(profile.body["id"], alice.user["id"]);
    let login = app
        .client
        .post(format!("{second_api}/auth/login"))
        .json(&json!({"login": "alice", "password": PASSWORD}))
        .send()
        .await
        .expect("request sent");
    let login = Reply::of(login).await;
    login.assert_status(StatusCode::OK);
    let again = Tokens::from_body(&login.body);
    assert_eq!(again.user["id"], alice.user["id"]);
}
