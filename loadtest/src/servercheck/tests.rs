//! Tests of the cross-check: parsing, deltas, the interval rule, the
//! unread bound, and a baseline against a canned metrics endpoint.

use super::compare::compare;
use super::figures::{HarnessFigures, ServerFigures};
use super::prometheus::{Scrape, parse};
use super::tally::{FrameTally, GenReads};
use super::*;

const TEXT: &str = r#"# HELP ws_deliveries_total Events queued to sockets
# TYPE ws_deliveries_total counter
ws_deliveries_total{type="message.created"} 1200
ws_deliveries_total{type="presence"} 40
ws_deliveries_total{node="b",type="message.created"} 5
messages_stored_total 12
ws_closes_total{code="1000"} 3
ws_closes_total{code="4009"} 1
ws_slow_consumer_closes_total 1 1700000000000
weird_label{msg="a \"quoted\", {brace} \\ here",type="message.created"} 7
http_request_duration_seconds_bucket{le="+Inf",route="/x"} 9
not a sample
"#;

#[test]
fn the_parser_reads_names_labels_and_values() {
    let samples = parse(TEXT);
    assert_eq!(samples.len(), 9, "comments and the broken line skipped");
    assert_eq!(samples[0].name, "ws_deliveries_total");
    assert_eq!(
        samples[0].labels,
        vec![("type".to_owned(), "message.created".to_owned())]
    );
    assert_eq!(samples[0].value, 1200.0);
    assert_eq!(samples[3].name, "messages_stored_total");
    assert!(samples[3].labels.is_empty());
    // A timestamp after the value is ignored.
    assert_eq!(samples[6].value, 1.0);
    // Escapes, commas and braces inside a quoted label value.
    assert_eq!(samples[7].labels[0].1, r#"a "quoted", {brace} \ here"#);
    assert_eq!(samples[7].labels[1].1, "message.created");
    assert_eq!(samples[8].labels[0].1, "+Inf");
    // The last "line" parses as name `not`, value `a`: refused.
    assert!(parse("not a sample").is_empty());
    assert_eq!(parse("x{a=\"1\"} +Inf")[0].value, f64::INFINITY);
    assert!(parse("x{a=\"unterminated} 1").is_empty());
}

#[test]
fn sums_follow_the_label_filter() {
    let scrape = Scrape::from_text(TEXT);
    assert_eq!(
        scrape.sum("ws_deliveries_total", &[("type", "message.created")]),
        1205.0
    );
    assert_eq!(scrape.sum("ws_deliveries_total", &[]), 1245.0);
    assert_eq!(scrape.sum("messages_stored_total", &[]), 12.0);
    assert_eq!(scrape.sum("missing_total", &[]), 0.0);
    let closes = scrape.by_label("ws_closes_total", "code");
    assert_eq!(closes.get("4009"), Some(&1.0));
    let figures = ServerFigures::of(&scrape);
    assert_eq!(figures.message_created_deliveries, 1205);
    assert_eq!(figures.slow_consumer_closes, 1);
    assert_eq!(figures.events_shed, 0, "never incremented: not exported");
}

#[test]
fn deltas_refuse_counters_that_went_back() {
    let before = ServerFigures::of(&Scrape::from_text(TEXT));
    let mut after = before.clone();
    after.messages_stored += 5;
    after.message_created_deliveries += 50;
    *after.closes_by_code.entry("1000".into()).or_default() += 2;
    let d = after.since(&before).unwrap();
    assert_eq!(d.messages_stored, 5);
    assert_eq!(d.message_created_deliveries, 50);
    assert_eq!(
        d.closes_by_code.len(),
        1,
        "codes that did not move are left out"
    );
    assert!(before.since(&after).is_err());
}

fn harness() -> HarnessFigures {
    HarnessFigures {
        stored: 100,
        stored_in_doubt: 0,
        frames: 10_000,
        replayed: 0,
        in_doubt: 0,
        live: 10_000,
        unread_bound: 0,
        slow_consumer_closes: 0,
        closes_unseen: 0,
    }
}

fn server(stored: u64, deliveries: u64, slow: u64) -> ServerFigures {
    ServerFigures {
        messages_stored: stored,
        message_created_deliveries: deliveries,
        slow_consumer_closes: slow,
        ..ServerFigures::default()
    }
}

#[test]
fn without_closes_the_figures_must_be_equal() {
    let h = harness();
    assert!(compare(&server(100, 10_000, 0), &h).is_empty());
    assert_eq!(compare(&server(101, 10_000, 0), &h).len(), 1);
    assert_eq!(compare(&server(100, 9_999, 0), &h).len(), 1);
    assert_eq!(compare(&server(100, 10_001, 0), &h).len(), 1);
    let why = compare(&server(99, 10_000, 1), &h);
    assert_eq!(why.len(), 2);
    assert!(why[0].starts_with("messages stored: server 99 < harness 100"));
}

#[test]
fn closes_widen_the_interval_upwards_only() {
    let h = HarnessFigures {
        stored_in_doubt: 3,
        in_doubt: 20,
        live: 9_950,
        unread_bound: 30,
        slow_consumer_closes: 1,
        closes_unseen: 2,
        ..harness()
    };
    assert!(compare(&server(100, 9_950, 1), &h).is_empty());
    assert!(compare(&server(103, 10_000, 3), &h).is_empty());
    let why = compare(&server(104, 10_001, 4), &h);
    assert_eq!(why.len(), 3, "{why:?}");
    assert!(why[1].contains("9950 + 50"));
    assert_eq!(compare(&server(100, 9_949, 0), &h).len(), 2);
}

#[test]
fn unread_bounds_count_seqs_a_closed_connection_did_not_read() {
    let g = GenReads {
        room: 0,
        lower: 10,
        reads: 4,
    };
    assert_eq!(g.unread(20), 6);
    assert_eq!(g.unread(14), 0);
    assert_eq!(g.unread(5), 0, "a horizon below the base bounds nothing");
    let mut t = FrameTally::default();
    // A connection read 3 frames in a resume window, then the resume
    // completed with 2 of them replays.
    for _ in 0..3 {
        t.on_frame(true);
    }
    t.on_frame(false);
    t.on_resumed(2, vec![g, GenReads { room: 1, ..g }], |room| {
        (room == 0).then_some(30)
    });
    assert_eq!((t.frames, t.replayed, t.window), (4, 2, 0));
    assert_eq!(t.unread_resolved, 16);
    assert_eq!(t.unresolved.len(), 1, "room 1 waits for the end");
    // The next connection closes mid-resume: its window is in doubt.
    t.on_frame(true);
    t.on_end();
    assert_eq!(t.in_doubt, 1);
    assert_eq!(t.unread_bound(|_| 12), 16);
    assert_eq!(t.unread_bound(|_| 40), 16 + 26);
    let mut sum = FrameTally::default();
    sum.merge(t.clone());
    sum.merge(t);
    assert_eq!(sum.frames, 10);
    assert_eq!(sum.unread_bound(|_| 40), 2 * 42);
}

/// Answers each connection with the next canned body, then stops.
async fn canned(bodies: Vec<String>) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/metrics", listener.local_addr().unwrap());
    tokio::spawn(async move {
        for body in bodies {
            let (mut conn, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 1024];
            let _ = conn.read(&mut buf).await.unwrap();
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                body.len()
            );
            conn.write_all(head.as_bytes()).await.unwrap();
            conn.write_all(body.as_bytes()).await.unwrap();
            conn.shutdown().await.unwrap();
        }
    });
    url
}

#[tokio::test]
async fn a_baseline_and_a_second_scrape_give_a_verdict() {
    let before = "ws_deliveries_total{type=\"presence\"} 7\n".to_owned();
    let after = "# TYPE messages_stored_total counter\nmessages_stored_total 100\n\
                 ws_deliveries_total{type=\"message.created\"} 10000\n\
                 ws_deliveries_total{type=\"presence\"} 9\n"
        .to_owned();
    let url = canned(vec![before, after]).await;
    let baseline = Baseline::take(Some(&url)).await.unwrap();
    let check = baseline.check(harness()).await;
    assert!(check.available, "{:?}", check.reason);
    assert!(check.agrees, "{:?}", check.reason);
    let server = check.server.unwrap();
    assert_eq!(server.message_created_deliveries, 10_000);
    assert_eq!(server.messages_stored, 100);
    assert!(Baseline::take(None).await.is_none(), "switched off");
}

#[tokio::test]
async fn an_unreachable_server_is_reported_and_not_fatal() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}/metrics");
    let check = Baseline::take(Some(&url))
        .await
        .unwrap()
        .check(harness())
        .await;
    assert!(!check.available);
    assert!(!check.agrees);
    assert!(
        check
            .reason
            .unwrap()
            .starts_with("server metrics unavailable")
    );
}

#[test]
fn metrics_urls_follow_the_remote_rule() {
    assert!(check_url("http://127.0.0.1:8080/metrics", false).is_ok());
    assert!(check_url("ftp://127.0.0.1/metrics", false).is_err());
    assert!(check_url("http://192.0.2.1:9900/metrics", false).is_err());
    assert!(check_url("http://192.0.2.1:9900/metrics", true).is_ok());
}

#[test]
fn refusals_are_not_in_doubt() {
    assert!(!send_error_in_doubt("rate_limited"));
    assert!(!send_error_in_doubt("validation_failed"));
    assert!(send_error_in_doubt("unavailable"));
    assert!(send_error_in_doubt("something_new"));
}
