//! `soak` against the real server: the messages its REST mix sends go to
//! the sockets' room, and the ledger expects them on every socket like the
//! WebSocket sends, so a REST message that never arrives is a loss and
//! none is left over as `unexpected`.

mod common;

use common::{Server, figure};

const SOCKETS: u64 = 20;
const SECS: u64 = 5;
const REST_RATE: u64 = 20;
/// The default mix sends 2 messages in every 10 requests.
const REST_SENDS: u64 = REST_RATE * SECS / 5;

async fn soak(server: &Server, workers: &str) -> serde_json::Value {
    server
        .run_harness(&[
            "--workers",
            workers,
            "--slo",
            "losses=0,agree",
            "soak",
            "--sockets",
            &SOCKETS.to_string(),
            "--duration",
            &SECS.to_string(),
            "--rate",
            "10",
            "--churn-pct",
            "10",
            "--rest-rate",
            &REST_RATE.to_string(),
            "--sample-secs",
            "1",
        ])
        .await
}

fn assert_rest_sends_are_in_the_ledger(report: &serde_json::Value) {
    let detail = &report["detail"];
    let acked = detail["counters"]["acked"].as_u64().expect("acked");
    assert_eq!(detail["slots_ready"].as_u64(), Some(SOCKETS), "{detail}");
    assert_eq!(figure(report, "rest_http_errors"), 0.0, "{report}");
    assert!(acked > 0, "{detail}");
    assert_eq!(
        figure(report, "expected"),
        ((acked + REST_SENDS) * SOCKETS) as f64,
        "WebSocket and REST sends, each on every socket: {report}"
    );
    assert_eq!(figure(report, "losses"), 0.0);
    assert_eq!(figure(report, "unexpected"), 0.0, "{report}");
    assert_eq!(
        figure(report, "server_agrees"),
        1.0,
        "{}",
        report["server_check"]
    );
}

// One test, one server: the server's metrics recorder is global to the
// process, so two servers in one test binary would add up in each other's
// cross-checks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_soaks_rest_sends_are_expected_on_every_socket_in_one_process_or_two() {
    let server = Server::start(u32::try_from(SOCKETS).expect("small"), "soak").await;

    let here = soak(&server, "1").await;
    let over_workers = soak(&server, "2").await;

    assert_rest_sends_are_in_the_ledger(&here);
    assert_rest_sends_are_in_the_ledger(&over_workers);
}
