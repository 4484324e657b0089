//! The run in one process: connect every slot, settle, load, drain, close
//! and count the losses ([`run_here`]), and the [`Mode`] seam where a run
//! alone and a worker's share of a run differ.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::{Semaphore, mpsc, watch};

use super::schedule::schedule;
use super::slot::SlotTask;
use super::{Cmd, EngineResult, ExternalAcks, Plan, Shared};
use crate::ledger::LossAccount;
use crate::servercheck::FrameTally;
use crate::stats::{Stats, Summary};
use crate::token;

/// How a process that runs slots takes part in the run: the one place
/// [`run_here`] differs between a run in one process and a worker's share
/// of a run spread over several.
pub(crate) enum Mode<'a> {
    /// The whole run is this process: it settles, drains and counts the
    /// losses by itself.
    Alone,
    /// A worker process: the parent says when to start the load and when
    /// the drain is over, and the acked seqs are pooled with the other
    /// workers' before the losses are counted.
    Worker(&'a mut crate::workers::Link),
}

impl Mode<'_> {
    /// Between the connect and load phases. Alone: waits `settle`. A
    /// worker: reports its members per room and waits for the parent's go,
    /// which carries the members over every worker; `shared.members` then
    /// holds those.
    async fn connected(&mut self, shared: &Shared, slots_ready: u64, all_ready_s: f64) {
        match self {
            Mode::Alone => {
                if !shared.opts.settle.is_zero() {
                    tokio::time::sleep(shared.opts.settle).await;
                }
            }
            Mode::Worker(link) => {
                // The parent settles, then tells every worker the run's members.
                let here: Vec<u64> = shared
                    .members
                    .iter()
                    .map(|m| m.load(Ordering::Relaxed))
                    .collect();
                let all = link.ready(slots_ready, here, all_ready_s).await;
                for (m, n) in shared.members.iter().zip(all) {
                    m.store(n, Ordering::Relaxed);
                }
            }
        }
    }

    /// The drain after the load: whether every ack and delivery arrived.
    /// Alone: waits for them up to `drain_timeout`. A worker: reports its
    /// progress until the parent, which applies the same rule over every
    /// worker, says stop.
    async fn drain(
        &mut self,
        shared: &Shared,
        scheduled: u64,
        external: Option<&ExternalAcks>,
    ) -> bool {
        match self {
            Mode::Alone => drain_alone(shared, scheduled, external).await,
            Mode::Worker(link) => link.drain(&shared.progress(scheduled)).await,
        }
    }

    /// The acked seqs per room of the whole run: this process's own when
    /// alone, every worker's pooled otherwise.
    async fn pool_acked(self, acked: Vec<Vec<i64>>) -> Vec<Vec<i64>> {
        match self {
            Mode::Alone => acked,
            Mode::Worker(link) => link.pool_acked(acked).await,
        }
    }
}

/// The single-process drain: until every scheduled message is sent and
/// answered, every expected delivery received (the external sender's
/// included), no slot is resuming or reconnecting, or `drain_timeout`
/// passes. Whether it drained.
async fn drain_alone(shared: &Shared, scheduled: u64, external: Option<&ExternalAcks>) -> bool {
    let drain_deadline = Instant::now() + shared.opts.drain_timeout;
    while Instant::now() < drain_deadline {
        let c = &shared.stats.counters;
        let sent = c.sent.load(Ordering::Relaxed);
        let answered = c.acked.load(Ordering::Relaxed) + c.send_errors.load(Ordering::Relaxed);
        let received = c.delivered.load(Ordering::Relaxed) + c.recovered.load(Ordering::Relaxed);
        let expected = shared.expected.load(Ordering::Relaxed)
            + external.map_or(0, |e| {
                e.expected(|room| shared.members[room].load(Ordering::Relaxed))
            });
        if sent >= scheduled
            && answered >= sent
            && received >= expected
            && external.is_none_or(|e| e.finished())
            && shared.resuming.load(Ordering::Relaxed) == 0
            && shared.reconnecting.load(Ordering::Relaxed) == 0
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

/// Runs a plan's slots in this process, alone or as one worker (see
/// [`Mode`]).
pub(crate) async fn run_here(
    plan: Plan,
    stats: Arc<Stats>,
    server_pid: Option<u32>,
    mut mode: Mode<'_>,
) -> EngineResult {
    let Plan {
        target,
        rooms,
        slots,
        load,
        opts,
        external,
    } = plan;
    let shared = Arc::new(Shared {
        room_ids: rooms.iter().map(ToString::to_string).collect(),
        members: rooms.iter().map(|_| AtomicU64::new(0)).collect(),
        plan_rooms: rooms,
        stats: Arc::clone(&stats),
        expected: AtomicU64::new(0),
        resuming: AtomicU64::new(0),
        reconnecting: AtomicU64::new(0),
        load,
        opts,
        target,
        stopping: AtomicBool::new(false),
        run_id: token::unix_nanos() / 1_000_000,
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    let (ready_tx, mut ready_rx) = mpsc::channel::<(usize, bool)>(slots.len().max(1));
    let gate = Arc::new(Semaphore::new(shared.opts.connect_concurrency.max(1)));
    let started = Instant::now();
    let progress = crate::report::Progress::start(
        Arc::clone(&stats),
        shared.opts.progress,
        slots.len(),
        shared.load.duration,
    );

    let mut senders = Vec::with_capacity(slots.len());
    let mut tasks = Vec::with_capacity(slots.len());
    for (index, slot) in slots.iter().enumerate() {
        let (tx, rx) = mpsc::channel::<Cmd>(256);
        senders.push(tx);
        let at = if shared.opts.connect_rate > 0.0 {
            started + Duration::from_secs_f64(index as f64 / shared.opts.connect_rate)
        } else {
            started
        };
        let task = SlotTask {
            index,
            plan: slot.clone(),
            shared: Arc::clone(&shared),
            commands: rx,
            stop: stop_rx.clone(),
            ready_tx: ready_tx.clone(),
            gate: Arc::clone(&gate),
            start_at: at,
        };
        tasks.push(tokio::spawn(Box::pin(task.run())));
    }
    drop(ready_tx);

    // Connect phase: wait for every slot to say ready or failed.
    let mut answered = 0;
    let mut last_ready = started;
    while answered < slots.len() {
        match ready_rx.recv().await {
            Some((slot, ok)) => {
                answered += 1;
                if ok {
                    last_ready = Instant::now();
                    for &room in &slots[slot].rooms {
                        shared.members[room].fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            None => break,
        }
    }
    let all_ready_s = last_ready.duration_since(started).as_secs_f64();
    let slots_ready = stats.counters.ready.load(Ordering::Relaxed);
    progress.phase("connected");
    mode.connected(&shared, slots_ready, all_ready_s).await;
    let server_rss_connected_bytes = server_pid.and_then(crate::procinfo::rss_bytes);

    // Load phase.
    let load_started = Instant::now();
    progress.phase("load");
    if let Some(external) = &external {
        external.start();
    }
    let scheduled = schedule(&shared, &senders, &slots).await;

    // Acks, then deliveries.
    progress.phase("drain");
    let drained = mode.drain(&shared, scheduled, external.as_deref()).await;
    let load_window_s = load_started.elapsed().as_secs_f64();

    shared.stopping.store(true, Ordering::Relaxed);
    if stop_tx.send(true).is_err() {
        // Every slot already ended.
    }
    drop(senders);
    let mut results = Vec::with_capacity(tasks.len());
    for task in tasks {
        match task.await {
            Ok(r) => results.push(r),
            Err(e) => stats.error(format!("slot task: {e}")),
        }
    }
    progress.finish();

    // Loss accounting: acked seqs per room against every ready slot.
    let mut acked: Vec<Vec<i64>> = vec![Vec::new(); shared.plan_rooms.len()];
    for r in &results {
        for &(room, seq) in &r.acked {
            acked[room].push(seq);
        }
    }
    if let Some(external) = &external {
        external.add_to(&mut acked);
    }
    for seqs in &mut acked {
        seqs.sort_unstable();
        seqs.dedup();
    }
    let acked = mode.pool_acked(acked).await;
    let mut losses = LossAccount::default();
    for r in results.iter().filter(|r| r.ready) {
        for (room, receipts) in &r.receipts {
            losses.tally(&acked[*room], receipts);
        }
    }
    // Cross-check figures: the tallies, and each room's highest known seq.
    let mut known_max: Vec<i64> = acked
        .iter()
        .map(|seqs| seqs.last().copied().unwrap_or(0))
        .collect();
    let mut frames = FrameTally::default();
    for r in results {
        for (room, receipts) in &r.receipts {
            known_max[*room] = known_max[*room].max(receipts.max_seq());
        }
        for g in &r.tally.unresolved {
            known_max[g.room] = known_max[g.room].max(g.lower);
        }
        frames.merge(r.tally);
    }
    let counters = stats.counters.snapshot();
    let load_s = shared.load.duration.as_secs_f64().max(1e-3);
    EngineResult {
        slots: slots.len(),
        slots_ready,
        all_ready_s,
        connect: Summary::of(&stats.connect.merged()),
        ready: Summary::of(&stats.ready.merged()),
        latency: Summary::of(&stats.latency.merged()),
        ack: Summary::of(&stats.ack.merged()),
        losses,
        load_window_s,
        deliveries_per_sec: (losses.delivered + losses.recovered) as f64 / load_window_s.max(1e-3),
        sends_per_sec: counters.sent as f64 / load_s,
        drained,
        counters,
        closes: stats.closes_by_code(),
        errors: stats.errors_by_kind(),
        server_rss_connected_bytes,
        frames,
        known_max,
    }
}
