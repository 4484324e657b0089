//! The WebSocket engine every socket scenario runs on.
//!
//! A run has *slots*: logical clients that keep their identity (and what
//! they received) across reconnects. Each slot is one task holding one
//! socket: it connects (paced), waits for `ready`, then serves commands
//! from the scheduler (send a message, type, set presence, drop the
//! connection) and reads frames. When its socket is dropped by the harness
//! (churn) or closed by the server (e.g. 4009 slow consumer), the slot
//! reconnects and sends `resume` with the last contiguous seq of each room;
//! what arrives before `resumed` is counted as recovered.
//!
//! Phases: connect every slot → load for the duration (open loop, paced by
//! due count, so a slow server shows up as latency rather than as a lower
//! send rate) → wait for every ack → drain until every expected delivery
//! arrived (bounded) → close every socket → account for losses.
//!
//! Every loop is bounded: the scheduler by its total count and the
//! duration, the drain by `drain_timeout`, reconnects by `max_reconnects`.
//!
//! Beside the loss ledger, each slot keeps a [`FrameTally`] for the server
//! cross-check (`servercheck`): every `message.created` frame read on any
//! connection, the frames each completed `resume` replayed (the `resumed`
//! seq minus the seq resumed from: seqs are dense), the frames read during
//! a resume a close cut short, and for each closed connection the seqs of
//! its rooms it may have been queued but did not read.

use std::borrow::Cow;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use parley_actors::domain::{PresenceStatus, RoomId};
use parley_actors::protocol::{ClientFrame, ServerFrame, close};
use serde::{Deserialize, Serialize};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio_tungstenite::tungstenite::Message;

use crate::client::{self, OpenError, Target};
use crate::ledger::{LossAccount, RoomReceipts, SeqSet};
use crate::servercheck::{self, FrameTally, GenReads};
use crate::stats::{self, Stats, Summary};
use crate::token::{self, Token};

/// One logical client.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SlotPlan {
    /// Access token (`None`: no `Authorization`, for the calibration server).
    pub token: Option<Arc<str>>,
    /// Indexes into [`Plan::rooms`] this slot is a member of.
    pub rooms: Vec<usize>,
    /// Source address to bind before connecting.
    pub bind: Option<IpAddr>,
}

/// The traffic of a run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Load {
    /// How long the scheduler sends.
    pub duration: Duration,
    /// `message.send` per second, all publishers together.
    pub msg_rate: f64,
    /// `(slot, room)` pairs that publish, used round robin.
    pub publishers: Vec<(usize, usize)>,
    /// `typing` per second over all slots (round robin over their first room).
    pub typing_rate: f64,
    /// `presence.set` per second over all slots.
    pub presence_rate: f64,
    /// Share of the non-publishing slots dropped (and resumed) each second.
    pub churn_per_sec: f64,
    /// Wait before reconnecting after a drop or a close.
    pub reconnect_delay: Duration,
    /// Message body size (the latency token, padded).
    pub body_bytes: usize,
}

impl Load {
    /// No traffic: only hold the sockets for `duration`.
    pub fn idle(duration: Duration) -> Self {
        Self {
            duration,
            msg_rate: 0.0,
            publishers: Vec::new(),
            typing_rate: 0.0,
            presence_rate: 0.0,
            churn_per_sec: 0.0,
            reconnect_delay: Duration::from_millis(100),
            body_bytes: 0,
        }
    }
}

/// How the engine connects and waits.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EngineOpts {
    /// New connections per second while connecting (0: as fast as the
    /// concurrency allows).
    pub connect_rate: f64,
    /// Handshakes in flight at once.
    pub connect_concurrency: usize,
    /// Per connection, start → `ready`.
    pub connect_timeout: Duration,
    /// Longest wait for acks and deliveries after the load ends.
    pub drain_timeout: Duration,
    /// Reconnect attempts per slot over the run.
    pub max_reconnects: u32,
    /// Show a progress bar.
    pub progress: bool,
    /// Wait between the end of the connect phase and the load (lets the
    /// connect storm's `presence` burst pass; `idle` reads the server's RSS
    /// after it).
    pub settle: Duration,
    /// Processes to spread the slots over (1: this one; see `workers`).
    pub workers: usize,
}

/// Everything the engine needs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Plan {
    pub target: Target,
    pub rooms: Vec<RoomId>,
    pub slots: Vec<SlotPlan>,
    pub load: Load,
    pub opts: EngineOpts,
    /// Messages acked outside the engine (the soak's REST sends). Kept by
    /// the process that runs the plan; a worker never has any.
    #[serde(skip)]
    pub external: Option<Arc<ExternalAcks>>,
}

/// Messages stored by another sender of the same run (the soak's REST
/// mix), entered in the ledger like the engine's own acks: each is expected
/// on every ready member slot of its room, and the drain waits for them and
/// for the sender to finish (so no ack comes in after the count). The
/// sender waits for [`started`](Self::started): it sends only once every
/// socket is ready, as the engine's own publishers do.
#[derive(Debug)]
pub struct ExternalAcks {
    seqs: std::sync::Mutex<Vec<(usize, i64)>>,
    finished: AtomicBool,
    load: watch::Sender<bool>,
}

impl Default for ExternalAcks {
    fn default() -> Self {
        Self {
            seqs: std::sync::Mutex::default(),
            finished: AtomicBool::new(false),
            load: watch::Sender::new(false),
        }
    }
}

impl ExternalAcks {
    /// The engine's load phase has begun (or the engine has ended).
    pub fn start(&self) {
        self.load.send_replace(true);
    }

    /// Waits for [`start`](Self::start).
    pub async fn started(&self) {
        let mut rx = self.load.subscribe();
        // The sender lives in `self`, so this cannot fail.
        let _ = rx.wait_for(|started| *started).await;
    }

    /// The sender has had every answer it will get.
    pub fn finish(&self) {
        self.finished.store(true, Ordering::Release);
    }

    /// Whether [`finish`](Self::finish) was called.
    pub fn finished(&self) -> bool {
        self.finished.load(Ordering::Acquire)
    }

    /// Records that `seq` was stored in the plan's room `room`.
    pub fn push(&self, room: usize, seq: i64) {
        self.lock().push((room, seq));
    }

    /// Deliveries these acks call for, given each room's ready members.
    pub fn expected(&self, members: impl Fn(usize) -> u64) -> u64 {
        self.lock().iter().map(|&(room, _)| members(room)).sum()
    }

    /// Adds the recorded seqs to per-room acked lists (unsorted).
    pub fn add_to(&self, acked: &mut [Vec<i64>]) {
        for &(room, seq) in self.lock().iter() {
            if let Some(seqs) = acked.get_mut(room) {
                seqs.push(seq);
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(usize, i64)>> {
        self.seqs.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// What a run measured.
#[derive(Debug, Clone, Serialize)]
pub struct EngineResult {
    pub slots: usize,
    pub slots_ready: u64,
    /// First connection start → last `ready`, seconds.
    pub all_ready_s: f64,
    pub connect: Summary,
    pub ready: Summary,
    /// End-to-end latency of live deliveries.
    pub latency: Summary,
    /// Send → ack.
    pub ack: Summary,
    pub losses: LossAccount,
    /// Load start → last delivery (or drain timeout), seconds.
    pub load_window_s: f64,
    pub deliveries_per_sec: f64,
    pub sends_per_sec: f64,
    /// Whether the drain ended because every expected delivery arrived.
    pub drained: bool,
    pub counters: stats::CounterSnapshot,
    pub closes: std::collections::BTreeMap<String, u64>,
    pub errors: std::collections::BTreeMap<String, u64>,
    /// Server RSS with every socket open (before the load), when local.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_rss_connected_bytes: Option<u64>,
    /// Frame accounting for the server cross-check, summed over slots.
    pub frames: FrameTally,
    /// Per room, the highest seq the harness learnt (acked or received):
    /// the horizon of connections not followed by a completed resume.
    #[serde(skip)]
    pub known_max: Vec<i64>,
}

enum Cmd {
    Send { room: usize },
    Typing,
    Presence(PresenceStatus),
    Drop,
}

/// State shared by the slots and the engine.
#[derive(Debug)]
struct Shared {
    plan_rooms: Vec<RoomId>,
    room_ids: Vec<String>,
    stats: Arc<Stats>,
    /// Ready slots per room, fixed once connecting is over.
    members: Vec<AtomicU64>,
    /// Sum over acks of the room's member count.
    expected: AtomicU64,
    /// Slots between `resume` and `resumed`.
    resuming: AtomicU64,
    /// Slots waiting to reconnect.
    reconnecting: AtomicU64,
    load: Load,
    opts: EngineOpts,
    target: Target,
    stopping: AtomicBool,
    /// Distinguishes this run's `client_id`s from earlier runs'.
    run_id: u64,
}

impl Shared {
    /// What a worker reports while draining.
    fn progress(&self, scheduled: u64) -> impl Fn() -> crate::workers::Draining + '_ {
        move || crate::workers::Draining {
            scheduled,
            expected: self.expected.load(Ordering::Relaxed),
            resuming: self.resuming.load(Ordering::Relaxed),
            reconnecting: self.reconnecting.load(Ordering::Relaxed),
            counters: self.stats.counters.snapshot(),
        }
    }
}

/// What a slot hands back.
#[derive(Debug, Default)]
struct SlotResult {
    ready: bool,
    receipts: Vec<(usize, RoomReceipts)>,
    acked: Vec<(usize, i64)>,
    tally: FrameTally,
}

/// The frames the hot path needs, borrowed from the text (no allocation
/// for plain ASCII bodies). Anything this does not fit is parsed as a
/// [`ServerFrame`].
#[derive(Deserialize)]
struct Hot<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(default, borrow)]
    room_id: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    message: Option<HotMessage<'a>>,
    #[serde(rename = "ref", default, borrow)]
    reference: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct HotMessage<'a> {
    seq: i64,
    #[serde(borrow)]
    body: Cow<'a, str>,
    #[serde(borrow)]
    room_id: Cow<'a, str>,
}

/// Runs a plan to the end: in this process, or spread over worker
/// processes when `opts.workers` > 1.
pub async fn run(plan: Plan, stats: Arc<Stats>, server_pid: Option<u32>) -> EngineResult {
    if plan.opts.workers > 1 {
        return crate::workers::run(plan, stats, server_pid).await;
    }
    run_here(plan, stats, server_pid, Mode::Alone).await
}

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

/// A small xorshift generator: churn picks need no crypto.
#[derive(Debug)]
pub struct XorShift(u64);

impl XorShift {
    /// Seeded (a zero seed is replaced).
    pub fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }

    /// The next number.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// A number below `n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

/// Sends the load's commands: open loop, by due count, for the duration.
/// Returns how many message sends were handed to slots.
async fn schedule(shared: &Shared, senders: &[mpsc::Sender<Cmd>], slots: &[SlotPlan]) -> u64 {
    let load = &shared.load;
    let stats = &shared.stats;
    let started = Instant::now();
    let secs = load.duration.as_secs_f64();
    let total = |rate: f64| (rate * secs).round() as u64;
    let (msg_total, typing_total, presence_total) = (
        if load.publishers.is_empty() {
            0
        } else {
            total(load.msg_rate)
        },
        total(load.typing_rate),
        total(load.presence_rate),
    );
    let (mut msgs, mut typings, mut presences) = (0u64, 0u64, 0u64);
    let publishing: std::collections::HashSet<usize> =
        load.publishers.iter().map(|(s, _)| *s).collect();
    let churnable: Vec<usize> = (0..slots.len())
        .filter(|s| !publishing.contains(s))
        .collect();
    let mut rng = XorShift::new(token::unix_nanos());
    let mut next_churn = started + Duration::from_secs(1);
    let mut tick = tokio::time::interval(Duration::from_millis(2));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut queued_msgs = 0u64;
    let send = |slot: usize, cmd: Cmd| {
        if senders[slot].try_send(cmd).is_err() {
            // The slot's queue is full or it ended: the harness, not the
            // server, is behind.
            stats.error("harness_slot_backlog");
            false
        } else {
            true
        }
    };
    loop {
        tick.tick().await;
        let elapsed = started.elapsed();
        let done = elapsed >= load.duration;
        let t = elapsed.as_secs_f64().min(secs);
        let due = |rate: f64, cap: u64| (((rate * t) as u64) + u64::from(done)).min(cap);
        while msgs < due(load.msg_rate, msg_total) {
            let (slot, room) = load.publishers[(msgs as usize) % load.publishers.len()];
            if send(slot, Cmd::Send { room }) {
                queued_msgs += 1;
            }
            msgs += 1;
        }
        while typings < due(load.typing_rate, typing_total) && !slots.is_empty() {
            send((typings as usize) % slots.len(), Cmd::Typing);
            typings += 1;
        }
        while presences < due(load.presence_rate, presence_total) && !slots.is_empty() {
            let status = if presences % 2 == 0 {
                PresenceStatus::Away
            } else {
                PresenceStatus::Online
            };
            send(
                (presences as usize * 7919) % slots.len(),
                Cmd::Presence(status),
            );
            presences += 1;
        }
        if load.churn_per_sec > 0.0 && Instant::now() >= next_churn && !done {
            next_churn += Duration::from_secs(1);
            let n = ((churnable.len() as f64) * load.churn_per_sec).round() as usize;
            for _ in 0..n.min(churnable.len()) {
                send(churnable[rng.below(churnable.len())], Cmd::Drop);
            }
        }
        if done {
            break;
        }
    }
    queued_msgs
}

/// One slot's task.
struct SlotTask {
    index: usize,
    plan: SlotPlan,
    shared: Arc<Shared>,
    commands: mpsc::Receiver<Cmd>,
    stop: watch::Receiver<bool>,
    ready_tx: mpsc::Sender<(usize, bool)>,
    gate: Arc<Semaphore>,
    start_at: Instant,
}

/// How a connection generation ended.
enum Ended {
    /// The run is over.
    Stop,
    /// Reconnect (after a drop or a server close).
    Reconnect,
    /// Do not reconnect (auth or policy close).
    Fatal,
}

/// What a slot keeps across its connections.
struct SlotState {
    receipts: Vec<(usize, RoomReceipts)>,
    acked: Vec<(usize, i64)>,
    /// ref → (room for a message send, sent at).
    pending: HashMap<u64, (Option<usize>, Instant)>,
    next_ref: u64,
    next_msg: u64,
    /// While resuming: room → the room's last seq at reconnect.
    resume_targets: Option<Vec<i64>>,
    /// The seq each room was resumed from by the last `resume`.
    resume_from: Vec<(usize, i64)>,
    latencies: Vec<u64>,
    /// Cross-check accounting.
    tally: FrameTally,
    /// Seqs read on the current connection, parallel to `receipts`.
    connection_reads: Vec<SeqSet>,
    /// Connections closed since the last completed resume.
    closed: Vec<GenReads>,
}

impl SlotState {
    /// Starts a connection's reads: from `lower(receipts)` in each room.
    fn open_connection(&mut self, lower: impl Fn(&RoomReceipts) -> i64) {
        self.connection_reads = self
            .receipts
            .iter()
            .map(|(_, r)| SeqSet::new(lower(r)))
            .collect();
    }

    /// Files the current connection's reads among the closed ones.
    fn close_connection(&mut self) {
        for (set, (room, _)) in self.connection_reads.drain(..).zip(&self.receipts) {
            self.closed.push(GenReads {
                room: *room,
                lower: set.base(),
                reads: set.len(),
            });
        }
    }
}

impl SlotTask {
    async fn run(mut self) -> SlotResult {
        tokio::time::sleep_until(self.start_at.into()).await;
        let stats = Arc::clone(&self.shared.stats);
        let mut state = SlotState {
            receipts: Vec::new(),
            acked: Vec::new(),
            pending: HashMap::new(),
            next_ref: 0,
            next_msg: 0,
            resume_targets: None,
            resume_from: Vec::new(),
            latencies: Vec::with_capacity(256),
            tally: FrameTally::default(),
            connection_reads: Vec::new(),
            closed: Vec::new(),
        };
        let mut first = true;
        let mut reconnects = 0u32;
        loop {
            stats::inc(&stats.counters.connect_attempts);
            let opened = {
                let _permit = self.gate.acquire().await;
                client::open(
                    &self.shared.target,
                    self.plan.token.as_deref(),
                    self.plan.bind,
                    self.shared.opts.connect_timeout,
                )
                .await
            };
            let mut opened = match opened {
                Ok(o) => o,
                Err(e) => {
                    stats::inc(&stats.counters.connect_failures);
                    stats.error(e.kind());
                    if e == OpenError::Closed(close::SLOW_CONSUMER) {
                        state.tally.slow_consumer_closes += 1;
                    }
                    if first {
                        self.say_ready(false).await;
                        return self.finish(state, false);
                    }
                    let fatal = matches!(e, OpenError::Http(401 | 403));
                    reconnects += 1;
                    if fatal
                        || reconnects > self.shared.opts.max_reconnects
                        || self.shared.stopping.load(Ordering::Relaxed)
                    {
                        stats::dec(&self.shared.reconnecting);
                        return self.finish(state, true);
                    }
                    tokio::time::sleep(self.shared.load.reconnect_delay).await;
                    continue;
                }
            };
            stats.connect.record(self.index, opened.connect_us);
            stats.ready.record(self.index, opened.ready_us);
            stats::inc(&stats.counters.ready);
            stats::inc(&stats.counters.open);
            if first {
                for &room in &self.plan.rooms {
                    let id = self.shared.plan_rooms[room];
                    let base = opened
                        .ready
                        .rooms
                        .iter()
                        .find(|r| r.id == id)
                        .map_or(0, |r| r.last_seq);
                    state.receipts.push((room, RoomReceipts::new(base)));
                }
                // Nothing at or below `ready`'s last_seq is queued live.
                state.open_connection(|r| r.live.base());
                self.say_ready(true).await;
                first = false;
            } else {
                stats::dec(&self.shared.reconnecting);
                // A message stored before `ready` may be published after
                // it: count from the (lower) seq resumed from.
                state.open_connection(RoomReceipts::resume_from);
                if !state.receipts.is_empty() {
                    self.resume(&mut opened, &mut state).await;
                }
            }
            let ended = self.serve(opened.ws, &mut state).await;
            stats::dec(&stats.counters.open);
            if state.resume_targets.take().is_some() {
                stats::dec(&self.shared.resuming);
                state.tally.on_end();
            }
            state.close_connection();
            // Sends in flight on a closed socket will never be acked.
            for (_, (room, _)) in state.pending.drain() {
                if room.is_some() {
                    stats::inc(&stats.counters.send_errors);
                    stats.error("ack_lost_on_close");
                    state.tally.sends_in_doubt += 1;
                }
            }
            match ended {
                Ended::Stop | Ended::Fatal => {
                    if matches!(ended, Ended::Stop) {
                        state.tally.stopped += 1;
                    }
                    return self.finish(state, true);
                }
                Ended::Reconnect => {
                    reconnects += 1;
                    if reconnects > self.shared.opts.max_reconnects
                        || self.shared.stopping.load(Ordering::Relaxed)
                    {
                        return self.finish(state, true);
                    }
                    stats::inc(&stats.counters.reconnects);
                    stats::inc(&self.shared.reconnecting);
                    tokio::time::sleep(self.shared.load.reconnect_delay).await;
                }
            }
        }
    }

    async fn say_ready(&self, ok: bool) {
        if self.ready_tx.send((self.index, ok)).await.is_err() {
            // The engine stopped listening: nothing to tell.
        }
    }

    fn finish(&self, mut state: SlotState, ready: bool) -> SlotResult {
        self.shared
            .stats
            .latency
            .record_many(self.index, &state.latencies);
        state.latencies.clear();
        state.close_connection();
        state.tally.unresolved.append(&mut state.closed);
        SlotResult {
            ready,
            receipts: state.receipts,
            acked: state.acked,
            tally: state.tally,
        }
    }

    async fn resume(&self, opened: &mut client::Opened, state: &mut SlotState) {
        let mut rooms = std::collections::BTreeMap::new();
        let mut targets = vec![0i64; self.shared.plan_rooms.len()];
        state.resume_from.clear();
        for (room, receipts) in &state.receipts {
            let id = self.shared.plan_rooms[*room];
            rooms.insert(id, receipts.resume_from());
            state.resume_from.push((*room, receipts.resume_from()));
            targets[*room] = opened
                .ready
                .rooms
                .iter()
                .find(|r| r.id == id)
                .map_or(0, |r| r.last_seq);
        }
        let frame = ClientFrame::Resume {
            rooms,
            reference: None,
        };
        let stats = &self.shared.stats;
        match serde_json::to_string(&frame) {
            Ok(text) => {
                if opened.ws.send(Message::text(text)).await.is_ok() {
                    stats::inc(&stats.counters.resumes);
                    stats::inc(&self.shared.resuming);
                    state.resume_targets = Some(targets);
                } else {
                    stats.error("resume_send_failed");
                }
            }
            Err(e) => stats.error(format!("resume encode: {e}")),
        }
    }

    /// One connection generation: commands and frames until it ends.
    async fn serve(&mut self, mut ws: client::Ws, state: &mut SlotState) -> Ended {
        let stats = Arc::clone(&self.shared.stats);
        // Made once, not on every turn of the loop: this loop runs once per
        // received frame, and the harness shares the CPU with the server.
        let mut stop = self.stop.clone();
        let stopped = async move {
            while !*stop.borrow_and_update() {
                if stop.changed().await.is_err() {
                    break;
                }
            }
        };
        tokio::pin!(stopped);
        // The scheduler drops its senders when the load ends.
        let mut commands_open = true;
        loop {
            tokio::select! {
                // In this order, with no random start: a frame is the common
                // case, and a command must not wait behind a stop.
                biased;
                cmd = self.commands.recv(), if commands_open => {
                    let Some(cmd) = cmd else {
                        commands_open = false;
                        continue;
                    };
                    let frame = match cmd {
                        Cmd::Drop => {
                            stats::inc(&stats.counters.client_drops);
                            state.tally.closes_unseen += 1;
                            // Abrupt: no close handshake, like a lost network.
                            drop(ws);
                            return Ended::Reconnect;
                        }
                        Cmd::Send { room } => self.message_frame(room, state),
                        Cmd::Typing => match state.receipts.first() {
                            Some((room, _)) => ClientFrame::Typing {
                                room_id: self.shared.plan_rooms[*room],
                                reference: Some(self.pending(state, None)),
                            },
                            None => continue,
                        },
                        Cmd::Presence(status) => ClientFrame::PresenceSet {
                            status,
                            reference: Some(self.pending(state, None)),
                        },
                    };
                    match serde_json::to_string(&frame) {
                        Ok(text) => {
                            if let Err(e) = ws.send(Message::text(text)).await {
                                stats.close(format!("send: {}", client::short_ws_error(&e)));
                                state.tally.closes_unseen += 1;
                                return Ended::Reconnect;
                            }
                        }
                        Err(e) => stats.error(format!("encode: {e}")),
                    }
                }
                msg = ws.next() => {
                    match msg {
                        Some(Ok(Message::Text(text))) => self.on_text(&text, state),
                        Some(Ok(Message::Close(frame))) => {
                            let code = frame.map_or(1005, |f| u16::from(f.code));
                            stats.close(code.to_string());
                            stats::inc(&stats.counters.server_closes);
                            if code == close::SLOW_CONSUMER {
                                state.tally.slow_consumer_closes += 1;
                            }
                            if matches!(code, close::UNAUTHENTICATED | close::REVOKED | close::POLICY) {
                                return Ended::Fatal;
                            }
                            return Ended::Reconnect;
                        }
                        Some(Ok(_)) => {}
                        Some(Err(e)) => {
                            stats.close(format!("error: {}", client::short_ws_error(&e)));
                            stats::inc(&stats.counters.server_closes);
                            state.tally.closes_unseen += 1;
                            return Ended::Reconnect;
                        }
                        None => {
                            stats.close("eof");
                            stats::inc(&stats.counters.server_closes);
                            state.tally.closes_unseen += 1;
                            return Ended::Reconnect;
                        }
                    }
                }
                () = &mut stopped => {
                    let closing = tokio::time::timeout(Duration::from_secs(2), ws.close(None));
                    if closing.await.is_err() {
                        stats.error("close_timeout");
                    }
                    return Ended::Stop;
                }
            }
        }
    }

    fn pending(&self, state: &mut SlotState, room: Option<usize>) -> String {
        state.next_ref += 1;
        state.pending.insert(state.next_ref, (room, Instant::now()));
        state.next_ref.to_string()
    }

    fn message_frame(&self, room: usize, state: &mut SlotState) -> ClientFrame {
        state.next_msg += 1;
        let body = token::encode(
            Token {
                publisher: u32::try_from(self.index).unwrap_or(u32::MAX),
                sequence: state.next_msg,
                sent_unix_nanos: token::unix_nanos(),
            },
            self.shared.load.body_bytes,
        );
        stats::inc(&self.shared.stats.counters.sent);
        let reference = self.pending(state, Some(room));
        ClientFrame::MessageSend {
            room_id: self.shared.plan_rooms[room],
            body,
            reply_to: None,
            // Unique per run: the server treats a repeated client_id from the
            // same user in the same room as a retry and does not publish it.
            client_id: Some(format!(
                "lt-{}-{}-{}",
                self.shared.run_id, self.index, state.next_msg
            )),
            reference: Some(reference),
        }
    }

    fn room_index(&self, id: &str, state: &SlotState) -> Option<usize> {
        state
            .receipts
            .iter()
            .position(|(room, _)| self.shared.room_ids[*room] == id)
    }

    fn on_text(&self, text: &str, state: &mut SlotState) {
        let stats = &self.shared.stats;
        let Ok(hot) = serde_json::from_str::<Hot<'_>>(text) else {
            return self.on_other(text, state);
        };
        match hot.kind.as_ref() {
            "message.created" => {
                let Some(message) = hot.message else {
                    stats::inc(&stats.counters.bad_frames);
                    return;
                };
                // The server counts every frame it queues, in any room.
                state.tally.on_frame(state.resume_targets.is_some());
                let room_id = hot.room_id.unwrap_or(message.room_id);
                let Some(i) = self.room_index(&room_id, state) else {
                    stats::inc(&stats.counters.events);
                    return;
                };
                if let Some(reads) = state.connection_reads.get_mut(i) {
                    reads.insert(message.seq);
                }
                let room = state.receipts[i].0;
                let replay = state
                    .resume_targets
                    .as_ref()
                    .is_some_and(|t| message.seq <= t[room]);
                if state.receipts[i].1.record(message.seq, replay) {
                    if replay {
                        stats::inc(&stats.counters.recovered);
                    } else {
                        stats::inc(&stats.counters.delivered);
                        if let Some(tok) = token::decode(&message.body) {
                            state
                                .latencies
                                .push(token::latency_us(&tok, token::unix_nanos()));
                            if state.latencies.len() >= 256 {
                                stats.latency.record_many(self.index, &state.latencies);
                                state.latencies.clear();
                            }
                        }
                    }
                } else {
                    stats::inc(&stats.counters.duplicates);
                }
            }
            "ack" => {
                let Some(reference) = hot.reference.and_then(|r| r.parse::<u64>().ok()) else {
                    return;
                };
                let Some((room, at)) = state.pending.remove(&reference) else {
                    return;
                };
                stats.ack.record(self.index, client::elapsed_us(at));
                if let (Some(room), Some(message)) = (room, hot.message) {
                    let stale = state
                        .receipts
                        .iter()
                        .find(|(r, _)| *r == room)
                        .is_some_and(|(_, receipts)| message.seq <= receipts.live.base());
                    if stale {
                        // Acked with a message from before this run (an
                        // idempotent retry): nothing new will be delivered.
                        stats.error("ack_of_existing_message");
                        state.tally.acked_existing += 1;
                    }
                    stats::inc(&stats.counters.acked);
                    state.acked.push((room, message.seq));
                    let members = self.shared.members[room].load(Ordering::Relaxed);
                    self.shared.expected.fetch_add(members, Ordering::Relaxed);
                }
            }
            _ => self.on_other(text, state),
        }
    }

    fn on_other(&self, text: &str, state: &mut SlotState) {
        let stats = &self.shared.stats;
        let frame = match serde_json::from_str::<ServerFrame>(text) {
            Ok(frame) => frame,
            Err(_) => {
                stats::inc(&stats.counters.bad_frames);
                return;
            }
        };
        match frame {
            ServerFrame::Error {
                reference, code, ..
            } => {
                if let Some((room, _)) = reference
                    .and_then(|r| r.parse::<u64>().ok())
                    .and_then(|r| state.pending.remove(&r))
                    && room.is_some()
                {
                    stats::inc(&stats.counters.send_errors);
                    if servercheck::send_error_in_doubt(&code) {
                        state.tally.sends_in_doubt += 1;
                    }
                }
                stats.error(code);
            }
            ServerFrame::Resumed { rooms, .. } => {
                if state.resume_targets.take().is_some() {
                    stats::dec(&self.shared.resuming);
                    // Each resumed room replayed every seq after the one
                    // resumed from, up to the seq it reports.
                    let caught_up = |room: usize| rooms.get(&self.shared.plan_rooms[room]).copied();
                    let replayed = state
                        .resume_from
                        .iter()
                        .filter_map(|(room, from)| caught_up(*room).map(|to| to - from))
                        .map(|n| u64::try_from(n).unwrap_or(0))
                        .sum();
                    let closed = std::mem::take(&mut state.closed);
                    state.tally.on_resumed(replayed, closed, caught_up);
                }
            }
            ServerFrame::MessageCreated { .. } => {
                // Not in the shape the hot path reads: counted for the
                // cross-check, not in the ledger.
                state.tally.on_frame(state.resume_targets.is_some());
                stats::inc(&stats.counters.events);
            }
            ServerFrame::ResyncRequired { .. } => {
                stats::inc(&stats.counters.resyncs);
                stats.error("resync_required");
            }
            ServerFrame::Ready { .. } => stats.error("unexpected_ready"),
            _ => stats::inc(&stats.counters.events),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_external_sender_waits_for_the_load() {
        let acks = Arc::new(ExternalAcks::default());
        let waiter = tokio::spawn({
            let acks = Arc::clone(&acks);
            async move { acks.started().await }
        });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished(), "released before the load started");
        acks.start();
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("released once started")
            .expect("joined");
        // Later waiters return at once.
        tokio::time::timeout(Duration::from_secs(5), acks.started())
            .await
            .expect("already started");
    }

    #[test]
    fn external_acks_join_the_ledger_and_the_drain() {
        let acks = ExternalAcks::default();
        acks.push(0, 7);
        acks.push(1, 3);
        acks.push(0, 5);
        acks.push(9, 1); // not a room of the plan: ignored by add_to
        let mut acked = vec![vec![6], vec![]];
        acks.add_to(&mut acked);
        assert_eq!(acked, [vec![6, 7, 5], vec![3]]);
        // Room 0 has 10 ready members, room 1 has 4, room 9 none.
        let members = [10, 4];
        assert_eq!(
            acks.expected(|room| members.get(room).copied().unwrap_or(0)),
            24
        );
        assert!(!acks.finished());
        acks.finish();
        assert!(acks.finished());
    }

    #[test]
    fn the_hot_parser_reads_message_created_and_acks() {
        let room = RoomId::new();
        let text = format!(
            r#"{{"type":"message.created","room_id":"{room}","message":{{"id":"x","room_id":"{room}","seq":42,"author_id":null,"body":"lt1|p1|s2|t3|","reply_to":null,"created_at":"t","edited_at":null,"deleted":false,"reactions":{{}}}}}}"#
        );
        let hot: Hot<'_> = serde_json::from_str(&text).unwrap();
        assert_eq!(hot.kind, "message.created");
        let message = hot.message.unwrap();
        assert_eq!(message.seq, 42);
        assert_eq!(message.room_id, room.to_string());
        assert!(token::decode(&message.body).is_some());
        let ack: Hot<'_> = serde_json::from_str(r#"{"type":"ack","ref":"7"}"#).unwrap();
        assert_eq!(ack.reference.as_deref(), Some("7"));
        // An error frame's `message` is a string: the hot parser declines it
        // and the full protocol type takes over.
        assert!(
            serde_json::from_str::<Hot<'_>>(
                r#"{"type":"error","ref":"1","code":"rate_limited","message":"slow down"}"#
            )
            .is_err()
        );
    }

    /// A slot task with no socket, to feed frames to by hand.
    fn bare_slot(room: RoomId) -> (SlotTask, SlotState) {
        let (_tx, commands) = mpsc::channel(1);
        let (_stop_tx, stop) = watch::channel(false);
        let (ready_tx, _ready_rx) = mpsc::channel(1);
        let opts = EngineOpts {
            connect_rate: 0.0,
            connect_concurrency: 1,
            connect_timeout: Duration::from_secs(1),
            drain_timeout: Duration::from_secs(1),
            max_reconnects: 1,
            progress: false,
            settle: Duration::ZERO,
            workers: 1,
        };
        let shared = Arc::new(Shared {
            plan_rooms: vec![room],
            room_ids: vec![room.to_string()],
            stats: Arc::new(Stats::new()),
            members: vec![AtomicU64::new(1)],
            expected: AtomicU64::new(0),
            resuming: AtomicU64::new(0),
            reconnecting: AtomicU64::new(0),
            load: Load::idle(Duration::ZERO),
            opts,
            target: Target::parse("http://127.0.0.1:9", false).unwrap(),
            stopping: AtomicBool::new(false),
            run_id: 1,
        });
        let task = SlotTask {
            index: 0,
            plan: SlotPlan {
                token: None,
                rooms: vec![0],
                bind: None,
            },
            shared,
            commands,
            stop,
            ready_tx,
            gate: Arc::new(Semaphore::new(1)),
            start_at: Instant::now(),
        };
        let state = SlotState {
            receipts: vec![(0, RoomReceipts::new(0))],
            acked: Vec::new(),
            pending: HashMap::new(),
            next_ref: 0,
            next_msg: 0,
            resume_targets: None,
            resume_from: Vec::new(),
            latencies: Vec::new(),
            tally: FrameTally::default(),
            connection_reads: Vec::new(),
            closed: Vec::new(),
        };
        (task, state)
    }

    fn created(room: RoomId, seq: i64) -> String {
        format!(
            r#"{{"type":"message.created","room_id":"{room}","message":{{"id":"x","room_id":"{room}","seq":{seq},"author_id":null,"body":"lt1|p1|s{seq}|t3|","reply_to":null,"created_at":"t","edited_at":null,"deleted":false,"reactions":{{}}}}}}"#
        )
    }

    #[test]
    fn a_churned_slot_tallies_what_the_server_counts() {
        let room = RoomId::new();
        let (task, mut state) = bare_slot(room);
        // The server queues to the first connection 1..=6 live; it reads
        // 1..=4, then the harness drops it.
        state.open_connection(|r| r.live.base());
        for seq in 1..=4 {
            task.on_text(&created(room, seq), &mut state);
        }
        state.close_connection();
        // 7 is stored while the slot is away. The second connection is
        // queued 8 live before its `resume` (from 4) pauses the room; the
        // replay sends 5..=8, the catch-up 9, then 10 comes live before
        // `resumed` (9), and 11 after it.
        state.open_connection(RoomReceipts::resume_from);
        assert_eq!(state.receipts[0].1.resume_from(), 4);
        state.resume_from = vec![(0, 4)];
        state.resume_targets = Some(vec![7]);
        for seq in [8, 5, 6, 7, 8, 9, 10] {
            task.on_text(&created(room, seq), &mut state);
        }
        task.on_text(
            &format!(r#"{{"type":"resumed","rooms":{{"{room}":9}}}}"#),
            &mut state,
        );
        assert!(state.resume_targets.is_none());
        task.on_text(&created(room, 11), &mut state);
        // The run stops.
        state.close_connection();
        let mut tally = std::mem::take(&mut state.tally);
        tally.unresolved.append(&mut state.closed);
        let known = state.receipts[0].1.max_seq();
        assert_eq!(known, 11);
        assert_eq!((tally.frames, tally.replayed, tally.in_doubt), (12, 5, 0));
        // The server counted 6 + 3 live deliveries: within [7, 7 + 5].
        let live = tally.frames - tally.replayed - tally.in_doubt;
        let bound = tally.unread_bound(|_| known);
        assert_eq!((live, bound), (7, 5));
        let server = 6 + 3;
        assert!(live <= server && server <= live + bound);
        // The ledger, for comparison, splits by seq against `ready`'s
        // last_seq (7): it counts the replayed 9 as live (8 live, 3
        // recovered, the second 8 a duplicate). Its split serves losses;
        // the cross-check counts frames instead.
        let r = &state.receipts[0].1;
        assert_eq!((r.live.len(), r.replayed.len(), r.duplicates), (8, 3, 1));
    }

    #[test]
    fn a_resume_cut_short_leaves_its_frames_in_doubt() {
        let room = RoomId::new();
        let (task, mut state) = bare_slot(room);
        state.open_connection(|r| r.live.base());
        task.on_text(&created(room, 1), &mut state);
        state.close_connection();
        state.open_connection(RoomReceipts::resume_from);
        state.resume_from = vec![(0, 1)];
        state.resume_targets = Some(vec![3]);
        for seq in [4, 2, 3] {
            task.on_text(&created(room, seq), &mut state);
        }
        // Closed before `resumed`: what the engine does when serve ends.
        state.resume_targets = None;
        state.tally.on_end();
        state.close_connection();
        let t = &state.tally;
        assert_eq!((t.frames, t.replayed, t.in_doubt), (4, 0, 3));
        assert_eq!(state.closed.len(), 2, "both wait for a horizon");
    }

    #[test]
    fn xorshift_stays_below_its_bound() {
        let mut rng = XorShift::new(0);
        for _ in 0..1000 {
            assert!(rng.below(7) < 7);
        }
    }
}
