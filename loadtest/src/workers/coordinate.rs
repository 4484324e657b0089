//! The parent's side of the exchange: readiness, go, the drain rule over
//! every worker, the pooled acks and the results.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::engine::{EngineResult, Plan};
use crate::ledger::LossAccount;
use crate::servercheck::FrameTally;
use crate::stats::{CounterSnapshot, Stats};

use super::merge::Merged;
use super::spawn::spawn;
use super::{Draining, ToParent, ToWorker};

pub(super) async fn coordinate(
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
pub(super) fn drain_done(draining: &[Option<Draining>], external: u64) -> bool {
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
