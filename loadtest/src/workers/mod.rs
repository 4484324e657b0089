//! `--workers N`: one run spread over N worker processes.
//!
//! A process may open at most 20,000 files here; a run that needs more
//! sockets than that (or more than one process's share of ephemeral ports)
//! is split. The parent prepares the run as usual (users, rooms), then
//! starts N copies of itself as `parley-loadtest worker` and hands worker
//! `w` every N-th slot (`w`, `w + N`, …), the publishers among them and its
//! share of the typing, presence and connect rates. It talks to each worker
//! in JSON lines over the worker's stdin and stdout:
//!
//! 1. parent → worker: the sub-plan ([`Plan`]);
//! 2. worker → parent: [`ToParent::Counters`] every 200 ms (the parent's
//!    progress bar and `/metrics` show the sum), and [`ToParent::Ready`]
//!    once every slot of the worker answered;
//! 3. parent → worker: [`ToWorker::Go`] once every worker is ready (and the
//!    settle time passed), with each room's members over all workers;
//! 4. worker → parent: [`ToParent::Draining`] every 50 ms once its load is
//!    sent; the parent applies the drain rule of a single process to the
//!    sums and answers [`ToWorker::Stop`];
//! 5. worker → parent: the seqs its slots saw acked ([`ToParent::Acked`]);
//!    parent → worker: every worker's, pooled ([`ToWorker::Pooled`]): a
//!    message published in one worker is expected in every other;
//! 6. worker → parent: its result ([`ToParent::Done`]): loss account,
//!    frame tally, counters, close codes, errors and HDR histograms, which
//!    the parent adds up (histograms merge exactly).
//!
//! A worker whose stdin closes (the parent died) stops as if told to.
//!
//! The files: this one holds the messages of that exchange and [`run`];
//! `worker` the worker's side ([`Link`], [`worker_main`]); `spawn` the
//! shares of the plan and the worker processes; `coordinate` the parent's
//! side of the exchange; `merge` the sum of the workers' results.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::engine::{EngineResult, Plan};
use crate::ledger::LossAccount;
use crate::servercheck::{FrameTally, GenReads};
use crate::stats::{CounterSnapshot, Stats};

use coordinate::coordinate;
use merge::empty_result;

mod coordinate;
mod merge;
mod spawn;
#[cfg(test)]
mod tests;
mod worker;

pub use worker::{Link, worker_main};

/// A worker's counters and drain state, while it drains.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Draining {
    /// Message sends its scheduler handed to slots.
    pub scheduled: u64,
    /// Acks × the acked room's members (over all workers).
    pub expected: u64,
    pub resuming: u64,
    pub reconnecting: u64,
    pub counters: CounterSnapshot,
}

/// Worker → parent.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ToParent {
    Counters(CounterSnapshot),
    Ready {
        slots_ready: u64,
        /// Ready slots per room, in this worker.
        members: Vec<u64>,
        all_ready_s: f64,
    },
    Draining(Draining),
    Acked(Vec<Vec<i64>>),
    Done(Box<WorkerResult>),
}

/// Parent → worker.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ToWorker {
    /// Start the load; ready slots per room over every worker.
    Go { members: Vec<u64> },
    /// The drain is over (`drained`: every expected delivery arrived).
    Stop { drained: bool },
    /// Every worker's acked seqs per room, sorted, without duplicates.
    Pooled(Vec<Vec<i64>>),
}

/// What a worker hands back at the end.
#[derive(Debug, Serialize, Deserialize)]
pub struct WorkerResult {
    losses: LossAccount,
    frames: FrameTally,
    unresolved: Vec<GenReads>,
    known_max: Vec<i64>,
    counters: CounterSnapshot,
    closes: BTreeMap<String, u64>,
    errors: BTreeMap<String, u64>,
    latency: Vec<(u64, u64)>,
    ack: Vec<(u64, u64)>,
    connect: Vec<(u64, u64)>,
    ready: Vec<(u64, u64)>,
}

/// Runs `plan` over `plan.opts.workers` processes and merges what they
/// measured into one result (and into `stats`, for the report and
/// `/metrics`).
pub async fn run(plan: Plan, stats: Arc<Stats>, server_pid: Option<u32>) -> EngineResult {
    let slots = plan.slots.len();
    match coordinate(plan, &stats, server_pid).await {
        Ok(result) => result,
        Err(e) => {
            stats.error(format!("workers: {e:#}"));
            eprintln!("error: workers: {e:#}");
            empty_result(slots, &stats)
        }
    }
}
