//! `spawn_app()` and the small vocabulary the tests speak: a running server,
//! typed access to its replies, and a tiny base64url codec for looking inside
//! JWTs.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use parley::{Application, Settings};
use parley_actors::store::Store;
use reqwest::StatusCode;
use reqwest::header::HeaderMap;
use serde_json::{Value, json};
use sqlx::Connection;

/// A password that satisfies every rule (length, classes, not common).
pub const PASSWORD: &str = "Correct-Horse-42";
/// Another good password, for password changes.
pub const NEW_PASSWORD: &str = "Battery-Staple-77";
/// The User-Agent every test client sends; sessions should remember it.
pub const USER_AGENT: &str = "parley-tests/1.0";

/// A server booted for one test, with its own database.
#[derive(Debug)]
pub struct TestApp {
    pub addr: SocketAddr,
    /// `http://addr`, for the operational routes (`/health`, `/metrics`, …).
    pub base: String,
    /// `http://addr/api/v1`.
    pub api: String,
    pub client: reqwest::Client,
    /// The server's store: `close()` makes the database "gone".
    pub store: Arc<dyn Store>,
    /// Where the SQLite file and JWT secret live; removed on drop.
    pub _tmp: tempfile::TempDir,
    /// The PostgreSQL database of this test, if any; dropped on drop.
    pub _db: Option<PgDatabase>,
}

/// The tokens from a register, login or refresh reply.
#[derive(Debug, Clone)]
pub struct Tokens {
    pub access: String,
    pub refresh: String,
    pub session_id: String,
    pub user: Value,
}

impl Tokens {
    /// Reads the token fields from a register/login/refresh body.
    pub fn from_body(body: &Value) -> Self {
        let text = |key: &str| {
            body[key]
                .as_str()
                .unwrap_or_else(|| panic!("`{key}` is a string in {body}"))
                .to_owned()
        };
        Self {
            access: text("access_token"),
            refresh: text("refresh_token"),
            session_id: text("session_id"),
            user: body["user"].clone(),
        }
    }
}

/// A reply read to the end: status, headers and the body as JSON (or
/// `Value::Null` when it is not JSON) plus the raw text.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
    pub text: String,
}

impl Reply {
    /// Reads a response to the end.
    pub async fn of(resp: reqwest::Response) -> Self {
        let status = resp.status();
        let headers = resp.headers().clone();
        let text = resp.text().await.expect("the response body is readable");
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Self {
            status,
            headers,
            body,
            text,
        }
    }

    /// A header's value as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| {
            v.to_str()
                .unwrap_or_else(|_| panic!("header {name} is not visible ASCII"))
        })
    }

    /// Panics, showing the body, unless the status is `expected`.
    #[track_caller]
    pub fn assert_status(&self, expected: StatusCode) -> &Self {
        assert_eq!(
            self.status, expected,
            "unexpected status; body: {}",
            self.text
        );
        self
    }

    /// Checks the contract's error envelope, the status and the code, and
    /// that `request_id` matches the `X-Request-Id` header. Returns the
    /// `error` object.
    #[track_caller]
    pub fn assert_error(&self, status: StatusCode, code: &str) -> &Value {
        self.assert_status(status);
        self.assert_envelope();
        assert_eq!(
            self.body["error"]["code"], code,
            "unexpected error code; body: {}",
            self.text
        );
        &self.body["error"]
    }

    /// Checks only the error envelope's shape (any status, any code).
    #[track_caller]
    pub fn assert_envelope(&self) -> &Value {
        let obj = self
            .body
            .as_object()
            .unwrap_or_else(|| panic!("error body is a JSON object: {:?}", self.text));
        for key in obj.keys() {
            assert!(
                key == "error" || key == "request_id",
                "unexpected top-level key `{key}` in {}",
                self.text
            );
        }
        let error = &self.body["error"];
        let code = error["code"]
            .as_str()
            .unwrap_or_else(|| panic!("error.code is a string: {}", self.text));
        assert!(
            !code.is_empty()
                && code
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
            "error.code is snake_case: {code}"
        );
        let message = error["message"]
            .as_str()
            .unwrap_or_else(|| panic!("error.message is a string: {}", self.text));
        assert!(!message.is_empty(), "error.message is not empty");
        if let Some(details) = error.get("details") {
            assert!(
                details.is_object() || details.is_null(),
                "error.details is an object: {}",
                self.text
            );
        }
        let request_id = self.body["request_id"]
            .as_str()
            .unwrap_or_else(|| panic!("request_id is a string: {}", self.text));
        assert_eq!(
            Some(request_id),
            self.header("x-request-id"),
            "request_id equals the X-Request-Id header"
        );
        error
    }

    /// The error object with `request_id` removed, for comparing two errors.
    pub fn without_request_id(&self) -> Value {
        let mut body = self.body.clone();
        if let Some(obj) = body.as_object_mut() {
            obj.remove("request_id");
        }
        body
    }

    /// A header that must be present and hold a non-negative integer.
    #[track_caller]
    pub fn int_header(&self, name: &str) -> u64 {
        let raw = self
            .header(name)
            .unwrap_or_else(|| panic!("header {name} is present (status {})", self.status));
        raw.trim()
            .parse()
            .unwrap_or_else(|_| panic!("header {name} is an integer: {raw:?}"))
    }
}

static TEST_LOG: OnceLock<()> = OnceLock::new();

/// Tests are quiet unless `TEST_LOG` is set; then they print the server's
/// logs (if the server installed a subscriber first, that one wins).
fn init_test_logging() {
    if std::env::var_os("TEST_LOG").is_none() {
        return;
    }
    TEST_LOG.get_or_init(|| {
        let filter = tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
        let installed = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_test_writer()
            .try_init();
        if let Err(e) = installed {
            // Another subscriber (the server's) is already global: fine.
            eprintln!("TEST_LOG: keeping the existing subscriber ({e})");
        }
    });
}

/// A PostgreSQL database made for one test, dropped with it.
#[derive(Debug)]
pub struct PgDatabase {
    admin_url: String,
    name: String,
}

impl PgDatabase {
    /// When `PARLEY_TEST_DATABASE_URL` points at a PostgreSQL server, creates
    /// a fresh database there.
    async fn create() -> Option<Self> {
        let admin_url = std::env::var("PARLEY_TEST_DATABASE_URL").ok()?;
        let name = format!("parley_t_{}", uuid::Uuid::new_v4().simple());
        let mut conn = sqlx::PgConnection::connect(&admin_url)
            .await
            .expect("connect to PARLEY_TEST_DATABASE_URL");
        // `name` is made of a fixed prefix and hex digits only.
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("create database {name}")))
            .execute(&mut conn)
            .await
            .expect("create a test database");
        conn.close().await.expect("close the admin connection");
        Some(Self { admin_url, name })
    }

    /// The URL the server should use.
    pub fn url(&self) -> String {
        with_database_name(&self.admin_url, &self.name)
    }
}

impl Drop for PgDatabase {
    /// Drops the database so runs do not pile up databases. `with (force)`
    /// ends the server's pooled connections. Runs on its own thread and
    /// runtime because `Drop` cannot await.
    fn drop(&mut self) {
        let (admin_url, name) = (self.admin_url.clone(), self.name.clone());
        let outcome = std::thread::spawn(move || -> Result<(), String> {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            runtime.block_on(async {
                let mut conn = sqlx::PgConnection::connect(&admin_url)
                    .await
                    .map_err(|e| e.to_string())?;
                sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                    "drop database if exists {name} with (force)"
                )))
                .execute(&mut conn)
                .await
                .map_err(|e| e.to_string())?;
                conn.close().await.map_err(|e| e.to_string())
            })
        })
        .join();
        match outcome {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("could not drop test database {}: {e}", self.name),
            Err(_) => eprintln!("dropping test database {} panicked", self.name),
        }
    }
}

/// `postgres://u@h:5432/x?opts` with the database part replaced by `name`.
fn with_database_name(url: &str, name: &str) -> String {
    let (head, query) = match url.split_once('?') {
        Some((head, query)) => (head, Some(query)),
        None => (url, None),
    };
    let scheme_end = head.find("://").map_or(0, |i| i + 3);
    let authority_and_path = &head[scheme_end..];
    let authority = authority_and_path
        .split_once('/')
        .map_or(authority_and_path, |(authority, _db)| authority);
    let mut out = format!("{}{authority}/{name}", &head[..scheme_end]);
    if let Some(query) = query {
        out.push('?');
        out.push_str(query);
    }
    out
}

/// Boots the server with default settings.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Boots the server after letting the test tune its settings.
pub async fn spawn_app_with(tune: impl FnOnce(&mut Settings)) -> TestApp {
    init_test_logging();
    let tmp = tempfile::tempdir().expect("a temp dir");
    let pg = PgDatabase::create().await;
    let mut settings = Settings {
        listen: "127.0.0.1:0".parse().expect("a socket address"),
        data_dir: tmp.path().to_path_buf(),
        database_url: pg.as_ref().map(PgDatabase::url),
        ..Settings::default()
    };
    tune(&mut settings);

    let app = Box::pin(Application::build(settings))
        .await
        .expect("the application builds");
    let addr = app.local_addr();
    let store = app.store();
    tokio::spawn(async move {
        if let Err(e) = app.run_until_stopped().await {
            eprintln!("server stopped with an error: {e:#}");
        }
    });

    let client = reqwest::Client::builder()
        .no_proxy()
        .user_agent(USER_AGENT)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(60))
        .build()
        .expect("a reqwest client");
    TestApp {
        addr,
        base: format!("http://{addr}"),
        api: format!("http://{addr}/api/v1"),
        client,
        store,
        _tmp: tmp,
        _db: pg,
    }
}

impl TestApp {
    /// `http://addr/api/v1{path}`.
    pub fn api_url(&self, path: &str) -> String {
        format!("{}{path}", self.api)
    }

    /// POST a JSON body to an API path (public route).
    pub async fn post_json(&self, path: &str, body: &Value) -> reqwest::Response {
        self.client
            .post(self.api_url(path))
            .json(body)
            .send()
            .await
            .expect("request sent")
    }

    /// POST a JSON body to an API path with a bearer token.
    pub async fn post_json_authed(&self, path: &str, token: &str, body: &Value) -> Reply {
        let resp = self
            .client
            .post(self.api_url(path))
            .bearer_auth(token)
            .json(body)
            .send()
            .await
            .expect("request sent");
        Reply::of(resp).await
    }

    /// POST without a body, with a bearer token.
    pub async fn post_authed(&self, path: &str, token: &str) -> Reply {
        let resp = self
            .client
            .post(self.api_url(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("request sent");
        Reply::of(resp).await
    }

    /// GET an API path with a bearer token.
    pub async fn get_authed(&self, path: &str, token: &str) -> Reply {
        let resp = self
            .client
            .get(self.api_url(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("request sent");
        Reply::of(resp).await
    }

    /// DELETE an API path with a bearer token.
    pub async fn delete_authed(&self, path: &str, token: &str) -> Reply {
        let resp = self
            .client
            .delete(self.api_url(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("request sent");
        Reply::of(resp).await
    }

    /// GET an API path without credentials.
    pub async fn get_api(&self, path: &str) -> Reply {
        let resp = self
            .client
            .get(self.api_url(path))
            .send()
            .await
            .expect("request sent");
        Reply::of(resp).await
    }

    /// GET an operational path (`/health`, `/metrics`, …), no `/api/v1`.
    pub async fn get_ops(&self, path: &str) -> Reply {
        let resp = self
            .client
            .get(format!("{}{path}", self.base))
            .send()
            .await
            .expect("request sent");
        Reply::of(resp).await
    }

    /// POST /auth/register, returning the raw reply.
    pub async fn try_register(&self, username: &str, email: &str, password: &str) -> Reply {
        let body = json!({"username": username, "email": email, "password": password});
        Reply::of(self.post_json("/auth/register", &body).await).await
    }

    /// Registers a user and returns the 201 body; panics on anything else.
    pub async fn register(&self, username: &str, email: &str, password: &str) -> Value {
        let reply = self.try_register(username, email, password).await;
        reply.assert_status(StatusCode::CREATED);
        reply.body
    }

    /// Registers `name` with `name@example.com` and [`PASSWORD`].
    pub async fn register_user(&self, name: &str) -> Tokens {
        let body = self
            .register(name, &format!("{name}@example.com"), PASSWORD)
            .await;
        Tokens::from_body(&body)
    }

    /// POST /auth/login.
    pub async fn login(&self, login: &str, password: &str) -> reqwest::Response {
        self.post_json(
            "/auth/login",
            &json!({"login": login, "password": password}),
        )
        .await
    }

    /// Logs in and returns the tokens; panics unless 200.
    pub async fn login_ok(&self, login: &str, password: &str) -> Tokens {
        let reply = Reply::of(self.login(login, password).await).await;
        reply.assert_status(StatusCode::OK);
        Tokens::from_body(&reply.body)
    }

    /// POST /auth/refresh.
    pub async fn refresh(&self, refresh_token: &str) -> Reply {
        let body = json!({"refresh_token": refresh_token});
        Reply::of(self.post_json("/auth/refresh", &body).await).await
    }

    /// The status of GET /users/profile with `token`: the cheapest way to
    /// ask "does this access token still work?".
    pub async fn profile_status(&self, token: &str) -> StatusCode {
        self.get_authed("/users/profile", token).await.status
    }
}

const BASE64URL: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Decodes base64url (padding optional). The `base64` crate is not a
/// dev-dependency, and a JWT needs nothing more than this.
pub fn base64url_decode(text: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in text.bytes().take_while(|&c| c != b'=') {
        let value = BASE64URL
            .iter()
            .position(|&b| b == c)
            .unwrap_or_else(|| panic!("{:?} is not a base64url character", c as char));
        acc = (acc << 6) | value as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

/// Encodes base64url without padding (for forging tokens).
pub fn base64url_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 4 / 3 + 2);
    let (mut acc, mut bits) = (0u32, 0u32);
    for &b in bytes {
        acc = (acc << 8) | u32::from(b);
        bits += 8;
        while bits >= 6 {
            bits -= 6;
            out.push(BASE64URL[((acc >> bits) & 63) as usize] as char);
        }
        acc &= (1 << bits) - 1;
    }
    if bits > 0 {
        out.push(BASE64URL[((acc << (6 - bits)) & 63) as usize] as char);
    }
    out
}

/// The header and claims of a JWT, unverified.
pub fn jwt_parts(token: &str) -> (Value, Value) {
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(
        parts.len(),
        3,
        "a JWT has three dot-separated parts: {token}"
    );
    let decode = |part: &str| -> Value {
        serde_json::from_slice(&base64url_decode(part)).expect("a JWT part is base64url JSON")
    };
    (decode(parts[0]), decode(parts[1]))
}

/// Strings an error body must never contain: driver and SQL vocabulary.
pub const LEAKY_WORDS: [&str; 5] = ["sqlx", "SELECT", "sqlite", "postgres", "panicked"];

/// Asserts that an error body shows nothing of the server's internals.
#[track_caller]
pub fn assert_no_internals(reply: &Reply, data_dir: &std::path::Path) {
    for word in LEAKY_WORDS {
        let found = if word.chars().all(|c| c.is_ascii_uppercase()) {
            reply.text.contains(word)
        } else {
            reply.text.to_lowercase().contains(word)
        };
        assert!(!found, "error body leaks `{word}`: {}", reply.text);
    }
    let dir = data_dir.to_string_lossy();
    assert!(
        !reply.text.contains(dir.as_ref()),
        "error body leaks the data dir: {}",
        reply.text
    );
    for marker in ["/tmp/", "src/", ".rs:", "/home/", "/work/"] {
        assert!(
            !reply.text.contains(marker),
            "error body leaks a path ({marker}): {}",
            reply.text
        );
    }
}

#[test]
fn base64url_round_trips() {
    for sample in [
        &b""[..],
        b"f",
        b"fo",
        b"foo",
        b"foob",
        b"fooba",
        b"foobar",
        &[0xff, 0xfe, 0x00],
    ] {
        assert_eq!(base64url_decode(&base64url_encode(sample)), sample);
    }
    assert_eq!(base64url_encode(b"foobar"), "Zm9vYmFy");
    assert_eq!(base64url_decode("Zm9vYg"), b"foob");
}

#[test]
fn database_names_are_replaced_in_postgres_urls() {
    assert_eq!(
        with_database_name("postgres://postgres@127.0.0.1:5432/test", "x"),
        "postgres://postgres@127.0.0.1:5432/x"
    );
    assert_eq!(
        with_database_name("postgres://u:p@h/test?sslmode=disable", "x"),
        "postgres://u:p@h/x?sslmode=disable"
    );
    assert_eq!(
        with_database_name("postgres://h:5432", "x"),
        "postgres://h:5432/x"
    );
}

/// Like [`spawn_app_with`], but also hands back the server's realtime core
/// (taken from the `Application` before it starts serving), for tests that
/// inject faults into actors.
pub async fn spawn_app_with_realtime(
    tune: impl FnOnce(&mut Settings),
) -> (TestApp, parley_actors::Realtime) {
    let (app, built) = build_test_app(tune).await;
    let realtime = built.realtime();
    serve(built);
    (app, realtime)
}

/// Like [`spawn_app_with`], but also hands back the handle that stops the
/// server gracefully, for shutdown tests.
pub async fn spawn_app_with_shutdown(
    tune: impl FnOnce(&mut Settings),
) -> (TestApp, parley::ShutdownHandle) {
    let (app, built) = build_test_app(tune).await;
    let handle = built.shutdown_handle();
    serve(built);
    (app, handle)
}

/// Runs a built application in the background.
fn serve(app: Application) {
    tokio::spawn(async move {
        if let Err(e) = app.run_until_stopped().await {
            eprintln!("server stopped with an error: {e:#}");
        }
    });
}

/// Builds (binds) the server the way [`spawn_app_with`] does, without
/// starting it, so a test can take handles from the `Application` first.
async fn build_test_app(tune: impl FnOnce(&mut Settings)) -> (TestApp, Application) {
    init_test_logging();
    let tmp = tempfile::tempdir().expect("a temp dir");
    let pg = PgDatabase::create().await;
    let mut settings = Settings {
        listen: "127.0.0.1:0".parse().expect("a socket address"),
        data_dir: tmp.path().to_path_buf(),
        database_url: pg.as_ref().map(PgDatabase::url),
        ..Settings::default()
    };
    tune(&mut settings);

    let built = Box::pin(Application::build(settings))
        .await
        .expect("the application builds");
    let addr = built.local_addr();
    let client = reqwest::Client::builder()
        .no_proxy()
        .user_agent(USER_AGENT)
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(60))
        .build()
        .expect("a reqwest client");
    let app = TestApp {
        addr,
        base: format!("http://{addr}"),
        api: format!("http://{addr}/api/v1"),
        client,
        store: built.store(),
        _tmp: tmp,
        _db: pg,
    };
    (app, built)
}
