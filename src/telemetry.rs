//! Logs and metrics, set up once per process.
//!
//! Metric names live here as constants so that dashboards (`grafana/`) and
//! code agree on them.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use parley_actors::store::Store;
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::LogFormat;

/// Counter: HTTP requests, labels `method`, `route`, `status`.
pub const HTTP_REQUESTS: &str = "http_requests_total";
/// Histogram (seconds): HTTP request latency, labels `method`, `route`.
pub const HTTP_DURATION: &str = "http_request_duration_seconds";
/// Counter: failed authentications, label `reason`.
pub const AUTH_FAILURES: &str = "auth_failures_total";
/// Counter: requests refused by a rate limit, label `scope`.
pub const RATE_LIMITED: &str = "rate_limited_total";
/// Counter: accounts locked after too many failed logins.
pub const LOCKOUTS: &str = "account_lockouts_total";
/// Histogram (seconds): time spent waiting for and computing a password hash.
pub const PASSWORD_HASH_DURATION: &str = "password_hash_duration_seconds";
/// Gauge: sessions held in the in-memory revocation view.
pub const REVOKED_SESSIONS_TRACKED: &str = "revoked_sessions_tracked";
/// Counter: mails that could not be sent, label `kind`.
pub const MAIL_FAILURES: &str = "mail_failures_total";

/// Histogram (seconds): one pass of the SQLite search indexer (a batch of
/// new and changed messages into the index file).
pub const SEARCH_INDEX_PASS_DURATION: &str = "search_index_pass_duration_seconds";
/// Counter: messages the SQLite search indexer has indexed.
pub const SEARCH_INDEXED: &str = "search_indexed_messages_total";
/// Gauge: messages stored but not yet in the SQLite search index (as of the
/// indexer's last pass).
pub const SEARCH_INDEX_BACKLOG: &str = "search_index_backlog";

/// Gauge: database pool connections by `state` (`in_use`, `idle`).
pub const DB_POOL_CONNECTIONS: &str = "db_pool_connections";
/// Gauge: the most connections the database pool opens.
pub const DB_POOL_MAX: &str = "db_pool_max_connections";
/// Histogram (seconds): how long taking a connection from the pool took,
/// sampled every [`DB_SAMPLE_INTERVAL`] (the wait a request would see).
pub const DB_POOL_ACQUIRE_DURATION: &str = "db_pool_acquire_duration_seconds";
/// Histogram (seconds): a database round trip (`select 1`), sampled.
pub const DB_PING_DURATION: &str = "db_ping_duration_seconds";
/// Gauge: 1 when the last sampled database round trip succeeded, else 0.
pub const DB_UP: &str = "db_up";

/// How often the database figures are sampled.
pub const DB_SAMPLE_INTERVAL: Duration = Duration::from_secs(5);
/// A sample that takes longer counts the database as down.
const DB_SAMPLE_TIMEOUT: Duration = Duration::from_secs(3);

/// Every `reason` label of [`AUTH_FAILURES`], registered at zero.
const AUTH_FAILURE_REASONS: &[&str] = &[
    "missing",
    "expired",
    "invalid",
    "revoked",
    "invalid_credentials",
    "locked",
    "refresh_reuse",
    "invalid_refresh_token",
    "invalid_password",
];
/// Every `scope` label of [`RATE_LIMITED`], registered at zero.
const RATE_LIMIT_SCOPES: &[&str] = &["register", "login", "api"];
/// Every `actor` label of `actor_failures_total`, registered at zero.
const ACTOR_KINDS: &[&str] = &["room", "connection", "presence"];

/// Latency buckets (seconds) shared by every histogram, so they aggregate
/// across nodes (summaries would not).
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// How often recorded histogram samples are folded into their buckets.
/// The recorder keeps every sample until then (or until `/metrics` is
/// rendered), so without this a server nobody scrapes grows by every
/// sample it records.
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

/// The name of the thread that runs the recorder's upkeep.
const UPKEEP_THREAD: &str = "metrics-upkeep";

/// Installs the tracing subscriber. Calling it twice is harmless (the
/// second call does nothing), so tests may call it freely.
pub fn init_tracing(format: LogFormat, filter: &str) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(filter))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let registry = tracing_subscriber::registry().with(filter);
    let result = match format {
        LogFormat::Pretty => registry.with(tracing_subscriber::fmt::layer()).try_init(),
        LogFormat::Json => registry
            .with(tracing_subscriber::fmt::layer().json().flatten_event(true))
            .try_init(),
    };
    if result.is_err() {
        tracing::debug!("tracing subscriber already installed");
    }
}

/// The process-wide Prometheus recorder. The `metrics` facade has one
/// global recorder, so every `Application` in a process (tests start many)
/// shares it.
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".to_owned()), LATENCY_BUCKETS)
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full(parley_actors::telemetry::SEND_BATCH.to_owned()),
                        &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0],
                    )
                })
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full(parley_actors::telemetry::COMMIT_MESSAGES.to_owned()),
                        &[1.0, 4.0, 16.0, 64.0, 256.0, 512.0],
                    )
                })
                .map(PrometheusBuilder::build_recorder)
                .unwrap_or_else(|_| PrometheusBuilder::new().build_recorder());
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("a metrics recorder was already installed; /metrics will be empty");
            }
            describe();
            register_zeroes();
            spawn_upkeep(handle.clone());
            handle
        })
        .clone()
}

/// Runs the recorder's upkeep every [`UPKEEP_INTERVAL`] on a thread of its
/// own, for the life of the process (the recorder is process-wide too).
fn spawn_upkeep(handle: PrometheusHandle) {
    let spawned = std::thread::Builder::new()
        .name(UPKEEP_THREAD.to_owned())
        .spawn(move || {
            loop {
                std::thread::sleep(UPKEEP_INTERVAL);
                handle.run_upkeep();
            }
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "could not start the metrics upkeep thread; histogram samples are kept until /metrics is scraped");
    }
}

/// Registers every counter and gauge whose series are known in advance, at
/// zero, so that `/metrics` shows them from the start: a dashboard panel or
/// an alert on a counter that has not fired yet then reads 0, not "no
/// data". Runs once, right after the recorder is installed and before
/// anything records.
fn register_zeroes() {
    use parley_actors::telemetry as rt;
    for name in [
        LOCKOUTS,
        SEARCH_INDEXED,
        rt::SHED,
        rt::SLOW_CONSUMER_CLOSES,
        rt::WS_RATE_LIMITED,
        rt::MESSAGES_STORED,
    ] {
        metrics::counter!(name).increment(0);
    }
    for reason in AUTH_FAILURE_REASONS {
        metrics::counter!(AUTH_FAILURES, "reason" => *reason).increment(0);
    }
    for scope in RATE_LIMIT_SCOPES {
        metrics::counter!(RATE_LIMITED, "scope" => *scope).increment(0);
    }
    for actor in ACTOR_KINDS {
        metrics::counter!(rt::ACTOR_FAILURES, "actor" => *actor).increment(0);
    }
    for name in [
        rt::WS_CONNECTIONS,
        rt::ROOMS_ACTIVE,
        rt::USERS_ONLINE,
        REVOKED_SESSIONS_TRACKED,
    ] {
        metrics::gauge!(name).set(0.0);
    }
}

/// Samples the database every [`DB_SAMPLE_INTERVAL`] until `shutdown`:
/// pool connections in use and idle, the wait for a connection, a round
/// trip's latency, and whether it answered at all ([`DB_UP`]). The first
/// sample is taken at once, so the figures are there from the start.
pub async fn sample_database(store: Arc<dyn Store>, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(DB_SAMPLE_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => sample_database_once(store.as_ref()).await,
            () = shutdown.cancelled() => break,
        }
    }
}

async fn sample_database_once(store: &dyn Store) {
    let stats = store.pool_stats();
    let idle = stats.idle.min(stats.size);
    metrics::gauge!(DB_POOL_CONNECTIONS, "state" => "in_use").set(f64::from(stats.size - idle));
    metrics::gauge!(DB_POOL_CONNECTIONS, "state" => "idle").set(f64::from(idle));
    metrics::gauge!(DB_POOL_MAX).set(f64::from(stats.max));
    match tokio::time::timeout(DB_SAMPLE_TIMEOUT, store.acquire_wait()).await {
        Ok(Ok(waited)) => {
            metrics::histogram!(DB_POOL_ACQUIRE_DURATION).record(waited.as_secs_f64());
        }
        // A pool that gives no connection within the timeout waited at
        // least that long.
        Ok(Err(_)) | Err(_) => {
            metrics::histogram!(DB_POOL_ACQUIRE_DURATION).record(DB_SAMPLE_TIMEOUT.as_secs_f64());
        }
    }
    let started = Instant::now();
    let up = matches!(
        tokio::time::timeout(DB_SAMPLE_TIMEOUT, store.ping()).await,
        Ok(Ok(()))
    );
    if up {
        metrics::histogram!(DB_PING_DURATION).record(started.elapsed().as_secs_f64());
    } else {
        tracing::warn!("the database did not answer its health sample");
    }
    metrics::gauge!(DB_UP).set(if up { 1.0 } else { 0.0 });
}

fn describe() {
    metrics::describe_counter!(HTTP_REQUESTS, "HTTP requests by method, route and status");
    metrics::describe_histogram!(
        HTTP_DURATION,
        metrics::Unit::Seconds,
        "HTTP request latency by method and route"
    );
    metrics::describe_counter!(AUTH_FAILURES, "Failed authentications by reason");
    metrics::describe_counter!(RATE_LIMITED, "Requests refused by a rate limit, by scope");
    metrics::describe_counter!(LOCKOUTS, "Accounts locked after repeated failed logins");
    metrics::describe_counter!(MAIL_FAILURES, "Mails that could not be sent, by kind");
    metrics::describe_histogram!(
        PASSWORD_HASH_DURATION,
        metrics::Unit::Seconds,
        "Argon2 queueing plus hashing time"
    );
    use parley_actors::telemetry as rt;
    metrics::describe_gauge!(
        rt::WS_CONNECTIONS,
        "Open, authenticated WebSocket connections"
    );
    metrics::describe_gauge!(rt::ROOMS_ACTIVE, "Room actors alive");
    metrics::describe_gauge!(rt::USERS_ONLINE, "Users with at least one open socket");
    metrics::describe_counter!(
        rt::WS_EVENTS,
        "WebSocket events by direction (in/out) and type; out counts each published event once"
    );
    metrics::describe_histogram!(
        rt::FANOUT_DURATION,
        metrics::Unit::Seconds,
        "Time to hand one event to every recipient socket's queue"
    );
    metrics::describe_counter!(
        rt::SHED,
        "Ephemeral events dropped because a socket's queue was full"
    );
    metrics::describe_counter!(
        rt::SLOW_CONSUMER_CLOSES,
        "Sockets closed with 4009 (durable queue full)"
    );
    metrics::describe_counter!(
        rt::WS_RATE_LIMITED,
        "Client frames refused by the per-socket rate limit"
    );
    metrics::describe_gauge!(
        rt::MAILBOX_DEPTH,
        "Messages sent to actors and not yet handled, by actor kind"
    );
    metrics::describe_counter!(
        rt::ACTOR_FAILURES,
        "Actors that failed and were cleaned up, by actor kind"
    );
    metrics::describe_counter!(rt::WS_CLOSES, "WebSocket closes by code");
    metrics::describe_counter!(
        rt::DELIVERIES,
        "Events queued to sockets, one per recipient socket, by type"
    );
    metrics::describe_histogram!(
        rt::COMMIT_MESSAGES,
        "Messages stored in one transaction across rooms (group commit)"
    );
    metrics::describe_histogram!(
        rt::COMMIT_DURATION,
        metrics::Unit::Seconds,
        "Time the store took for one group commit of messages"
    );
    metrics::describe_histogram!(
        rt::SEND_BATCH,
        "Messages a room stored in one transaction (group commit)"
    );
    metrics::describe_counter!(
        rt::MESSAGES_STORED,
        "Chat messages stored (idempotent retries not counted)"
    );
    metrics::describe_gauge!(
        DB_POOL_CONNECTIONS,
        "Database pool connections by state (in_use, idle)"
    );
    metrics::describe_gauge!(DB_POOL_MAX, "Most connections the database pool opens");
    metrics::describe_histogram!(
        DB_POOL_ACQUIRE_DURATION,
        metrics::Unit::Seconds,
        "Wait for a pooled database connection (sampled every 5 s)"
    );
    metrics::describe_histogram!(
        DB_PING_DURATION,
        metrics::Unit::Seconds,
        "Database round trip (select 1), sampled every 5 s"
    );
    metrics::describe_gauge!(
        DB_UP,
        "1 when the last sampled database round trip succeeded, else 0"
    );
    metrics::describe_counter!(SEARCH_INDEXED, "Messages the SQLite search indexer indexed");
    metrics::describe_histogram!(
        SEARCH_INDEX_PASS_DURATION,
        metrics::Unit::Seconds,
        "One pass of the SQLite search indexer"
    );
    metrics::describe_gauge!(
        SEARCH_INDEX_BACKLOG,
        "Messages not yet in the SQLite search index"
    );
    metrics::describe_gauge!(
        REVOKED_SESSIONS_TRACKED,
        "Revoked sessions whose access tokens may still be unexpired"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The recorder is built without an exporter that would run its upkeep,
    /// so the server must: without it every histogram sample stays in
    /// memory until someone scrapes `/metrics`.
    #[cfg(target_os = "linux")]
    #[test]
    fn the_recorder_gets_an_upkeep_thread() {
        let _handle = metrics_handle();
        let thread_names = || -> Vec<String> {
            std::fs::read_dir("/proc/self/task")
                .expect("task list")
                .filter_map(|task| {
                    let task = task.ok()?;
                    std::fs::read_to_string(task.path().join("comm")).ok()
                })
                .map(|name| name.trim().to_owned())
                .collect()
        };
        // A new thread names itself once it runs, so it may still carry
        // its parent's name for a moment.
        let mut names = thread_names();
        for _ in 0..100 {
            if names.iter().any(|name| name == UPKEEP_THREAD) {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
            names = thread_names();
        }
        assert!(
            names.iter().any(|name| name == UPKEEP_THREAD),
            "no `{UPKEEP_THREAD}` thread among {names:?}"
        );
    }
}
