//! The worker's side: [`worker_main`] runs a share of the plan in this
//! process, and [`Link`] speaks to the parent over stdin and stdout.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;

use crate::engine::Plan;
use crate::stats::{self, Stats};

use super::{Draining, ToParent, ToWorker, WorkerResult};

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
