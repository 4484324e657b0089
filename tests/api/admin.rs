//! `/admin/*`: who may call it, the user list, role and status changes
//! (the last admin stays), sessions of any user, and the audit entries
//! each action writes.

use std::time::Duration;

use parley_actors::domain::{Role, UserId};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::chat::{call, items, patch_json, post_message, public_room, spawn_chat_app, uid};
use crate::helpers::{PASSWORD, TestApp, Tokens};
use crate::ws_client::WsClient;

/// Gives `who` a role through the store (setup only, as `parley user
/// create --admin` would); what is under test goes through the API.
async fn set_role(app: &TestApp, who: &Tokens, role: Role) {
    let id: UserId = uid(who).parse().expect("a user id");
    app.store
        .update_user_role_status(id, Some(role), None, chrono::Utc::now())
        .await
        .expect("set the role");
}

/// The newest audit entry with `action`, as JSON-ish parts.
async fn last_audit(app: &TestApp, action: &str) -> parley_actors::store::AuditEntry {
    app.store
        .list_audit_entries(Some(action), 1)
        .await
        .expect("read the audit log")
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("no `{action}` audit entry"))
}

/// Every admin route with a method and a body, for the access checks.
fn admin_routes(target_user: &str, target_session: &str) -> Vec<(Method, String, Option<Value>)> {
    vec![
        (Method::GET, "/admin/users".to_owned(), None),
        (
            Method::PATCH,
            format!("/admin/users/{target_user}"),
            Some(json!({"status": "banned"})),
        ),
        (
            Method::GET,
            format!("/admin/sessions?user_id={target_user}"),
            None,
        ),
        (
            Method::DELETE,
            format!("/admin/sessions/{target_session}"),
            None,
        ),
        (Method::GET, "/admin/audit".to_owned(), None),
    ]
}

#[tokio::test]
async fn every_admin_route_answers_403_to_users_and_moderators_and_401_without_a_token() {
    let app = spawn_chat_app().await;
    let admin = app.register_user("root").await;
    set_role(&app, &admin, Role::Admin).await;
    let user = app.register_user("alice").await;
    let moderator = app.register_user("mod").await;
    set_role(&app, &moderator, Role::Moderator).await;
    let victim = app.register_user("bob").await;

    for (method, path, body) in admin_routes(&uid(&victim), &victim.session_id) {
        for (who, token) in [("user", &user.access), ("moderator", &moderator.access)] {
            let reply = call(&app, method.clone(), &path, token, body.as_ref()).await;
            reply.assert_error(StatusCode::FORBIDDEN, "forbidden");
            assert!(
                reply.body["error"]["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("admin")),
                "{who} {method} {path}: {}",
                reply.body
            );
        }
        let mut request = app.client.request(method.clone(), app.api_url(&path));
        if let Some(body) = &body {
            request = request.json(body);
        }
        let status = request.send().await.expect("request sent").status();
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {path}");
    }
    // Nothing happened to bob: his session still works.
    assert_eq!(app.profile_status(&victim.access).await, StatusCode::OK);

    // An admin demoted to moderator loses access at once, with the same token.
    let second = app.register_user("second").await;
    set_role(&app, &second, Role::Admin).await;
    call(&app, Method::GET, "/admin/users", &second.access, None)
        .await
        .assert_status(StatusCode::OK);
    patch_json(
        &app,
        &format!("/admin/users/{}", uid(&second)),
        &admin.access,
        &json!({"role": "moderator"}),
    )
    .await
    .assert_status(StatusCode::OK);
    call(&app, Method::GET, "/admin/users", &second.access, None)
        .await
        .assert_error(StatusCode::FORBIDDEN, "forbidden");
}

#[tokio::test]
async fn the_user_list_filters_pages_and_shows_activity() {
    let app = spawn_chat_app().await;
    let admin = app.register_user("root").await;
    set_role(&app, &admin, Role::Admin).await;
    let anna = app.register_user("anna").await;
    let _anna_phone = app.login_ok("anna", PASSWORD).await;
    let annabel = app.register_user("annabel").await;
    let bob = app.register_user("bob").await;
    let room = public_room(&app, &anna, "general").await;
    for i in 0..3 {
        post_message(&app, &anna.access, &room, &format!("hello {i}")).await;
    }
    let _ws = WsClient::connect(&app, &anna.access).await;
    patch_json(
        &app,
        &format!("/admin/users/{}", uid(&bob)),
        &admin.access,
        &json!({"status": "suspended"}),
    )
    .await
    .assert_status(StatusCode::OK);

    let list = |query: &'static str| {
        let app = &app;
        let token = admin.access.clone();
        async move {
            call(
                app,
                Method::GET,
                &format!("/admin/users{query}"),
                &token,
                None,
            )
            .await
        }
    };
    let names = |list: &[Value]| -> Vec<String> {
        list.iter()
            .map(|u| u["username"].as_str().expect("a username").to_owned())
            .collect()
    };

    let all = items(&list("").await);
    assert_eq!(names(&all), ["anna", "annabel", "bob", "root"]);
    let anna_row = &all[0];
    assert_eq!(anna_row["id"], uid(&anna));
    assert_eq!(anna_row["email"], "anna@example.com");
    assert_eq!(anna_row["messages"], 3, "{anna_row}");
    assert_eq!(anna_row["sessions"], 2, "{anna_row}");
    assert_eq!(anna_row["live_sockets"], 1, "{anna_row}");
    assert!(anna_row["last_seen_at"].is_string(), "{anna_row}");
    let bob_row = &all[2];
    assert_eq!(bob_row["status"], "suspended");
    assert_eq!(bob_row["sessions"], 0, "suspension revoked bob's sessions");
    assert_eq!(bob_row["messages"], 0);
    assert!(
        anna_row.get("password_hash").is_none(),
        "no secrets: {anna_row}"
    );

    assert_eq!(names(&items(&list("?q=ANN").await)), ["anna", "annabel"]);
    assert_eq!(names(&items(&list("?q=bob%40example").await)), ["bob"]);
    assert_eq!(
        names(&items(&list("?q=%25").await)),
        Vec::<String>::new(),
        "`%` is taken literally"
    );
    assert_eq!(names(&items(&list("?status=suspended").await)), ["bob"]);
    assert_eq!(names(&items(&list("?role=admin").await)), ["root"]);
    assert_eq!(
        names(&items(&list("?q=ann&status=active&role=user").await)),
        ["anna", "annabel"]
    );

    // Pages of two, then the rest.
    let first = list("?limit=2").await;
    assert_eq!(names(&items(&first)), ["anna", "annabel"]);
    let cursor = first.body["next_cursor"]
        .as_str()
        .expect("a next cursor")
        .to_owned();
    assert_eq!(cursor, uid(&annabel));
    let second = call(
        &app,
        Method::GET,
        &format!("/admin/users?limit=2&cursor={cursor}"),
        &admin.access,
        None,
    )
    .await;
    assert_eq!(names(&items(&second)), ["bob", "root"]);
    assert!(second.body["next_cursor"].is_null(), "{}", second.body);

    for (query, field) in [
        ("?status=gone", "status"),
        ("?role=owner", "role"),
        ("?limit=0", "limit"),
        ("?cursor=nope", "cursor"),
    ] {
        let reply = list(query).await;
        let error = reply.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        assert!(
            error["details"]["fields"].get(field).is_some(),
            "{query}: {error}"
        );
    }
    let long = format!("/admin/users?q={}", "a".repeat(101));
    call(&app, Method::GET, &long, &admin.access, None)
        .await
        .assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
}

#[tokio::test]
async fn the_last_active_admin_cannot_be_demoted_suspended_or_banned() {
    let app = spawn_chat_app().await;
    let root = app.register_user("root").await;
    set_role(&app, &root, Role::Admin).await;
    let path = format!("/admin/users/{}", uid(&root));

    for body in [
        json!({"role": "user"}),
        json!({"role": "moderator"}),
        json!({"status": "suspended"}),
        json!({"status": "banned"}),
        json!({"role": "admin", "status": "banned"}),
    ] {
        let reply = patch_json(&app, &path, &root.access, &body).await;
        reply.assert_error(StatusCode::CONFLICT, "last_admin");
    }
    // A change that keeps them an active admin is fine.
    let reply = patch_json(&app, &path, &root.access, &json!({"role": "admin"})).await;
    reply.assert_status(StatusCode::OK);
    assert_eq!(reply.body["role"], "admin");

    // With a second admin, the first may step down; then the second is
    // the last one.
    let second = app.register_user("second").await;
    patch_json(
        &app,
        &format!("/admin/users/{}", uid(&second)),
        &root.access,
        &json!({"role": "admin"}),
    )
    .await
    .assert_status(StatusCode::OK);
    let reply = patch_json(&app, &path, &root.access, &json!({"role": "user"})).await;
    reply.assert_status(StatusCode::OK);
    assert_eq!(reply.body["role"], "user");
    patch_json(
        &app,
        &format!("/admin/users/{}", uid(&second)),
        &second.access,
        &json!({"status": "banned"}),
    )
    .await
    .assert_error(StatusCode::CONFLICT, "last_admin");

    // The step-down is audited with the old and new values.
    let entry = last_audit(&app, "admin_user_update").await;
    assert_eq!(entry.actor_id.map(|id| id.to_string()), Some(uid(&root)));
    assert_eq!(entry.target_type.as_deref(), Some("user"));
    assert_eq!(entry.target_id, Some(uid(&root)));
    assert_eq!(entry.details["old"]["role"], "admin", "{}", entry.details);
    assert_eq!(entry.details["new"]["role"], "user", "{}", entry.details);
    assert_eq!(entry.details["old"]["status"], "active");
    assert_eq!(entry.details["new"]["status"], "active");
    assert!(entry.ip.is_some(), "the audit entry has the caller's IP");
}

#[tokio::test]
async fn changing_a_user_validates_the_body_and_audits_old_and_new_values() {
    let app = spawn_chat_app().await;
    let root = app.register_user("root").await;
    set_role(&app, &root, Role::Admin).await;
    let bob = app.register_user("bob").await;
    let path = format!("/admin/users/{}", uid(&bob));

    patch_json(&app, &path, &root.access, &json!({"status": "gone"}))
        .await
        .assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    patch_json(&app, &path, &root.access, &json!({"role": "owner"}))
        .await
        .assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    patch_json(&app, &path, &root.access, &json!({"colour": "red"}))
        .await
        .assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    patch_json(
        &app,
        "/admin/users/00000000-0000-0000-0000-000000000000",
        &root.access,
        &json!({"status": "banned"}),
    )
    .await
    .assert_error(StatusCode::NOT_FOUND, "not_found");
    patch_json(
        &app,
        "/admin/users/not-an-id",
        &root.access,
        &json!({"status": "banned"}),
    )
    .await
    .assert_error(StatusCode::NOT_FOUND, "not_found");

    let reply = patch_json(
        &app,
        &path,
        &root.access,
        &json!({"role": "moderator", "status": "suspended"}),
    )
    .await;
    reply.assert_status(StatusCode::OK);
    assert_eq!(reply.body["role"], "moderator");
    assert_eq!(reply.body["status"], "suspended");
    let entry = last_audit(&app, "admin_user_update").await;
    assert_eq!(entry.target_id, Some(uid(&bob)));
    assert_eq!(
        entry.details["old"],
        json!({"role": "user", "status": "active"})
    );
    assert_eq!(
        entry.details["new"],
        json!({"role": "moderator", "status": "suspended"})
    );
    assert_eq!(entry.details["revoked_sessions"], 1);
}

#[tokio::test]
async fn an_admin_lists_and_revokes_any_users_sessions_and_the_socket_closes_with_4003() {
    let app = spawn_chat_app().await;
    let root = app.register_user("root").await;
    set_role(&app, &root, Role::Admin).await;
    let laptop = app.register_user("alice").await;
    let phone = app.login_ok("alice", PASSWORD).await;
    let mut laptop_ws = WsClient::connect(&app, &laptop.access).await;
    let mut phone_ws = WsClient::connect(&app, &phone.access).await;

    let listed = call(
        &app,
        Method::GET,
        &format!("/admin/sessions?user_id={}", uid(&laptop)),
        &root.access,
        None,
    )
    .await;
    let sessions = items(&listed);
    let ids: Vec<&str> = sessions.iter().filter_map(|s| s["id"].as_str()).collect();
    assert_eq!(
        ids,
        [phone.session_id.as_str(), laptop.session_id.as_str()],
        "newest first"
    );
    assert!(sessions.iter().all(|s| s["user_id"] == uid(&laptop)));
    assert!(sessions.iter().all(|s| s["created_at"].is_string()));

    app.delete_authed(
        &format!("/admin/sessions/{}", phone.session_id),
        &root.access,
    )
    .await
    .assert_status(StatusCode::NO_CONTENT);
    assert_eq!(
        phone_ws.close_code_within(Duration::from_secs(1)).await,
        Some(4003)
    );
    assert_eq!(
        laptop_ws.request(json!({"type": "ping"})).await["type"],
        "pong",
        "the other session's socket stays"
    );
    assert_eq!(
        app.profile_status(&phone.access).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.refresh(&phone.refresh).await.status,
        StatusCode::UNAUTHORIZED
    );

    let entry = last_audit(&app, "admin_session_revoke").await;
    assert_eq!(entry.actor_id.map(|id| id.to_string()), Some(uid(&root)));
    assert_eq!(entry.target_type.as_deref(), Some("session"));
    assert_eq!(entry.target_id.as_deref(), Some(phone.session_id.as_str()));
    assert_eq!(entry.details["user_id"], uid(&laptop));
    assert_eq!(entry.details["old"]["revoked"], false);
    assert_eq!(entry.details["new"]["revoked"], true);

    // Gone from the list; a second revoke, an unknown or a malformed id: 404.
    let listed = call(
        &app,
        Method::GET,
        &format!("/admin/sessions?user_id={}", uid(&laptop)),
        &root.access,
        None,
    )
    .await;
    assert_eq!(items(&listed).len(), 1);
    for id in [
        phone.session_id.as_str(),
        "00000000-0000-0000-0000-000000000000",
        "nope",
    ] {
        app.delete_authed(&format!("/admin/sessions/{id}"), &root.access)
            .await
            .assert_error(StatusCode::NOT_FOUND, "not_found");
    }

    // `user_id` is required and must name a user.
    for (query, status) in [
        ("", StatusCode::UNPROCESSABLE_ENTITY),
        ("?user_id=nope", StatusCode::UNPROCESSABLE_ENTITY),
        (
            "?user_id=00000000-0000-0000-0000-000000000000",
            StatusCode::NOT_FOUND,
        ),
    ] {
        let reply = call(
            &app,
            Method::GET,
            &format!("/admin/sessions{query}"),
            &root.access,
            None,
        )
        .await;
        reply.assert_status(status);
        reply.assert_envelope();
    }
}

#[tokio::test]
async fn the_audit_log_lists_admin_actions_with_filters_and_pages() {
    let app = spawn_chat_app().await;
    let root = app.register_user("root").await;
    set_role(&app, &root, Role::Admin).await;
    let bob = app.register_user("bob").await;
    let carol = app.register_user("carol").await;
    let before = chrono::Utc::now() - chrono::Duration::seconds(1);
    for (who, status) in [(&bob, "suspended"), (&carol, "banned")] {
        let reply = app
            .client
            .patch(app.api_url(&format!("/admin/users/{}", uid(who))))
            .bearer_auth(&root.access)
            .header("x-request-id", format!("req-{status}"))
            .json(&json!({"status": status}))
            .send()
            .await
            .expect("request sent");
        assert_eq!(reply.status(), StatusCode::OK);
    }
    let get = |query: String| {
        let app = &app;
        let token = root.access.clone();
        async move {
            call(
                app,
                Method::GET,
                &format!("/admin/audit{query}"),
                &token,
                None,
            )
            .await
        }
    };

    let updates = items(&get("?action=admin_user_update".to_owned()).await);
    assert_eq!(updates.len(), 2, "{updates:?}");
    let newest = &updates[0];
    assert_eq!(newest["target_id"], uid(&carol), "newest first");
    assert_eq!(newest["target_type"], "user");
    assert_eq!(newest["actor_id"], uid(&root));
    assert_eq!(newest["request_id"], "req-banned");
    assert!(newest["ip"].is_string(), "{newest}");
    assert!(newest["at"].is_string(), "{newest}");
    assert_eq!(newest["details"]["old"]["status"], "active");
    assert_eq!(newest["details"]["new"]["status"], "banned");

    let about_bob = items(&get(format!("?target_id={}", uid(&bob))).await);
    assert!(
        about_bob
            .iter()
            .any(|e| e["action"] == "admin_user_update" && e["request_id"] == "req-suspended"),
        "{about_bob:?}"
    );
    assert!(about_bob.iter().all(|e| e["target_id"] == uid(&bob)));
    let by_root = items(&get(format!("?actor_id={}&action=admin_user_update", uid(&root))).await);
    assert_eq!(by_root.len(), 2);
    let by_bob = items(&get(format!("?actor_id={}&action=admin_user_update", uid(&bob))).await);
    assert!(by_bob.is_empty());

    let from = before.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let in_window = items(&get(format!("?action=admin_user_update&from={from}")).await);
    assert_eq!(in_window.len(), 2);
    let earlier = items(&get(format!("?action=admin_user_update&to={from}")).await);
    assert!(earlier.is_empty(), "{earlier:?}");

    let first = get("?action=admin_user_update&limit=1".to_owned()).await;
    assert_eq!(items(&first)[0]["target_id"], uid(&carol));
    let cursor = first.body["next_cursor"]
        .as_str()
        .expect("a cursor")
        .to_owned();
    let second = get(format!("?action=admin_user_update&limit=1&cursor={cursor}")).await;
    assert_eq!(items(&second)[0]["target_id"], uid(&bob));
    assert!(second.body["next_cursor"].is_null());

    for (query, field) in [
        ("?from=yesterday", "from"),
        ("?to=2026-13-01T00:00:00Z", "to"),
        ("?actor_id=nope", "actor_id"),
        ("?cursor=nope", "cursor"),
    ] {
        let reply = get(query.to_owned()).await;
        let error = reply.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        assert!(
            error["details"]["fields"].get(field).is_some(),
            "{query}: {error}"
        );
    }
}
