//! A worker's share of the plan, and the worker processes the parent
//! starts and writes to.

use std::process::Stdio;
use std::time::Duration;

use anyhow::Context;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;

use crate::engine::Plan;

use super::{ToParent, ToWorker};

/// Worker `w`'s part of `plan` (of `n`).
pub(super) fn share(plan: &Plan, w: usize, n: usize) -> Plan {
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
pub(super) struct Worker {
    pub(super) child: Child,
    pub(super) stdin: ChildStdin,
}

impl Worker {
    pub(super) async fn tell(&mut self, message: &ToWorker) -> anyhow::Result<()> {
        let mut line = serde_json::to_string(message)?;
        line.push('\n');
        self.stdin.write_all(line.as_bytes()).await?;
        self.stdin.flush().await?;
        Ok(())
    }
}

/// Starts the workers, each with its share of the plan; their messages
/// arrive on the returned channel as `(worker, message)`.
pub(super) async fn spawn(
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
