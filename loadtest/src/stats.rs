//! Live figures shared by every task of a run: counters (atomics, read by
//! the progress bar and `/metrics`) and HDR histograms (microseconds).

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Histograms record microseconds from 1 µs to 10 minutes, 3 significant
/// figures.
pub fn new_histogram() -> Histogram<u64> {
    // The bounds are constants that `new_with_bounds` accepts.
    Histogram::new_with_bounds(1, 600_000_000, 3).unwrap_or_else(|_| {
        Histogram::new(3).unwrap_or_else(|_| unreachable!("3 significant figures are valid"))
    })
}

/// A histogram split in shards so that thousands of socket tasks can
/// record without queuing on one lock.
#[derive(Debug)]
pub struct Sharded {
    shards: Vec<Mutex<Histogram<u64>>>,
}

impl Sharded {
    /// `n` shards.
    pub fn new(n: usize) -> Self {
        Self {
            shards: (0..n.max(1)).map(|_| Mutex::new(new_histogram())).collect(),
        }
    }

    /// Records a value in microseconds, in the shard for `key`.
    pub fn record(&self, key: usize, value_us: u64) {
        let shard = &self.shards[key % self.shards.len()];
        let mut h = shard.lock().unwrap_or_else(|e| e.into_inner());
        h.saturating_record(value_us.max(1));
    }

    /// Records several values at once (one lock).
    pub fn record_many(&self, key: usize, values_us: &[u64]) {
        if values_us.is_empty() {
            return;
        }
        let shard = &self.shards[key % self.shards.len()];
        let mut h = shard.lock().unwrap_or_else(|e| e.into_inner());
        for v in values_us {
            h.saturating_record((*v).max(1));
        }
    }

    /// Records `(value, count)` pairs (from [`pairs`]), e.g. another
    /// process's histogram.
    pub fn record_pairs(&self, key: usize, pairs: &[(u64, u64)]) {
        let shard = &self.shards[key % self.shards.len()];
        let mut h = shard.lock().unwrap_or_else(|e| e.into_inner());
        for &(value, count) in pairs {
            if let Err(e) = h.record_n(value.max(1), count) {
                eprintln!("histogram record: {e}");
            }
        }
    }

    /// All shards merged.
    pub fn merged(&self) -> Histogram<u64> {
        let mut out = new_histogram();
        for shard in &self.shards {
            let h = shard.lock().unwrap_or_else(|e| e.into_inner());
            // Same bounds everywhere: adding cannot fail.
            if let Err(e) = out.add(&*h) {
                eprintln!("histogram merge: {e}");
            }
        }
        out
    }
}

/// A histogram as `(value, count)` pairs, one per recorded value bucket:
/// how a worker process hands its histograms to the parent.
pub fn pairs(h: &Histogram<u64>) -> Vec<(u64, u64)> {
    h.iter_recorded()
        .map(|v| (v.value_iterated_to(), v.count_at_value()))
        .collect()
}

/// Percentiles of a histogram, in milliseconds.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Summary {
    pub count: u64,
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
}

impl Summary {
    /// Summarises a microsecond histogram.
    pub fn of(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Self::default();
        }
        let ms = |us: u64| us as f64 / 1000.0;
        Self {
            count: h.len(),
            p50_ms: ms(h.value_at_quantile(0.50)),
            p90_ms: ms(h.value_at_quantile(0.90)),
            p99_ms: ms(h.value_at_quantile(0.99)),
            p999_ms: ms(h.value_at_quantile(0.999)),
            max_ms: ms(h.max()),
            mean_ms: h.mean() / 1000.0,
        }
    }
}

macro_rules! counters {
    ($($(#[$doc:meta])* $name:ident),* $(,)?) => {
        /// Counters of a run.
        #[derive(Debug, Default)]
        pub struct Counters {
            $($(#[$doc])* pub $name: AtomicU64,)*
        }

        /// A snapshot of [`Counters`].
        #[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
        pub struct CounterSnapshot {
            $($(#[$doc])* pub $name: u64,)*
        }

        impl Counters {
            /// Reads every counter.
            pub fn snapshot(&self) -> CounterSnapshot {
                CounterSnapshot {
                    $($name: self.$name.load(Ordering::Relaxed),)*
                }
            }

            /// Sets every counter (the parent of worker processes shows
            /// their sum).
            pub fn set(&self, to: &CounterSnapshot) {
                $(self.$name.store(to.$name, Ordering::Relaxed);)*
            }
        }

        impl CounterSnapshot {
            /// `(name, value)` pairs, for `/metrics`.
            pub fn pairs(&self) -> Vec<(&'static str, u64)> {
                vec![$((stringify!($name), self.$name),)*]
            }

            /// Adds another snapshot (another process's counters).
            pub fn add(&mut self, other: &Self) {
                $(self.$name += other.$name;)*
            }
        }
    };
}

counters!(
    /// Connection attempts started.
    connect_attempts,
    /// Sockets that reached `ready`.
    ready,
    /// Attempts that failed before `ready`.
    connect_failures,
    /// Reconnects (after a client drop or a server close).
    reconnects,
    /// Sockets currently open and ready.
    open,
    /// Messages sent (`message.send` or REST POST).
    sent,
    /// Messages acknowledged with a seq.
    acked,
    /// Requests answered with an error (frame or HTTP status).
    send_errors,
    /// `message.created` received live.
    delivered,
    /// `message.created` received during a resume replay.
    recovered,
    /// Receptions of a seq the slot already had.
    duplicates,
    /// Other events received (typing, presence, …).
    events,
    /// `resume` requests sent.
    resumes,
    /// `resync_required` answers.
    resyncs,
    /// Closes initiated by the server.
    server_closes,
    /// Drops initiated by the harness (churn).
    client_drops,
    /// HTTP requests completed with a 2xx.
    http_ok,
    /// HTTP requests that failed (status or transport).
    http_errors,
    /// Frames that did not parse.
    bad_frames,
);

/// Everything a run records.
#[derive(Debug)]
pub struct Stats {
    pub counters: Counters,
    /// End-to-end message latency (send time in the body → reception).
    pub latency: Sharded,
    /// Send → ack (or HTTP request → response).
    pub ack: Sharded,
    /// TCP connect + WebSocket upgrade.
    pub connect: Sharded,
    /// Connection start → `ready`.
    pub ready: Sharded,
    /// Close codes seen, by code (`"1000"`, `"4009"`, `"eof"`, …).
    pub closes: Mutex<BTreeMap<String, u64>>,
    /// Errors by kind (`"http_503"`, `"rate_limited"`, `"timeout"`, …).
    pub errors: Mutex<BTreeMap<String, u64>>,
}

impl Stats {
    /// Empty stats.
    pub fn new() -> Self {
        Self {
            counters: Counters::default(),
            latency: Sharded::new(32),
            ack: Sharded::new(16),
            connect: Sharded::new(16),
            ready: Sharded::new(16),
            closes: Mutex::new(BTreeMap::new()),
            errors: Mutex::new(BTreeMap::new()),
        }
    }

    /// Counts a close by code.
    pub fn close(&self, code: impl Into<String>) {
        let mut map = self.closes.lock().unwrap_or_else(|e| e.into_inner());
        *map.entry(code.into()).or_default() += 1;
    }

    /// Counts an error by kind.
    pub fn error(&self, kind: impl Into<String>) {
        let mut map = self.errors.lock().unwrap_or_else(|e| e.into_inner());
        *map.entry(kind.into()).or_default() += 1;
    }

    /// Adds counts by code and by kind (another process's).
    pub fn add_counts(&self, closes: &BTreeMap<String, u64>, errors: &BTreeMap<String, u64>) {
        for (map, add) in [(&self.closes, closes), (&self.errors, errors)] {
            let mut map = map.lock().unwrap_or_else(|e| e.into_inner());
            for (k, v) in add {
                *map.entry(k.clone()).or_default() += v;
            }
        }
    }

    /// Close codes seen so far, by code.
    pub fn closes_by_code(&self) -> BTreeMap<String, u64> {
        self.closes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Errors counted so far, by kind.
    pub fn errors_by_kind(&self) -> BTreeMap<String, u64> {
        self.errors
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Total errors counted by kind.
    pub fn error_total(&self) -> u64 {
        self.errors
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .sum()
    }
}

impl Default for Stats {
    fn default() -> Self {
        Self::new()
    }
}

/// Adds one to a counter.
pub fn inc(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// Takes one from a gauge-like counter.
pub fn dec(counter: &AtomicU64) {
    counter.fetch_sub(1, Ordering::Relaxed);
}
