//! Two-factor authentication end to end: setup, enable with recovery
//! codes, login with a code or a recovery code (each good once), disable,
//! and `admin_require_2fa`.

use reqwest::StatusCode;
use serde_json::{Value, json};
use totp_rs::{Algorithm, Builder, Secret};

use crate::helpers::{PASSWORD, Reply, TestApp, Tokens, spawn_app, spawn_app_with};

/// The code an authenticator app shows for `secret`, `offset_steps` steps
/// from now (computed independently of the server, with totp-rs).
pub fn code(secret: &str, offset_steps: i64) -> String {
    let totp = Builder::new()
        .with_algorithm(Algorithm::SHA1)
        .with_digits(6)
        .with_step_duration(30)
        .with_secret(Secret::try_from_base32(secret).expect("a base32 secret"))
        .build()
        .expect("RFC parameters");
    let now = chrono::Utc::now().timestamp() + offset_steps * 30;
    totp.generate(u64::try_from(now).expect("after 1970"))
        .to_string()
}

/// POST /auth/login with a `totp_code`.
pub async fn login_with_code(app: &TestApp, login: &str, code: Option<&str>) -> Reply {
    let mut body = json!({"login": login, "password": PASSWORD});
    if let Some(code) = code {
        body["totp_code"] = json!(code);
    }
    Reply::of(app.post_json("/auth/login", &body).await).await
}

/// Sets up and enables 2FA for `user`; returns the secret and the recovery
/// codes. The enabling code uses the current step.
pub async fn turn_on_2fa(app: &TestApp, user: &Tokens) -> (String, Vec<String>) {
    let setup = app.post_authed("/auth/2fa/setup", &user.access).await;
    setup.assert_status(StatusCode::OK);
    let secret = setup.body["secret"].as_str().expect("a secret").to_owned();
    let enabled = app
        .post_json_authed(
            "/auth/2fa/enable",
            &user.access,
            &json!({"code": code(&secret, 0)}),
        )
        .await;
    enabled.assert_status(StatusCode::OK);
    let codes = enabled.body["recovery_codes"]
        .as_array()
        .expect("recovery codes")
        .iter()
        .map(|c| c.as_str().expect("a code").to_owned())
        .collect();
    (secret, codes)
}

#[tokio::test]
async fn setup_shows_a_secret_and_an_otpauth_url_and_changes_nothing_yet() {
    let app = spawn_app().await;
    let alice = app.register_user("alice").await;

    let setup = app.post_authed("/auth/2fa/setup", &alice.access).await;

    setup.assert_status(StatusCode::OK);
    let secret = setup.body["secret"].as_str().expect("secret");
    assert_eq!(secret.len(), 32, "160 bits in base32");
    let url = setup.body["otpauth_url"].as_str().expect("otpauth_url");
    assert!(url.starts_with("otpauth://totp/"), "{url}");
    assert!(url.contains(&format!("secret={secret}")), "{url}");
    assert!(url.contains("alice"), "{url}");
    login_with_code(&app, "alice", None)
        .await
        .assert_status(StatusCode::OK);
    let profile = app.get_authed("/users/profile", &alice.access).await;
    assert_eq!(profile.body["two_factor_enabled"], false);
}

#[tokio::test]
async fn a_full_two_factor_login() {
    let app = spawn_app().await;
    let alice = app.register_user("alice").await;

    let (secret, codes) = turn_on_2fa(&app, &alice).await;

    assert_eq!(codes.len(), 10, "ten recovery codes");
    let unique: std::collections::HashSet<_> = codes.iter().collect();
    assert_eq!(unique.len(), 10, "all different");
    let profile = app.get_authed("/users/profile", &alice.access).await;
    assert_eq!(profile.body["two_factor_enabled"], true);
    assert!(
        !profile.text.contains(&secret),
        "the secret is never shown again"
    );
    login_with_code(&app, "alice", None)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "totp_required");
    login_with_code(&app, "alice", Some("000000"))
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "invalid_totp");
    // The enabling code's step is spent; the next step's code is good.
    let ok = login_with_code(&app, "alice", Some(&code(&secret, 1))).await;
    ok.assert_status(StatusCode::OK);
    let tokens = Tokens::from_body(&ok.body);
    assert_eq!(app.profile_status(&tokens.access).await, StatusCode::OK);
    let setup_again = app.post_authed("/auth/2fa/setup", &tokens.access).await;
    setup_again.assert_error(StatusCode::CONFLICT, "conflict");
}

#[tokio::test]
async fn the_same_code_twice_is_invalid_totp() {
    let app = spawn_app().await;
    let alice = app.register_user("alice").await;
    let (secret, _) = turn_on_2fa(&app, &alice).await;
    let next = code(&secret, 1);

    login_with_code(&app, "alice", Some(&next))
        .await
        .assert_status(StatusCode::OK);
    let replay = login_with_code(&app, "alice", Some(&next)).await;

    replay.assert_error(StatusCode::UNAUTHORIZED, "invalid_totp");
    let enabling_code = login_with_code(&app, "alice", Some(&code(&secret, 0))).await;
    enabling_code.assert_error(StatusCode::UNAUTHORIZED, "invalid_totp");
}

#[tokio::test]
async fn a_recovery_code_works_once() {
    let app = spawn_app().await;
    let alice = app.register_user("alice").await;
    let (_, codes) = turn_on_2fa(&app, &alice).await;

    let first = login_with_code(&app, "alice", Some(&codes[3])).await;
    first.assert_status(StatusCode::OK);
    let again = login_with_code(&app, "alice", Some(&codes[3])).await;
    again.assert_error(StatusCode::UNAUTHORIZED, "invalid_totp");
    let shouted = login_with_code(&app, "alice", Some(&codes[4].to_uppercase())).await;
    shouted.assert_status(StatusCode::OK);

    let audit = app
        .store
        .list_audit_entries(Some("recovery_code_used"), 10)
        .await
        .expect("audit");
    assert_eq!(audit.len(), 2, "each use is audited: {audit:?}");
}

#[tokio::test]
async fn disabling_needs_the_password_and_a_right_code() {
    let app = spawn_app().await;
    let alice = app.register_user("alice").await;
    let (secret, codes) = turn_on_2fa(&app, &alice).await;
    let disable = |password: &str, code: &str| json!({"password": password, "code": code});

    let wrong_code = app
        .post_json_authed(
            "/auth/2fa/disable",
            &alice.access,
            &disable(PASSWORD, "123456"),
        )
        .await;
    wrong_code.assert_error(StatusCode::FORBIDDEN, "invalid_totp");
    let wrong_password = app
        .post_json_authed(
            "/auth/2fa/disable",
            &alice.access,
            &disable("Wrong-Horse-42", &code(&secret, 1)),
        )
        .await;
    wrong_password.assert_error(StatusCode::FORBIDDEN, "invalid_password");
    login_with_code(&app, "alice", None)
        .await
        .assert_error(StatusCode::UNAUTHORIZED, "totp_required");

    let with_recovery = app
        .post_json_authed(
            "/auth/2fa/disable",
            &alice.access,
            &disable(PASSWORD, &codes[0]),
        )
        .await;
    with_recovery.assert_status(StatusCode::NO_CONTENT);
    login_with_code(&app, "alice", None)
        .await
        .assert_status(StatusCode::OK);
    let profile = app.get_authed("/users/profile", &alice.access).await;
    assert_eq!(profile.body["two_factor_enabled"], false);
    let actions: Vec<String> = app
        .store
        .list_audit_entries(None, 50)
        .await
        .expect("audit")
        .into_iter()
        .map(|e| e.action)
        .collect();
    for action in ["2fa_enabled", "2fa_disabled", "recovery_code_used"] {
        assert!(
            actions.iter().any(|a| a == action),
            "{action} in {actions:?}"
        );
    }
}

#[tokio::test]
async fn enabling_needs_a_right_code_after_setup() {
    let app = spawn_app().await;
    let alice = app.register_user("alice").await;

    let before_setup = app
        .post_json_authed(
            "/auth/2fa/enable",
            &alice.access,
            &json!({"code": "123456"}),
        )
        .await;
    before_setup.assert_error(StatusCode::CONFLICT, "conflict");
    app.post_authed("/auth/2fa/setup", &alice.access)
        .await
        .assert_status(StatusCode::OK);
    let wrong = app
        .post_json_authed(
            "/auth/2fa/enable",
            &alice.access,
            &json!({"code": "123456"}),
        )
        .await;
    wrong.assert_error(StatusCode::FORBIDDEN, "invalid_totp");
    login_with_code(&app, "alice", None)
        .await
        .assert_status(StatusCode::OK);
}

#[tokio::test]
async fn wrong_codes_count_toward_the_lockout() {
    let app = spawn_app_with(|s| s.login_max_failures = 3).await;
    let alice = app.register_user("alice").await;
    let (secret, _) = turn_on_2fa(&app, &alice).await;

    for _ in 0..3 {
        login_with_code(&app, "alice", Some("000000"))
            .await
            .assert_error(StatusCode::UNAUTHORIZED, "invalid_totp");
    }
    let locked = login_with_code(&app, "alice", Some(&code(&secret, 1))).await;

    locked.assert_error(StatusCode::LOCKED, "account_locked");
}

/// Registers `name` and makes it an admin through the store (setup only).
async fn admin(app: &TestApp, name: &str) -> Tokens {
    let tokens = app.register_user(name).await;
    let id: parley_actors::domain::UserId = tokens.user["id"]
        .as_str()
        .expect("id")
        .parse()
        .expect("a user id");
    app.store
        .update_user_role_status(
            id,
            Some(parley_actors::domain::Role::Admin),
            None,
            chrono::Utc::now(),
        )
        .await
        .expect("promote");
    tokens
}

async fn suspend(app: &TestApp, admin: &Tokens, user: &Value) -> Reply {
    let path = format!("/admin/users/{}", user["id"].as_str().expect("id"));
    let req = app
        .client
        .patch(app.api_url(&path))
        .bearer_auth(&admin.access)
        .json(&json!({"status": "suspended"}))
        .send()
        .await
        .expect("request sent");
    Reply::of(req).await
}

#[tokio::test]
async fn with_admin_require_2fa_an_admin_without_2fa_gets_two_factor_required() {
    let app = spawn_app_with(|s| s.admin_require_2fa = true).await;
    let root = admin(&app, "root").await;
    let bob = app.register_user("bob").await;

    let refused = suspend(&app, &root, &bob.user).await;
    refused.assert_error(StatusCode::FORBIDDEN, "two_factor_required");

    // Turning 2FA on is open to them, and then the admin routes are.
    turn_on_2fa(&app, &root).await;
    suspend(&app, &root, &bob.user)
        .await
        .assert_status(StatusCode::OK);
}

#[tokio::test]
async fn without_admin_require_2fa_admins_need_no_second_factor() {
    let app = spawn_app().await;
    let root = admin(&app, "root").await;
    let bob = app.register_user("bob").await;

    suspend(&app, &root, &bob.user)
        .await
        .assert_status(StatusCode::OK);
}
