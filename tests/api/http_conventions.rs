//! Conventions every endpoint shares: request ids, the error envelope,
//! body parsing errors, security headers, CORS and not leaking internals.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{PASSWORD, Reply, assert_no_internals, spawn_app, spawn_app_with};

#[tokio::test]
async fn every_response_carries_a_request_id_and_errors_repeat_it() {
    let app = spawn_app().await;
    let alice = app.register_user("alice").await;

    let ok = app.get_authed("/users/profile", &alice.access).await;
    let health = app.get_ops("/health").await;
    let not_found = app.get_api("/no-such-thing").await;
    let unauthorized = app.get_api("/users/profile").await;

    for reply in [&ok, &health, &not_found, &unauthorized] {
        let id = reply
            .header("x-request-id")
            .unwrap_or_else(|| panic!("X-Request-Id on a {}", reply.status));
        assert!(!id.is_empty());
    }
    // `assert_error` checks that `request_id` equals the header.
    not_found.assert_error(StatusCode::NOT_FOUND, "not_found");
    unauthorized.assert_error(StatusCode::UNAUTHORIZED, "unauthenticated");
    assert_ne!(
        ok.header("x-request-id"),
        health.header("x-request-id"),
        "generated ids are unique"
    );
}

#[tokio::test]
async fn a_request_id_sent_by_the_client_is_echoed_back() {
    let app = spawn_app().await;

    let ok = app
        .client
        .get(format!("{}/health", app.base))
        .header("x-request-id", "parley-test-0001")
        .send()
        .await
        .expect("request sent");
    let ok = Reply::of(ok).await;
    let err = app
        .client
        .post(app.api_url("/auth/login"))
        .header("x-request-id", "parley-test-0002")
        .json(&json!({"login": "nobody", "password": PASSWORD}))
        .send()
        .await
        .expect("request sent");
    let err = Reply::of(err).await;

    assert_eq!(ok.header("x-request-id"), Some("parley-test-0001"));
    err.assert_error(StatusCode::UNAUTHORIZED, "invalid_credentials");
    assert_eq!(err.header("x-request-id"), Some("parley-test-0002"));
    assert_eq!(err.body["request_id"], "parley-test-0002");
}

/// POSTs `body` with `content_type` (none when `None`) to the register route.
async fn post_raw(
    app: &crate::helpers::TestApp,
    content_type: Option<&str>,
    body: impl Into<reqwest::Body>,
) -> Reply {
    post_raw_to(app, "/auth/register", content_type, body).await
}

/// POSTs `body` with `content_type` (none when `None`) to an API path.
async fn post_raw_to(
    app: &crate::helpers::TestApp,
    path: &str,
    content_type: Option<&str>,
    body: impl Into<reqwest::Body>,
) -> Reply {
    let mut request = app.client.post(app.api_url(path)).body(body);
    if let Some(content_type) = content_type {
        request = request.header("content-type", content_type);
    }
    Reply::of(request.send().await.expect("request sent")).await
}

#[tokio::test]
async fn malformed_json_is_a_400() {
    let app = spawn_app().await;

    for broken in [
        r#"{"username": "alice", "#,
        "not json at all",
        r#"{"username": "alice",}"#,
    ] {
        let reply = post_raw(&app, Some("application/json"), broken).await;
        reply.assert_error(StatusCode::BAD_REQUEST, "malformed_json");
    }
}

#[tokio::test]
async fn a_json_endpoint_refuses_other_or_missing_content_types_with_415() {
    let app = spawn_app().await;
    let good = json!({"username": "alice", "email": "alice@example.com", "password": PASSWORD})
        .to_string();

    for content_type in [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        None,
    ] {
        let reply = post_raw(&app, content_type, good.clone()).await;
        reply.assert_error(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type");
    }
    // The same bytes as JSON are fine, with or without a charset.
    let reply = post_raw(&app, Some("application/json; charset=utf-8"), good).await;
    reply.assert_status(StatusCode::CREATED);
}

#[tokio::test]
async fn a_body_over_the_limit_is_a_413() {
    let app = spawn_app_with(|s| s.body_limit_bytes = 1024).await;

    let big = json!({
        "username": "alice",
        "email": "alice@example.com",
        "password": PASSWORD,
        "padding": "x".repeat(4096),
    })
    .to_string();
    let reply = post_raw(&app, Some("application/json"), big).await;

    reply.assert_error(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
    // A body under the limit still works.
    app.register("alice", "alice@example.com", PASSWORD).await;
}

#[tokio::test]
async fn the_default_body_limit_is_one_mebibyte() {
    let app = spawn_app().await;

    let big = format!(
        r#"{{"login": "{}", "password": "x"}}"#,
        "a".repeat(1_100_000)
    );
    let reply = Reply::of(
        app.client
            .post(app.api_url("/auth/login"))
            .header("content-type", "application/json")
            .body(big)
            .send()
            .await
            .expect("request sent"),
    )
    .await;

    reply.assert_error(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
}

#[tokio::test]
async fn an_unknown_api_route_is_a_404_in_the_envelope() {
    let app = spawn_app().await;

    for path in ["/nope", "/auth/nope", "/users/profile/extra"] {
        app.get_api(path)
            .await
            .assert_error(StatusCode::NOT_FOUND, "not_found");
    }
}

#[tokio::test]
async fn a_wrong_method_is_a_405_in_the_envelope() {
    let app = spawn_app().await;

    app.get_api("/auth/register")
        .await
        .assert_error(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
    let put = app
        .client
        .put(app.api_url("/auth/login"))
        .json(&json!({}))
        .send()
        .await
        .expect("request sent");
    Reply::of(put)
        .await
        .assert_error(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
}

#[tokio::test]
async fn responses_carry_the_security_headers() {
    let app = spawn_app().await;
    let alice = app.register_user("alice").await;

    let replies = [
        app.get_ops("/health").await,
        app.get_authed("/users/profile", &alice.access).await,
        app.get_api("/nope").await,
        app.get_api("/users/profile").await,
    ];

    for reply in &replies {
        let status = reply.status;
        assert!(
            reply
                .header("content-security-policy")
                .is_some_and(|v| !v.is_empty()),
            "CSP on a {status}"
        );
        assert_eq!(
            reply.header("x-content-type-options"),
            Some("nosniff"),
            "on a {status}"
        );
        assert!(
            reply
                .header("referrer-policy")
                .is_some_and(|v| !v.is_empty()),
            "Referrer-Policy on a {status}"
        );
        assert!(
            reply
                .header("x-frame-options")
                .is_some_and(|v| v.eq_ignore_ascii_case("deny")),
            "X-Frame-Options: DENY on a {status}"
        );
    }
}

#[tokio::test]
async fn json_responses_say_they_are_json() {
    let app = spawn_app().await;
    let alice = app.register_user("alice").await;

    for reply in [
        app.get_authed("/users/profile", &alice.access).await,
        app.get_api("/users/profile").await,
    ] {
        assert!(
            reply
                .header("content-type")
                .is_some_and(|v| v.starts_with("application/json")),
            "Content-Type on a {}: {:?}",
            reply.status,
            reply.header("content-type")
        );
    }
}

const ALLOWED: &str = "https://chat.example.com";

#[tokio::test]
async fn cors_echoes_an_allowed_origin_on_preflight_and_on_requests() {
    let app = spawn_app_with(|s| {
        s.cors_allowed_origins = format!("{ALLOWED},https://other.example.com");
    })
    .await;

    let preflight = app
        .client
        .request(Method::OPTIONS, app.api_url("/auth/login"))
        .header("origin", ALLOWED)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "content-type,authorization",
        )
        .send()
        .await
        .expect("request sent");
    let preflight = Reply::of(preflight).await;
    assert!(
        preflight.status.is_success(),
        "preflight: {}",
        preflight.status
    );
    assert_eq!(
        preflight.header("access-control-allow-origin"),
        Some(ALLOWED)
    );

    let get = app
        .client
        .get(format!("{}/health", app.base))
        .header("origin", ALLOWED)
        .send()
        .await
        .expect("request sent");
    let get = Reply::of(get).await;
    assert_eq!(get.header("access-control-allow-origin"), Some(ALLOWED));
}

#[tokio::test]
async fn cors_gives_an_unlisted_origin_no_allow_origin_header() {
    let app = spawn_app_with(|s| s.cors_allowed_origins = ALLOWED.to_owned()).await;

    let preflight = app
        .client
        .request(Method::OPTIONS, app.api_url("/auth/login"))
        .header("origin", "https://evil.example.net")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .expect("request sent");
    let preflight = Reply::of(preflight).await;
    let get = app
        .client
        .get(format!("{}/health", app.base))
        .header("origin", "https://evil.example.net")
        .send()
        .await
        .expect("request sent");
    let get = Reply::of(get).await;

    for reply in [&preflight, &get] {
        assert_eq!(
            reply.header("access-control-allow-origin"),
            None,
            "no ACAO for an unlisted origin ({})",
            reply.status
        );
    }
}

#[tokio::test]
async fn error_bodies_never_show_internals() {
    let app = spawn_app().await;
    let alice = app.register_user("alice").await;

    let replies = vec![
        app.try_register("alice", "alice@example.com", PASSWORD)
            .await,
        app.try_register("a", "b", "c").await,
        Reply::of(app.login("alice", "Wrong-Horse-42").await).await,
        post_raw(&app, Some("application/json"), "{not json").await,
        post_raw(&app, Some("text/plain"), "{}").await,
        app.get_api("/nope").await,
        app.get_api("/users/profile").await,
        app.get_authed("/users/profile", "x.y.z").await,
        app.refresh("garbage").await,
        app.delete_authed("/sessions/not-a-uuid", &alice.access)
            .await,
        app.get_authed("/sessions?limit=0", &alice.access).await,
    ];

    for reply in &replies {
        assert!(
            reply.status.is_client_error(),
            "{} {}",
            reply.status,
            reply.text
        );
        reply.assert_envelope();
        assert_no_internals(reply, app._tmp.path());
    }
}

#[tokio::test]
async fn a_database_outage_is_a_5xx_without_internals() {
    let app = spawn_app().await;
    let alice = app.register_user("alice").await;
    app.store.close().await;

    let replies = [
        app.try_register("bob", "bob@example.com", PASSWORD).await,
        Reply::of(app.login("alice", PASSWORD).await).await,
        app.refresh(&alice.refresh).await,
        app.get_authed("/sessions", &alice.access).await,
    ];

    for reply in &replies {
        assert!(
            reply.status == StatusCode::INTERNAL_SERVER_ERROR
                || reply.status == StatusCode::SERVICE_UNAVAILABLE,
            "500 or 503 while the database is gone, got {}: {}",
            reply.status,
            reply.text
        );
        reply.assert_envelope();
        assert_no_internals(reply, app._tmp.path());
    }
}

#[tokio::test]
async fn every_json_endpoint_names_an_unknown_field() {
    let app = spawn_app().await;
    let alice = app.register_user("alice").await;

    let public = [
        (
            "/auth/register",
            json!({"username": "bob", "email": "bob@example.com", "password": PASSWORD, "extra": 1}),
        ),
        (
            "/auth/login",
            json!({"login": "alice", "password": PASSWORD, "extra": 1}),
        ),
        (
            "/auth/refresh",
            json!({"refresh_token": alice.refresh, "extra": 1}),
        ),
    ];
    let mut replies = Vec::new();
    for (path, body) in &public {
        replies.push((*path, Reply::of(app.post_json(path, body).await).await));
    }
    let password =
        json!({"current_password": PASSWORD, "new_password": "Battery-Staple-77", "extra": 1});
    replies.push((
        "/auth/password",
        app.post_json_authed("/auth/password", &alice.access, &password)
            .await,
    ));

    for (path, reply) in &replies {
        let error = reply.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        assert_eq!(
            error["details"]["fields"]["extra"]["code"], "unknown_field",
            "{path}: {}",
            reply.text
        );
    }
    // Nothing happened: the refresh token was not spent, the password not changed.
    app.refresh(&alice.refresh)
        .await
        .assert_status(StatusCode::OK);
    app.login_ok("alice", PASSWORD).await;
}

#[tokio::test]
async fn a_body_that_is_not_a_json_object_is_a_422_and_stores_nothing() {
    let app = spawn_app().await;

    // Register's fields in declaration order: serde alone would accept it.
    let array = json!(["alice", "alice@example.com", PASSWORD]).to_string();
    let reply = post_raw(&app, Some("application/json"), array).await;

    let error = reply.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert_eq!(
        error["details"]["fields"]["body"]["code"], "invalid_type",
        "{}",
        reply.text
    );
    Reply::of(app.login("alice", PASSWORD).await)
        .await
        .assert_status(StatusCode::UNAUTHORIZED);
    for other in ["\"alice\"", "7", "null"] {
        post_raw(&app, Some("application/json"), other)
            .await
            .assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    }
}

#[tokio::test]
async fn an_empty_refresh_body_names_the_required_field() {
    let app = spawn_app().await;

    let reply = Reply::of(app.post_json("/auth/refresh", &json!({})).await).await;

    let error = reply.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert_eq!(
        error["details"]["fields"]["refresh_token"]["code"], "required",
        "{}",
        reply.text
    );
}

#[tokio::test]
async fn error_responses_from_every_layer_carry_the_security_headers() {
    let app = spawn_app_with(|s| {
        s.body_limit_bytes = 1024;
        s.register_per_minute = 1;
    })
    .await;
    app.register_user("alice").await;

    // To login where it can: register's one-a-minute budget is spent on alice.
    let too_large = post_raw_to(
        &app,
        "/auth/login",
        Some("application/json"),
        format!(r#"{{"x": "{}"}}"#, "y".repeat(4096)),
    )
    .await;
    let limited = app.try_register("bob", "bob@example.com", PASSWORD).await;
    let wrong_method = app.get_api("/auth/login").await;
    let wrong_type = post_raw_to(&app, "/auth/login", Some("text/plain"), "{}").await;

    for (reply, status) in [
        (&too_large, StatusCode::PAYLOAD_TOO_LARGE),
        (&limited, StatusCode::TOO_MANY_REQUESTS),
        (&wrong_method, StatusCode::METHOD_NOT_ALLOWED),
        (&wrong_type, StatusCode::UNSUPPORTED_MEDIA_TYPE),
    ] {
        reply.assert_status(status);
        reply.assert_envelope();
        assert_eq!(
            reply.header("x-content-type-options"),
            Some("nosniff"),
            "on a {status}"
        );
        assert!(
            reply
                .header("x-frame-options")
                .is_some_and(|v| v.eq_ignore_ascii_case("deny")),
            "X-Frame-Options on a {status}"
        );
        assert!(
            reply.header("content-security-policy").is_some(),
            "CSP on a {status}"
        );
    }
}

#[tokio::test]
async fn a_cors_preflight_allows_the_authorization_header() {
    let app = spawn_app_with(|s| s.cors_allowed_origins = ALLOWED.to_owned()).await;

    let preflight = app
        .client
        .request(Method::OPTIONS, app.api_url("/sessions"))
        .header("origin", ALLOWED)
        .header("access-control-request-method", "DELETE")
        .header("access-control-request-headers", "authorization")
        .send()
        .await
        .expect("request sent");
    let preflight = Reply::of(preflight).await;

    assert_eq!(
        preflight.header("access-control-allow-origin"),
        Some(ALLOWED)
    );
    let headers = preflight
        .header("access-control-allow-headers")
        .unwrap_or_default()
        .to_ascii_lowercase();
    assert!(
        headers.contains("authorization") || headers == "*",
        "Authorization may be sent cross-origin: {headers:?}"
    );
    let methods = preflight
        .header("access-control-allow-methods")
        .unwrap_or_default()
        .to_ascii_uppercase();
    assert!(
        methods.contains("DELETE") || methods == "*",
        "DELETE is allowed: {methods:?}"
    );
}

#[tokio::test]
async fn a_405_lists_the_allowed_methods() {
    let app = spawn_app().await;

    let reply = app.get_api("/auth/login").await;

    reply.assert_error(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
    let allow = reply
        .header("allow")
        .unwrap_or_default()
        .to_ascii_uppercase();
    assert!(allow.contains("POST"), "Allow names POST: {allow:?}");
}

#[tokio::test]
async fn a_401_names_the_bearer_scheme() {
    let app = spawn_app().await;

    for reply in [
        app.get_api("/users/profile").await,
        app.get_authed("/users/profile", "x.y.z").await,
    ] {
        reply.assert_status(StatusCode::UNAUTHORIZED);
        assert!(
            reply
                .header("www-authenticate")
                .is_some_and(|v| v.to_ascii_lowercase().starts_with("bearer")),
            "WWW-Authenticate: Bearer on a 401: {:?}",
            reply.header("www-authenticate")
        );
    }
}

#[tokio::test]
async fn without_configured_origins_cors_allows_none() {
    let app = spawn_app().await;

    let reply = app
        .client
        .request(Method::OPTIONS, app.api_url("/auth/login"))
        .header("origin", ALLOWED)
        .header("access-control-request-method", "POST")
        .send()
        .await
        .expect("request sent");
    let reply = Reply::of(reply).await;

    assert_eq!(reply.header("access-control-allow-origin"), None);
}

#[tokio::test]
async fn an_empty_json_body_is_malformed() {
    let app = spawn_app().await;

    let reply = post_raw(&app, Some("application/json"), "").await;

    reply.assert_error(StatusCode::BAD_REQUEST, "malformed_json");
}

#[tokio::test]
async fn a_chunked_body_over_the_limit_is_a_413_too() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = spawn_app_with(|s| s.body_limit_bytes = 1024).await;

    // No Content-Length: the limit has to be enforced while streaming.
    let mut stream = tokio::net::TcpStream::connect(app.addr)
        .await
        .expect("connect");
    let head = format!(
        "POST /api/v1/auth/login HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        app.addr
    );
    stream.write_all(head.as_bytes()).await.expect("write head");
    let chunk = format!(r#"{{"login": "{}"#, "a".repeat(2000));
    // The server may answer and close before the whole body is sent.
    let mut sent = stream
        .write_all(format!("{:x}\r\n{chunk}\r\n", chunk.len()).as_bytes())
        .await;
    for _ in 0..3 {
        if sent.is_err() {
            break;
        }
        let filler = "b".repeat(2000);
        sent = stream
            .write_all(format!("{:x}\r\n{filler}\r\n", filler.len()).as_bytes())
            .await;
    }
    if sent.is_ok() {
        let end: &[u8] = b"\"}\r\n0\r\n\r\n";
        let tail = format!("{:x}\r\n", 2);
        if stream.write_all(tail.as_bytes()).await.is_ok() {
            // Best effort: the server may have closed its side already.
            drop(stream.write_all(end).await);
        }
    }
    let mut response = Vec::new();
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        stream.read_to_end(&mut response),
    )
    .await
    .expect("the server answers within 10 s");
    if let Err(e) = read {
        assert!(!response.is_empty(), "no response before the error: {e}");
    }

    let text = String::from_utf8_lossy(&response);
    let status_line = text.lines().next().unwrap_or_default();
    assert!(
        status_line.starts_with("HTTP/1.1 413"),
        "413 for a chunked body over the limit: {status_line:?}"
    );
    assert!(
        text.contains("payload_too_large"),
        "the envelope's code: {text}"
    );
}
