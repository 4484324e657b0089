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

use std::collections::BTreeMap;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;

use crate::engine::{EngineResult, Plan};
use crate::ledger::LossAccount;
use crate::servercheck::{FrameTally, GenReads};
use crate::stats::{self, CounterSnapshot, Stats, Summary};

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

/// A worker's side of the conversation.
pub struct Link {
    lines: tokio::io::Lines<BufReader<tokio::io::Stdin>>,
    out: mpsc::UnboundedSender<String>,
}

impl Link {
    fn say(&self, message: &ToParent) {
        match serde_json::to_string(message) {
            Ok(line) => {
                if self.out.send(line).is_err() {
                    // The writer ended: the parent is gone.
                }
            }
            Err(e) => eprintln!("worker: encoding a message: {e}"),
        }
    }

    /// The next message from the parent; `None` once stdin closed.
    async fn hear(&mut self) -> Option<ToWorker> {
        loop {
            match self.lines.next_line().await {
                Ok(Some(line)) => match serde_json::from_str(&line) {
                    Ok(message) => return Some(message),
                    Err(e) => eprintln!("worker: unreadable message from the parent: {e}"),
                },
                Ok(None) | Err(_) => return None,
            }
        }
    }

    /// Says this worker is connected; returns the members per room over
    /// every worker once the parent says go (this worker's own if the
    /// parent is gone).
    pub async fn ready(
        &mut self,
        slots_ready: u64,
        members: Vec<u64>,
        all_ready_s: f64,
    ) -> Vec<u64> {
        self.say(&ToParent::Ready {
            slots_ready,
            members: members.clone(),
            all_ready_s,
        });
        loop {
            match self.hear().await {
                Some(ToWorker::Go { members }) => return members,
                Some(_) => {}
                None => return members,
            }
        }
    }

    /// Reports the drain until the parent says stop; whether it drained.
    pub async fn drain(&mut self, progress: &impl Fn() -> Draining) -> bool {
        let mut tick = tokio::time::interval(Duration::from_millis(50));
        loop {
            tokio::select! {
                _ = tick.tick() => self.say(&ToParent::Draining(progress())),
                heard = self.hear() => match heard {
                    Some(ToWorker::Stop { drained }) => return drained,
                    Some(_) => {}
                    None => return false,
                },
            }
        }
    }

    /// Hands in this worker's acked seqs; returns every worker's.
    pub async fn pool_acked(&mut self, acked: Vec<Vec<i64>>) -> Vec<Vec<i64>> {
        self.say(&ToParent::Acked(acked.clone()));
        loop {
            match self.hear().await {
                Some(ToWorker::Pooled(all)) => return all,
                Some(_) => {}
                None => return acked,
            }
        }
    }
}

/// `parley-loadtest worker`: reads a plan on stdin, runs it, reports on
/// stdout (see the module documentation).
pub async fn worker_main() -> anyhow::Result<()> {
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let first = lines
        .next_line()
        .await
        .context("reading the plan")?
        .context("no plan on stdin")?;
    let plan: Plan = serde_json::from_str(&first).context("the plan does not parse")?;
    let (out, mut out_rx) = mpsc::unbounded_channel::<String>();
    let writer = tokio::spawn(async move {
        let mut stdout = tokio::io::stdout();
        while let Some(mut line) = out_rx.recv().await {
            line.push('\n');
            if stdout.write_all(line.as_bytes()).await.is_err() || stdout.flush().await.is_err() {
                break;
            }
        }
    });
    let stats = Arc::new(Stats::new());
    let ticker = {
        let stats = Arc::clone(&stats);
        let out = out.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(200));
            loop {
                tick.tick().await;
                let line = serde_json::to_string(&ToParent::Counters(stats.counters.snapshot()));
                if line.map(|l| out.send(l)).is_err() {
                    break;
                }
            }
        })
    };
    let mut link = Link {
        lines,
        out: out.clone(),
    };
    let result = Box::pin(crate::engine::run_here(
        plan,
        Arc::clone(&stats),
        None,
        crate::engine::Mode::Worker(&mut link),
    ))
    .await;
    ticker.abort();
    let done = WorkerResult {
        losses: result.losses,
        unresolved: result.frames.unresolved.clone(),
        frames: result.frames,
        known_max: result.known_max,
        counters: stats.counters.snapshot(),
        closes: result.closes,
        errors: result.errors,
        latency: stats::pairs(&stats.latency.merged()),
        ack: stats::pairs(&stats.ack.merged()),
        connect: stats::pairs(&stats.connect.merged()),
        ready: stats::pairs(&stats.ready.merged()),
    };
    link.say(&ToParent::Done(Box::new(done)));
    drop(link);
    drop(out);
    writer.await.context("the stdout writer")?;
    Ok(())
}

/// Worker `w`'s part of `plan` (of `n`).
fn share(plan: &Plan, w: usize, n: usize) -> Plan {
    let mine: Vec<usize> = (w..plan.slots.len()).step_by(n).collect();
    let local = |global: usize| (global % n == w).then_some(global / n);
    let fraction = |part: usize, whole: usize| {
        if whole == 0 {
            0.0
        } else {
            part as f64 / whole as f64
        }
    };
    let slot_share = fraction(mine.len(), plan.slots.len());
    let mut load = plan.load.clone();
    load.publishers = plan
        .load
        .publishers
        .iter()
        .filter_map(|&(slot, room)| local(slot).map(|s| (s, room)))
        .collect();
    load.msg_rate *= fraction(load.publishers.len(), plan.load.publishers.len());
    load.typing_rate *= slot_share;
    load.presence_rate *= slot_share;
    let mut opts = plan.opts.clone();
    opts.connect_rate *= slot_share;
    opts.connect_concurrency = (opts.connect_concurrency / n).max(1);
    opts.progress = false;
    opts.settle = Duration::ZERO;
    opts.workers = 1;
    Plan {
        target: plan.target.clone(),
        rooms: plan.rooms.clone(),
        slots: mine.iter().map(|&i| plan.slots[i].clone()).collect(),
        load,
        opts,
        external: None,
    }
}

/// One worker process, as the parent sees it.
struct Worker {
    child: Child,
    stdin: ChildStdin,
}

impl Worker {
    async fn tell(&mut self, message: &ToWorker) -> anyhow::Result<()> {
        let mut line = serde_json::to_string(message)?;
        line.push('\n');
        self.stdin.write_all(line.as_bytes()).await?;
        self.stdin.flush().await?;
        Ok(())
    }
}

/// Starts the workers, each with its share of the plan; their messages
/// arrive on the returned channel as `(worker, message)`.
async fn spawn(
    plan: &Plan,
    n: usize,
) -> anyhow::Result<(Vec<Worker>, mpsc::UnboundedReceiver<(usize, ToParent)>)> {
    let exe = std::env::current_exe().context("finding this program to start workers")?;
    let (tx, rx) = mpsc::unbounded_channel();
    let mut workers = Vec::with_capacity(n);
    for w in 0..n {
        let mut child = Command::new(&exe)
            .arg("worker")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting worker {w}"))?;
        let mut stdin = child.stdin.take().context("worker stdin")?;
        let stdout = child.stdout.take().context("worker stdout")?;
        let mut line = serde_json::to_string(&share(plan, w, n))?;
        line.push('\n');
        stdin.write_all(line.as_bytes()).await?;
        stdin.flush().await?;
        let tx = tx.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                match serde_json::from_str::<ToParent>(&line) {
                    Ok(message) => {
                        if tx.send((w, message)).is_err() {
                            break;
                        }
                    }
                    Err(e) => eprintln!("worker {w}: unreadable line: {e}"),
                }
            }
        });
        workers.push(Worker { child, stdin });
    }
    Ok((workers, rx))
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

async fn coordinate(
    plan: Plan,
    stats: &Arc<Stats>,
    server_pid: Option<u32>,
) -> anyhow::Result<EngineResult> {
    let n = plan.opts.workers.clamp(1, plan.slots.len().max(1));
    let rooms = plan.rooms.len();
    let progress = crate::report::Progress::start(
        Arc::clone(stats),
        plan.opts.progress,
        plan.slots.len(),
        plan.load.duration,
    );
    let (mut workers, mut rx) = spawn(&plan, n).await?;
    let mut counters = vec![CounterSnapshot::default(); n];
    let show = |counters: &[CounterSnapshot]| {
        let mut sum = CounterSnapshot::default();
        for c in counters {
            sum.add(c);
        }
        stats.counters.set(&sum);
    };
    // Every message ends in one of these; anything else is a worker that
    // died (its stdout closed).
    macro_rules! next {
        () => {
            rx.recv().await.context("a worker ended early")?
        };
    }

    // Connect.
    let mut members = vec![0u64; rooms];
    let mut slots_ready = 0;
    let mut all_ready_s: f64 = 0.0;
    let mut ready = 0;
    while ready < n {
        match next!() {
            (w, ToParent::Counters(c)) => {
                counters[w] = c;
                show(&counters);
            }
            (
                _,
                ToParent::Ready {
                    slots_ready: r,
                    members: m,
                    all_ready_s: t,
                },
            ) => {
                ready += 1;
                slots_ready += r;
                all_ready_s = all_ready_s.max(t);
                for (sum, k) in members.iter_mut().zip(m) {
                    *sum += k;
                }
            }
            (w, other) => bail!("worker {w}: unexpected {other:?} while connecting"),
        }
    }
    progress.phase("connected");
    if !plan.opts.settle.is_zero() {
        tokio::time::sleep(plan.opts.settle).await;
    }
    let server_rss_connected_bytes = server_pid.and_then(crate::procinfo::rss_bytes);

    // Load and drain: the single-process drain rule, over the sums.
    let load_started = Instant::now();
    progress.phase("load");
    if let Some(external) = &plan.external {
        external.start();
    }
    for worker in &mut workers {
        worker
            .tell(&ToWorker::Go {
                members: members.clone(),
            })
            .await?;
    }
    let mut draining: Vec<Option<Draining>> = vec![None; n];
    // Until every worker drains, a bound on the load itself.
    let mut deadline =
        Instant::now() + plan.load.duration + plan.opts.drain_timeout + Duration::from_secs(60);
    let mut all_draining = false;
    let drained = loop {
        let timeout = deadline.saturating_duration_since(Instant::now());
        let message = tokio::time::timeout(timeout, rx.recv()).await;
        let Ok(message) = message else {
            break false;
        };
        match message.context("a worker ended early")? {
            (w, ToParent::Counters(c)) => counters[w] = c,
            (w, ToParent::Draining(d)) => {
                counters[w] = d.counters;
                draining[w] = Some(d);
                if !all_draining && draining.iter().all(Option::is_some) {
                    all_draining = true;
                    progress.phase("drain");
                    deadline = Instant::now() + plan.opts.drain_timeout;
                }
            }
            (w, other) => bail!("worker {w}: unexpected {other:?} while loading"),
        }
        show(&counters);
        let external = plan.external.as_ref().map_or(0, |e| {
            e.expected(|room| members.get(room).copied().unwrap_or(0))
        });
        let sender_done = plan.external.as_ref().is_none_or(|e| e.finished());
        if all_draining && sender_done && drain_done(&draining, external) {
            break true;
        }
    };
    let load_window_s = load_started.elapsed().as_secs_f64();
    for worker in &mut workers {
        worker.tell(&ToWorker::Stop { drained }).await?;
    }

    // Pool the acked seqs, then collect the results.
    let mut acked: Vec<Vec<i64>> = vec![Vec::new(); rooms];
    let mut heard = 0;
    while heard < n {
        match next!() {
            (_, ToParent::Acked(a)) => {
                heard += 1;
                for (all, mine) in acked.iter_mut().zip(a) {
                    all.extend(mine);
                }
            }
            (_, ToParent::Counters(_) | ToParent::Draining(_)) => {}
            (w, other) => bail!("worker {w}: unexpected {other:?} while stopping"),
        }
    }
    if let Some(external) = &plan.external {
        external.add_to(&mut acked);
    }
    for seqs in &mut acked {
        seqs.sort_unstable();
        seqs.dedup();
    }
    for worker in &mut workers {
        worker.tell(&ToWorker::Pooled(acked.clone())).await?;
    }
    let mut results = Vec::with_capacity(n);
    while results.len() < n {
        match next!() {
            (_, ToParent::Done(r)) => results.push(r),
            (_, ToParent::Counters(_) | ToParent::Draining(_)) => {}
            (w, other) => bail!("worker {w}: unexpected {other:?} at the end"),
        }
    }
    for worker in &mut workers {
        match tokio::time::timeout(Duration::from_secs(10), worker.child.wait()).await {
            Ok(Ok(status)) if status.success() => {}
            Ok(Ok(status)) => stats.error(format!("worker exit {status}")),
            Ok(Err(e)) => stats.error(format!("worker wait: {e}")),
            Err(_) => stats.error("worker did not exit"),
        }
    }
    progress.finish();

    let mut merged = Merged {
        slots: plan.slots.len(),
        slots_ready,
        all_ready_s,
        load_window_s,
        drained,
        server_rss_connected_bytes,
        load_s: plan.load.duration.as_secs_f64(),
        known_max: vec![0; rooms],
        losses: LossAccount::default(),
        frames: FrameTally::default(),
        counters: CounterSnapshot::default(),
    };
    for (i, r) in results.into_iter().enumerate() {
        merged.add(i, *r, stats);
    }
    Ok(merged.finish(stats))
}

/// The single-process drain rule (`engine::drain_alone`) over every worker;
/// `external` is the deliveries expected of sends made outside the engine.
fn drain_done(draining: &[Option<Draining>], external: u64) -> bool {
    let (mut scheduled, mut sent, mut answered, mut received, mut expected, mut busy) =
        (0, 0, 0, 0, external, 0);
    for d in draining.iter().flatten() {
        let c = &d.counters;
        scheduled += d.scheduled;
        sent += c.sent;
        answered += c.acked + c.send_errors;
        received += c.delivered + c.recovered;
        expected += d.expected;
        busy += d.resuming + d.reconnecting;
    }
    sent >= scheduled && answered >= sent && received >= expected && busy == 0
}

/// The sums of the workers' results.
struct Merged {
    slots: usize,
    slots_ready: u64,
    all_ready_s: f64,
    load_window_s: f64,
    drained: bool,
    server_rss_connected_bytes: Option<u64>,
    load_s: f64,
    known_max: Vec<i64>,
    losses: LossAccount,
    frames: FrameTally,
    counters: CounterSnapshot,
}

impl Merged {
    fn add(&mut self, key: usize, r: WorkerResult, stats: &Stats) {
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

    fn finish(self, stats: &Stats) -> EngineResult {
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
fn empty_result(slots: usize, stats: &Stats) -> EngineResult {
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::engine::{EngineOpts, Load, SlotPlan};

    fn plan(slots: usize, publishers: &[usize]) -> Plan {
        Plan {
            target: crate::client::Target::parse("http://127.0.0.1:9", false).expect("target"),
            rooms: vec![parley_actors::domain::RoomId::new()],
            slots: (0..slots)
                .map(|i| SlotPlan {
                    token: Some(Arc::from(format!("t{i}"))),
                    rooms: vec![0],
                    bind: None,
                })
                .collect(),
            load: Load {
                msg_rate: 100.0,
                publishers: publishers.iter().map(|&s| (s, 0)).collect(),
                typing_rate: 10.0,
                presence_rate: 4.0,
                ..Load::idle(Duration::from_secs(5))
            },
            opts: EngineOpts {
                connect_rate: 0.0,
                connect_concurrency: 256,
                connect_timeout: Duration::from_secs(5),
                drain_timeout: Duration::from_secs(5),
                max_reconnects: 3,
                progress: true,
                settle: Duration::from_secs(2),
                workers: 2,
            },
            external: None,
        }
    }

    #[test]
    fn shares_cover_every_slot_once_and_split_the_rates() {
        let whole = plan(10, &[0, 1, 2, 3]);
        let (a, b) = (share(&whole, 0, 2), share(&whole, 1, 2));
        let tokens = |p: &Plan| -> Vec<String> {
            p.slots
                .iter()
                .map(|s| s.token.as_deref().unwrap_or_default().to_owned())
                .collect()
        };
        assert_eq!(tokens(&a), ["t0", "t2", "t4", "t6", "t8"]);
        assert_eq!(tokens(&b), ["t1", "t3", "t5", "t7", "t9"]);
        // Publishers keep their slot, renumbered within the worker.
        assert_eq!(a.load.publishers, [(0, 0), (1, 0)]);
        assert_eq!(b.load.publishers, [(0, 0), (1, 0)]);
        assert!((a.load.msg_rate + b.load.msg_rate - 100.0).abs() < 1e-9);
        assert!((a.load.typing_rate + b.load.typing_rate - 10.0).abs() < 1e-9);
        assert_eq!(a.opts.connect_concurrency, 128);
        assert!(!a.opts.progress && a.opts.settle.is_zero() && a.opts.workers == 1);
        // A worker without publishers sends no messages.
        let one = plan(4, &[0]);
        assert_eq!(share(&one, 1, 2).load.msg_rate, 0.0);
        assert_eq!(share(&one, 0, 2).load.msg_rate, 100.0);
    }

    #[test]
    fn the_plan_survives_the_trip_to_a_worker() {
        let whole = plan(3, &[1]);
        let line = serde_json::to_string(&share(&whole, 1, 2)).expect("encode");
        let back: Plan = serde_json::from_str(&line).expect("decode");
        assert_eq!(back.slots.len(), 1);
        assert_eq!(back.slots[0].token.as_deref(), Some("t1"));
        assert_eq!(back.load.publishers, [(0, 0)]);
        assert_eq!(back.rooms, whole.rooms);
        assert_eq!(back.target.addr, whole.target.addr);
    }

    #[test]
    fn the_drain_waits_for_every_worker_and_every_expected_delivery() {
        let d = |scheduled, sent, acked, delivered, expected, resuming| {
            Some(Draining {
                scheduled,
                expected,
                resuming,
                reconnecting: 0,
                counters: CounterSnapshot {
                    sent,
                    acked,
                    delivered,
                    ..CounterSnapshot::default()
                },
            })
        };
        // Worker 1's deliveries make up for what worker 0 still expects.
        assert!(drain_done(
            &[d(5, 5, 5, 40, 60, 0), d(5, 5, 5, 60, 40, 0)],
            0
        ));
        assert!(!drain_done(
            &[d(5, 5, 5, 40, 60, 0), d(5, 5, 5, 59, 40, 0)],
            0
        ));
        assert!(!drain_done(
            &[d(5, 5, 4, 100, 100, 0), d(5, 5, 5, 0, 0, 0)],
            0
        ));
        assert!(!drain_done(
            &[d(5, 5, 5, 100, 100, 1), d(0, 0, 0, 0, 0, 0)],
            0
        ));
        // Deliveries of sends made outside the engine (the soak's REST mix)
        // are waited for too.
        let done = [d(5, 5, 5, 110, 100, 0)];
        assert!(drain_done(&done, 10));
        assert!(!drain_done(&done, 11));
    }
}
