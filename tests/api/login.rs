//! POST /auth/login: credentials, uniform failures and the lockout.

use reqwest::StatusCode;
use serde_json::json;

use parley_actors::domain::{UserId, UserStatus};

use crate::helpers::{PASSWORD, Reply, spawn_app, spawn_app_with};

#[tokio::test]
async fn logging_in_by_username_or_email_in_any_case_returns_a_token_pair() {
    let app = spawn_app().await;
    let alice = app.register_user("alice").await;

    for login in ["alice", "ALICE", "alice@example.com", "Alice@Example.COM"] {
        let reply = Reply::of(app.login(login, PASSWORD).await).await;
        reply.assert_status(StatusCode::OK);
        assert_eq!(
            reply.body["user"]["id"], alice.user["id"],
            "login {login:?}"
        );
        assert_eq!(reply.body["token_type"], "Bearer");
        assert_eq!(reply.body["expires_in"], 900);
        for key in ["access_token", "refresh_token", "session_id"] {
            assert!(reply.body[key].is_string(), "{key} in {}", reply.text);
        }
        let token = reply.body["access_token"].as_str().expect("access_token");
        assert_eq!(app.profile_status(token).await, StatusCode::OK);
    }
}

#[tokio::test]
async fn a_wrong_password_is_invalid_credentials() {
    let app = spawn_app().await;
    app.register_user("alice").await;

    let reply = Reply::of(app.login("alice", "Wrong-Horse-42").await).await;

    reply.assert_error(StatusCode::UNAUTHORIZED, "invalid_credentials");
}

#[tokio::test]
async fn a_wrong_password_and_an_unknown_user_get_the_same_answer() {
    let app = spawn_app().await;
    app.register_user("alice").await;

    let wrong_password = Reply::of(app.login("alice", "Wrong-Horse-42").await).await;
    let unknown_user = Reply::of(app.login("nobody", "Wrong-Horse-42").await).await;

    wrong_password.assert_error(StatusCode::UNAUTHORIZED, "invalid_credentials");
    unknown_user.assert_error(StatusCode::UNAUTHORIZED, "invalid_credentials");
    assert_eq!(
        wrong_password.without_request_id(),
        unknown_user.without_request_id(),
        "no user enumeration"
    );
    assert_ne!(
        wrong_password.body["request_id"], unknown_user.body["request_id"],
        "each request gets its own id"
    );
}

#[tokio::test]
async fn an_unknown_field_in_the_login_body_is_rejected_by_name() {
    let app = spawn_app().await;
    app.register_user("alice").await;

    let body = json!({"login": "alice", "password": PASSWORD, "remember_me": true});
    let reply = Reply::of(app.post_json("/auth/login", &body).await).await;

    let error = reply.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert_eq!(
        error["details"]["fields"]["remember_me"]["code"], "unknown_field",
        "{}",
        reply.text
    );
}

#[tokio::test]
async fn a_login_without_a_password_reports_it_as_required() {
    let app = spawn_app().await;

    let reply = Reply::of(
        app.post_json("/auth/login", &json!({"login": "alice"}))
            .await,
    )
    .await;

    let error = reply.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert_eq!(
        error["details"]["fields"]["password"]["code"], "required",
        "{}",
        reply.text
    );
}

/// Asserts a 423 `account_locked` with a positive `retry_after` no longer
/// than `lockout_secs`, in the body and in `Retry-After`.
#[track_caller]
fn assert_locked(reply: &Reply, lockout_secs: u64) {
    let error = reply.assert_error(StatusCode::LOCKED, "account_locked");
    let retry_after = error["details"]["retry_after"]
        .as_u64()
        .unwrap_or_else(|| panic!("details.retry_after is a number: {}", reply.text));
    assert!(
        retry_after > 0 && retry_after <= lockout_secs,
        "retry_after {retry_after} within (0, {lockout_secs}]"
    );
    let header = reply.int_header("retry-after");
    assert!(
        header > 0 && header <= lockout_secs,
        "Retry-After {header} within (0, {lockout_secs}]"
    );
}

#[tokio::test]
async fn after_the_allowed_failures_even_the_right_password_gets_account_locked() {
    let app = spawn_app_with(|s| {
        s.login_max_failures = 3;
        s.login_lockout_secs = 600;
    })
    .await;
    app.register_user("alice").await;

    for attempt in 1..=3 {
        let reply = Reply::of(app.login("alice", "Wrong-Horse-42").await).await;
        assert_eq!(
            reply.status,
            StatusCode::UNAUTHORIZED,
            "failure {attempt} is still a plain 401: {}",
            reply.text
        );
    }

    let right = Reply::of(app.login("alice", PASSWORD).await).await;
    assert_locked(&right, 600);
    let wrong = Reply::of(app.login("ALICE", "Wrong-Horse-42").await).await;
    assert_locked(&wrong, 600);
}

/// Fails `first` three times and `second` twice, then tries `first` once
/// more; returns the statuses of the last try of each.
async fn probe_pairing(
    app: &crate::helpers::TestApp,
    first: &str,
    second: &str,
) -> (StatusCode, StatusCode) {
    for _ in 0..3 {
        app.login(first, "Wrong-Horse-42").await;
    }
    for _ in 0..2 {
        app.login(second, "Wrong-Horse-42").await;
    }
    let first_again = Reply::of(app.login(first, "Wrong-Horse-42").await).await;
    let second_again = Reply::of(app.login(second, "Wrong-Horse-42").await).await;
    (first_again.status, second_again.status)
}

#[tokio::test]
async fn failures_do_not_reveal_which_username_and_email_belong_together() {
    // Counted per account, the username's and the email's failures would
    // add up to a lock only when they are one account's: a tell. Counted per
    // login string, a real pair and a made-up pair behave the same.
    let app = spawn_app().await;
    app.register_user("alice").await;

    let real = probe_pairing(&app, "alice", "alice@example.com").await;
    let made_up = probe_pairing(&app, "mallory", "mallory@example.com").await;

    assert_eq!(real, made_up, "a real pair and a made-up pair look alike");
    assert_eq!(real, (StatusCode::UNAUTHORIZED, StatusCode::UNAUTHORIZED));
}

#[tokio::test]
async fn the_default_lockout_is_five_failures_for_fifteen_minutes() {
    let app = spawn_app().await;
    app.register_user("alice").await;

    for _ in 0..5 {
        let reply = Reply::of(app.login("alice", "Wrong-Horse-42").await).await;
        reply.assert_error(StatusCode::UNAUTHORIZED, "invalid_credentials");
    }

    let reply = Reply::of(app.login("alice", PASSWORD).await).await;
    assert_locked(&reply, 900);
    assert!(
        reply.int_header("retry-after") > 800,
        "a fresh lock has most of its 15 minutes left"
    );
}

#[tokio::test]
async fn unknown_logins_lock_exactly_like_real_ones() {
    let app = spawn_app_with(|s| s.login_max_failures = 3).await;

    for _ in 0..3 {
        let reply = Reply::of(app.login("ghost", "Wrong-Horse-42").await).await;
        reply.assert_error(StatusCode::UNAUTHORIZED, "invalid_credentials");
    }

    let reply = Reply::of(app.login("ghost", "Wrong-Horse-42").await).await;
    assert_locked(&reply, 900);
}

#[tokio::test]
async fn a_successful_login_resets_the_failure_count() {
    let app = spawn_app_with(|s| s.login_max_failures = 3).await;
    app.register_user("alice").await;

    for round in 0..2 {
        for _ in 0..2 {
            let reply = Reply::of(app.login("alice", "Wrong-Horse-42").await).await;
            reply.assert_error(StatusCode::UNAUTHORIZED, "invalid_credentials");
        }
        let reply = Reply::of(app.login("alice", PASSWORD).await).await;
        assert_eq!(
            reply.status,
            StatusCode::OK,
            "round {round}: two failures then success: {}",
            reply.text
        );
    }
}

#[tokio::test]
async fn a_lockout_of_one_account_leaves_other_accounts_alone() {
    let app = spawn_app_with(|s| s.login_max_failures = 2).await;
    app.register_user("alice").await;
    app.register_user("bob").await;

    for _ in 0..2 {
        Reply::of(app.login("alice", "Wrong-Horse-42").await)
            .await
            .assert_status(StatusCode::UNAUTHORIZED);
    }
    assert_locked(&Reply::of(app.login("alice", PASSWORD).await).await, 900);

    let bob = Reply::of(app.login("bob", PASSWORD).await).await;
    bob.assert_status(StatusCode::OK);
}

#[tokio::test]
async fn a_lockout_is_written_to_the_audit_log() {
    let app = spawn_app_with(|s| s.login_max_failures = 2).await;
    let alice = app.register_user("alice").await;

    for _ in 0..2 {
        Reply::of(app.login("alice", "Wrong-Horse-42").await)
            .await
            .assert_status(StatusCode::UNAUTHORIZED);
    }
    assert_locked(&Reply::of(app.login("alice", PASSWORD).await).await, 900);

    let failures = app
        .store
        .list_audit_entries(Some("login_failed"), 10)
        .await
        .expect("audit entries");
    assert!(
        failures.len() >= 2,
        "each failed login is audited: {failures:?}"
    );
    let lockouts = app
        .store
        .list_audit_entries(Some("lockout"), 10)
        .await
        .expect("audit entries");
    assert!(
        lockouts
            .iter()
            .any(|e| e.target_id.as_deref() == alice.user["id"].as_str()
                || e.actor_id.map(|id| id.to_string()).as_deref() == alice.user["id"].as_str()),
        "a lockout entry names alice: {lockouts:?}"
    );
}

#[tokio::test]
async fn a_lock_expires_after_the_lockout_period() {
    let app = spawn_app_with(|s| {
        s.login_max_failures = 2;
        s.login_lockout_secs = 1;
    })
    .await;
    app.register_user("alice").await;
    for _ in 0..2 {
        Reply::of(app.login("alice", "Wrong-Horse-42").await)
            .await
            .assert_status(StatusCode::UNAUTHORIZED);
    }
    assert_locked(&Reply::of(app.login("alice", PASSWORD).await).await, 1);

    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;

    Reply::of(app.login("alice", PASSWORD).await)
        .await
        .assert_status(StatusCode::OK);
}

#[tokio::test]
async fn unknown_logins_are_counted_case_insensitively() {
    let app = spawn_app_with(|s| s.login_max_failures = 3).await;

    for login in ["ghost", "GHOST", "Ghost"] {
        Reply::of(app.login(login, "Wrong-Horse-42").await)
            .await
            .assert_error(StatusCode::UNAUTHORIZED, "invalid_credentials");
    }

    assert_locked(
        &Reply::of(app.login("gHoSt", "Wrong-Horse-42").await).await,
        900,
    );
}

/// Sets alice's status directly in the store, as `parley user` or an admin
/// would.
async fn set_status(app: &crate::helpers::TestApp, user: &serde_json::Value, status: UserStatus) {
    let id: UserId = user["id"]
        .as_str()
        .expect("user id")
        .parse()
        .expect("user ids are UUIDs");
    app.store
        .update_user_role_status(id, None, Some(status), chrono::Utc::now())
        .await
        .expect("status updated");
}

#[tokio::test]
async fn a_suspended_user_cannot_log_in() {
    let app = spawn_app().await;
    let alice = app.register_user("alice").await;
    set_status(&app, &alice.user, UserStatus::Suspended).await;

    let reply = Reply::of(app.login("alice", PASSWORD).await).await;

    reply.assert_error(StatusCode::FORBIDDEN, "account_suspended");
}

#[tokio::test]
async fn a_banned_user_cannot_log_in() {
    let app = spawn_app().await;
    let alice = app.register_user("alice").await;
    set_status(&app, &alice.user, UserStatus::Banned).await;

    let reply = Reply::of(app.login("alice", PASSWORD).await).await;

    reply.assert_error(StatusCode::FORBIDDEN, "account_banned");
}

#[tokio::test]
async fn a_suspended_user_with_the_wrong_password_learns_nothing_about_the_account() {
    let app = spawn_app().await;
    let alice = app.register_user("alice").await;
    set_status(&app, &alice.user, UserStatus::Suspended).await;

    let reply = Reply::of(app.login("alice", "Wrong-Horse-42").await).await;

    reply.assert_error(StatusCode::UNAUTHORIZED, "invalid_credentials");
}

#[tokio::test]
async fn a_totp_code_is_a_known_login_field_and_ignored_without_2fa() {
    let app = spawn_app().await;
    app.register_user("alice").await;

    let body = json!({"login": "alice", "password": PASSWORD, "totp_code": "123456"});
    let reply = Reply::of(app.post_json("/auth/login", &body).await).await;

    reply.assert_status(StatusCode::OK);
}

#[tokio::test]
async fn a_burst_of_concurrent_wrong_passwords_still_locks_the_account() {
    let app = spawn_app_with(|s| s.login_max_failures = 3).await;
    app.register_user("alice").await;

    let attempts =
        (0..10).map(|_| async { Reply::of(app.login("alice", "Wrong-Horse-42").await).await });
    let replies = futures_util::future::join_all(attempts).await;

    for reply in &replies {
        assert!(
            reply.status == StatusCode::UNAUTHORIZED || reply.status == StatusCode::LOCKED,
            "401 or 423 during the burst: {} {}",
            reply.status,
            reply.text
        );
    }
    assert_locked(&Reply::of(app.login("alice", PASSWORD).await).await, 900);
}

#[tokio::test]
async fn a_locked_known_account_and_a_locked_unknown_login_look_alike() {
    let app = spawn_app_with(|s| s.login_max_failures = 2).await;
    app.register_user("alice").await;
    for login in ["alice", "alice", "ghost", "ghost"] {
        Reply::of(app.login(login, "Wrong-Horse-42").await)
            .await
            .assert_status(StatusCode::UNAUTHORIZED);
    }

    let known = Reply::of(app.login("alice", "Wrong-Horse-42").await).await;
    let unknown = Reply::of(app.login("ghost", "Wrong-Horse-42").await).await;

    assert_locked(&known, 900);
    assert_locked(&unknown, 900);
    assert_eq!(
        known.body["error"]["message"],
        unknown.body["error"]["message"]
    );
    let keys = |r: &Reply| {
        r.body["error"]["details"]
            .as_object()
            .map(|d| d.keys().cloned().collect::<Vec<_>>())
    };
    assert_eq!(keys(&known), keys(&unknown), "the same details");
}
