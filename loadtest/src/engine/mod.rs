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
//!
//! The files: this one holds the plan, the result and the state the slots
//! share; `external` the acks of another sender of the run; `phases` the
//! run in one process (connect, load, drain, count) and its [`Mode`] seam
//! with the workers; `schedule` the open-loop scheduler; `slot` a slot's
//! task across its connections; `frames` how a slot reads the server's
//! frames and builds its own.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use parley_actors::domain::{PresenceStatus, RoomId};
use serde::{Deserialize, Serialize};

use crate::client::Target;
use crate::ledger::{LossAccount, RoomReceipts};
use crate::servercheck::FrameTally;
use crate::stats::{self, Stats, Summary};

mod external;
mod frames;
mod phases;
mod schedule;
mod slot;

pub use external::ExternalAcks;
pub(crate) use phases::{Mode, run_here};

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

/// Runs a plan to the end: in this process, or spread over worker
/// processes when `opts.workers` > 1.
pub async fn run(plan: Plan, stats: Arc<Stats>, server_pid: Option<u32>) -> EngineResult {
    if plan.opts.workers > 1 {
        return crate::workers::run(plan, stats, server_pid).await;
    }
    run_here(plan, stats, server_pid, Mode::Alone).await
}
