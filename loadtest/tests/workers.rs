//! `--workers`: one run spread over worker processes, against the real
//! server (started here on port 0, users provisioned with `parley user
//! seed`'s code). The parent's figures must be the whole run's: every
//! socket ready, every acked message expected on every socket (a message
//! published in one worker is expected in the other) and delivered or
//! recovered, and the server's counters agreeing.

mod common;

use common::Server;

const SOCKETS: u64 = 40;
const RATE: u64 = 20;
const SECS: u64 = 3;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_churn_run_over_two_workers_accounts_for_every_delivery() {
    let server = Server::start(u32::try_from(SOCKETS).expect("small"), "worker").await;

    let report = server
        .run_harness(&[
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
        ])
        .await;

    let figure = |name: &str| common::figure(&report, name);
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
