//! Mailbox depth gauges: ractor does not expose queue lengths, so callers
//! count what they hand an actor and the actor counts what it handles.

use std::sync::atomic::{AtomicI64, Ordering};

/// A sampled mailbox depth: incremented when a message is sent, decremented
/// when handled, exported as `actor_mailbox_depth{actor}` (ractor does not
/// expose queue lengths itself).
#[derive(Debug)]
pub(crate) struct Backlog {
    depth: AtomicI64,
    actor: &'static str,
}

impl Backlog {
    pub(crate) fn new(actor: &'static str) -> Self {
        Self {
            depth: AtomicI64::new(0),
            actor,
        }
    }

    pub(crate) fn add(&self, n: i64) {
        let depth = self.depth.fetch_add(n, Ordering::Relaxed) + n;
        metrics::gauge!(crate::telemetry::MAILBOX_DEPTH, "actor" => self.actor).set(depth as f64);
    }
}
