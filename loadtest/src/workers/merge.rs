//! The sum of the workers' results, as one [`EngineResult`].

use crate::engine::EngineResult;
use crate::ledger::LossAccount;
use crate::servercheck::FrameTally;
use crate::stats::{CounterSnapshot, Stats, Summary};

use super::WorkerResult;

/// The sums of the workers' results.
pub(super) struct Merged {
    pub(super) slots: usize,
    pub(super) slots_ready: u64,
    pub(super) all_ready_s: f64,
    pub(super) load_window_s: f64,
    pub(super) drained: bool,
    pub(super) server_rss_connected_bytes: Option<u64>,
    pub(super) load_s: f64,
    pub(super) known_max: Vec<i64>,
    pub(super) losses: LossAccount,
    pub(super) frames: FrameTally,
    pub(super) counters: CounterSnapshot,
}

impl Merged {
    pub(super) fn add(&mut self, key: usize, r: WorkerResult, stats: &Stats) {
        self.losses.add(&r.losses);
        let mut frames = r.frames;
        frames.unresolved = r.unresolved;
        self.frames.merge(frames);
        for (max, theirs) in self.known_max.iter_mut().zip(r.known_max) {
            *max = (*max).max(theirs);
        }
        self.counters.add(&r.counters);
        stats.add_counts(&r.closes, &r.errors);
        stats.latency.record_pairs(key, &r.latency);
        stats.ack.record_pairs(key, &r.ack);
        stats.connect.record_pairs(key, &r.connect);
        stats.ready.record_pairs(key, &r.ready);
    }

    pub(super) fn finish(self, stats: &Stats) -> EngineResult {
        stats.counters.set(&self.counters);
        let losses = self.losses;
        EngineResult {
            slots: self.slots,
            slots_ready: self.slots_ready,
            all_ready_s: self.all_ready_s,
            connect: Summary::of(&stats.connect.merged()),
            ready: Summary::of(&stats.ready.merged()),
            latency: Summary::of(&stats.latency.merged()),
            ack: Summary::of(&stats.ack.merged()),
            losses,
            load_window_s: self.load_window_s,
            deliveries_per_sec: (losses.delivered + losses.recovered) as f64
                / self.load_window_s.max(1e-3),
            sends_per_sec: self.counters.sent as f64 / self.load_s.max(1e-3),
            drained: self.drained,
            counters: self.counters,
            closes: stats.closes_by_code(),
            errors: stats.errors_by_kind(),
            server_rss_connected_bytes: self.server_rss_connected_bytes,
            frames: self.frames,
            known_max: self.known_max,
        }
    }
}

/// The result of a run whose workers failed: nothing measured, the error
/// counted (so an SLO on errors or losses fails).
pub(super) fn empty_result(slots: usize, stats: &Stats) -> EngineResult {
    Merged {
        slots,
        slots_ready: 0,
        all_ready_s: 0.0,
        load_window_s: 0.0,
        drained: false,
        server_rss_connected_bytes: None,
        load_s: 1.0,
        known_max: Vec::new(),
        losses: LossAccount::default(),
        frames: FrameTally::default(),
        counters: CounterSnapshot::default(),
    }
    .finish(stats)
}
