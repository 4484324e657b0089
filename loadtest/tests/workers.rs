//! `--workers`: one run spread over worker processes, against the real
//! server (started here on port 0, users provisioned with `parley user
//! seed`'s code). The parent's figures must be the whole run's: every
//! socket ready, every acked message expected on every socket (a message
//! published in one worker is expected in the other) and delivered or
//! recovered, and the server's counters agreeing.

use std::time::Duration;

use parley::{Application, Settings};
use serde_json::Value;

const SOCKETS: u64 = 40;
const RATE: u64 = 20;
const SECS: u64 = 3;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_churn_run_over_two_workers_accounts_for_every_delivery() {
    let tmp = tempfile::tempdir().expect("a temp dir");
    let settings = Settings {
        listen: "127.0.0.1:0".parse().expect("an address"),
        data_dir: tmp.path().to_path_buf(),
        ws_events_per_second: 1000,
        ws_events_burst: 2000,
        api_per_minute: 1_000_000,
        ..Settings::default()
    };
    let users = tmp.path().join("users.jsonl");
    let seed = parley::cli::Seed {
        count: u32::try_from(SOCKETS).expect("small"),
        prefix: "worker".to_owned(),
        password: "Seeded-users-1".to_owned(),
        token_ttl: Duration::from_secs(3600),
    };
    let app = Box::pin(Application::build(settings.clone()))
        .await
        .expect("the server builds");
    let url = format!("http://{}", app.local_addr());
    tokio::spawn(async move {
        if let Err(e) = app.run_until_stopped().await {
            eprintln!("server stopped: {e:#}");
        }
    });
    parley::cli::seed_users(&settings, &seed, &users)
        .await
        .expect("users seeded");

    let harness = env!("CARGO_BIN_EXE_parley-loadtest");
    let args = [
        "--url",
        &url,
        "--users",
        users.to_str().expect("a UTF-8 path"),
        "--json",
        "--no-progress",
        "--workers",
        "2",
        "--slo",
        "losses=0,agree",
        "churn",
        "--sockets",
        &SOCKETS.to_string(),
        "--rate",
        &RATE.to_string(),
        "--duration",
        &SECS.to_string(),
        "--churn-pct",
        "10",
    ];
    let out = tokio::process::Command::new(harness)
        .args(args)
        .output()
        .await
        .expect("the harness runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "exit {:?}; stderr:\n{stderr}",
        out.status
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "JSON report ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    let figure = |name: &str| {
        report["figures"][name]
            .as_f64()
            .unwrap_or_else(|| panic!("figure {name} in {report}"))
    };
    let detail = &report["detail"];
    let acked = detail["counters"]["acked"].as_u64().expect("acked");
    assert_eq!(detail["slots_ready"].as_u64(), Some(SOCKETS), "{detail}");
    assert_eq!(acked, RATE * SECS, "every message sent and acked: {detail}");
    // Expected on every socket of both workers, whoever published it.
    assert_eq!(figure("expected"), (acked * SOCKETS) as f64);
    assert_eq!(figure("losses"), 0.0);
    assert!(
        figure("recovered") > 0.0,
        "churn made the sockets resume: {detail}"
    );
    assert!(detail["counters"]["resumes"].as_u64() > Some(0));
    assert_eq!(figure("server_agrees"), 1.0, "{}", report["server_check"]);
    assert!(
        detail["latency"]["count"].as_u64() > Some(0),
        "latencies merged"
    );
}
