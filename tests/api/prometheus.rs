//! `grafana/`: the alert rules and scrape config pass `promtool`, and a real
//! Prometheus scraping a real Parley under some traffic answers every
//! dashboard panel's query with data and evaluates every alert rule
//! without error, so no panel shows "No data" because of a renamed metric.
//!
//! Both need Debian's `prometheus` package (`promtool`, `prometheus`); where
//! it is not installed they say so and pass.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::chat::{post_message, public_room, spawn_chat_app};
use crate::helpers::{PASSWORD, Reply};
use crate::ws_client::WsClient;

/// How often the test Prometheus scrapes and evaluates rules.
const SCRAPE_SECS: u64 = 1;

fn grafana_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("grafana")
}

/// Whether `program --version` runs; if not, says why the test is skipped.
fn installed(program: &str) -> bool {
    let found = Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        eprintln!(
            "SKIPPED: `{program}` is not installed (Debian: apt-get install prometheus); \
             the Prometheus checks did not run"
        );
    }
    found
}

#[test]
fn the_alert_rules_and_the_scrape_config_pass_promtool() {
    if !installed("promtool") {
        return;
    }
    let dir = grafana_dir().join("prometheus");
    for args in [
        &["check", "config", "prometheus.yml"][..],
        &["check", "rules", "alerts.yml"],
        &["test", "rules", "alerts.test.yml"],
    ] {
        let out = Command::new("promtool")
            .args(args)
            .current_dir(&dir)
            .output()
            .expect("promtool runs");
        assert!(
            out.status.success(),
            "promtool {}:\n{}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// Every `expr` of every panel (rows' nested panels included).
fn dashboard_queries(dashboard: &Value) -> Vec<(String, String)> {
    fn walk(panels: &Value, out: &mut Vec<(String, String)>) {
        for panel in panels.as_array().into_iter().flatten() {
            let title = panel["title"].as_str().unwrap_or("?").to_owned();
            for target in panel["targets"].as_array().into_iter().flatten() {
                if let Some(expr) = target["expr"].as_str() {
                    out.push((title.clone(), expr.to_owned()));
                }
            }
            walk(&panel["panels"], out);
        }
    }
    let mut out = Vec::new();
    walk(&dashboard["panels"], &mut out);
    out
}

/// A dashboard query as Grafana would send it over the last few minutes.
fn as_grafana_sends_it(expr: &str) -> String {
    expr.replace("$instance", ".+")
        .replace("${instance}", ".+")
        .replace("$__rate_interval", "1m")
        .replace("$__range", "5m")
}

/// A Prometheus child process, killed when dropped.
struct Prometheus {
    child: Child,
    base: String,
    client: reqwest::Client,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Prometheus {
    /// Starts Prometheus on a free loopback port, scraping `target` and
    /// loading the repository's alert rules.
    async fn start(target: &str, dir: &Path) -> Self {
        let rules = grafana_dir().join("prometheus").join("alerts.yml");
        let config = format!(
            "global:\n  scrape_interval: {SCRAPE_SECS}s\n  evaluation_interval: {SCRAPE_SECS}s\n\
             rule_files:\n  - {rules}\n\
             scrape_configs:\n  - job_name: parley\n    static_configs:\n      - targets: [\"{target}\"]\n",
            rules = rules.display()
        );
        let config_path = dir.join("prometheus.yml");
        std::fs::write(&config_path, config).expect("write the Prometheus config");
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let log = std::fs::File::create(dir.join("prometheus.log")).expect("a log file");
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("prometheus starts");
        let prometheus = Self {
            child,
            base: format!("http://127.0.0.1:{port}"),
            client: reqwest::Client::builder()
                .no_proxy()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("a client"),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ready = prometheus
                .client
                .get(format!("{}/-/ready", prometheus.base))
                .send()
                .await
                .is_ok_and(|r| r.status() == StatusCode::OK);
            if ready {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "Prometheus did not get ready; its log:\n{}",
                std::fs::read_to_string(dir.join("prometheus.log")).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        prometheus
    }

    async fn api(&self, path: &str, params: &[(&str, &str)]) -> Value {
        let url = reqwest::Url::parse_with_params(&format!("{}{path}", self.base), params)
            .expect("a query URL");
        let body: Value = self
            .client
            .get(url)
            .send()
            .await
            .expect("Prometheus answers")
            .json()
            .await
            .expect("a JSON answer");
        assert_eq!(body["status"], "success", "{path} {params:?}: {body}");
        body["data"].clone()
    }

    /// The result vector of an instant query.
    async fn query(&self, expr: &str) -> Vec<Value> {
        let data = self.api("/api/v1/query", &[("query", expr)]).await;
        data["result"].as_array().cloned().unwrap_or_default()
    }
}

#[tokio::test]
async fn a_real_prometheus_finds_data_for_every_panel_and_evaluates_every_alert() {
    if !installed("prometheus") {
        return;
    }
    let app = spawn_chat_app().await;
    let tmp = tempfile::tempdir().expect("a temp dir");
    let prometheus = Prometheus::start(&app.addr.to_string(), tmp.path()).await;

    // Some traffic: accounts, a failed login, REST and WebSocket chat, a
    // revoked session's socket closing.
    let alice = app.register_user("alice").await;
    let bob = app.register_user("bob").await;
    Reply::of(app.login("alice", "Wrong-Horse-42").await)
        .await
        .assert_status(StatusCode::UNAUTHORIZED);
    let phone = app.login_ok("bob", PASSWORD).await;
    let room = public_room(&app, &alice, "general").await;
    app.post_authed(&format!("/rooms/{room}/join"), &bob.access)
        .await
        .assert_status(StatusCode::OK);
    let mut alice_ws = WsClient::connect(&app, &alice.access).await;
    let mut bob_phone_ws = WsClient::connect(&app, &phone.access).await;
    let deadline = Instant::now() + Duration::from_secs(6 * SCRAPE_SECS);
    let mut i = 0;
    while Instant::now() < deadline {
        post_message(&app, &bob.access, &room, &format!("hello {i}")).await;
        alice_ws.send_message(&room, &format!("hi {i}")).await;
        assert_eq!(
            alice_ws.request(json!({"type": "ping"})).await["type"],
            "pong"
        );
        app.get_api("/users/profile")
            .await
            .assert_status(StatusCode::UNAUTHORIZED);
        i += 1;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    app.post_authed("/auth/logout", &phone.access).await;
    let _ = bob_phone_ws.close_code_within(Duration::from_secs(1)).await;
    // A few more scrapes after the last event, so every rate has two
    // samples around it.
    tokio::time::sleep(Duration::from_secs(3 * SCRAPE_SECS + 1)).await;

    let up = prometheus.query(r#"up{job="parley"}"#).await;
    assert_eq!(
        up.first().map(|s| s["value"][1].clone()),
        Some(json!("1")),
        "Prometheus scrapes Parley: {up:?}"
    );

    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(grafana_dir().join("dashboards").join("parley.json"))
            .expect("read the dashboard"),
    )
    .expect("the dashboard is JSON");
    let queries = dashboard_queries(&dashboard);
    assert!(queries.len() > 10, "dashboard queries: {queries:?}");
    let postgres = std::env::var_os("PARLEY_TEST_DATABASE_URL").is_some();
    let mut empty = Vec::new();
    for (title, expr) in &queries {
        // The search index panel is about SQLite's index file; PostgreSQL
        // indexes inside the database and exports no such series.
        if postgres && expr.contains("search_index_") {
            continue;
        }
        if prometheus
            .query(&as_grafana_sends_it(expr))
            .await
            .is_empty()
        {
            empty.push(format!("{title}: {expr}"));
        }
    }
    assert!(
        empty.is_empty(),
        "panels with no data:\n{}",
        empty.join("\n")
    );

    // Every alert rule loaded and evaluated without an error.
    let deadline = Instant::now() + Duration::from_secs(10);
    let rules = loop {
        let data = prometheus.api("/api/v1/rules", &[]).await;
        let rules: Vec<Value> = data["groups"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
            .collect();
        if rules.iter().all(|r| r["health"] != "unknown") || Instant::now() > deadline {
            break rules;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let names: Vec<&str> = rules.iter().filter_map(|r| r["name"].as_str()).collect();
    for alert in [
        "ParleyHighErrorRate",
        "ParleySlowRequests",
        "ParleyDatabaseDown",
        "ParleyNodeMissing",
        "HostDiskAlmostFull",
        "HostMemoryHigh",
    ] {
        assert!(names.contains(&alert), "{alert} among {names:?}");
    }
    for rule in &rules {
        assert_eq!(
            rule["health"], "ok",
            "{} evaluates: {}",
            rule["name"], rule["lastError"]
        );
    }
    // A healthy node under light traffic fires nothing of Parley's own.
    let firing: Vec<&Value> = rules
        .iter()
        .filter(|r| r["state"] == "firing" && r["name"] != "ParleyNoNodes")
        .collect();
    assert!(firing.is_empty(), "firing: {firing:?}");
}
