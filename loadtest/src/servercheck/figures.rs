//! The figures compared: the server's counters (one scrape, or the
//! difference of two) and what the harness counted, in the server's terms.

use std::collections::BTreeMap;

use serde::Serialize;

use super::prometheus::{Scrape, names};

/// The server counters the cross-check reads (totals of one scrape, or the
/// difference of two).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ServerFigures {
    /// `messages_stored_total`.
    pub messages_stored: u64,
    /// `ws_deliveries_total{type="message.created"}`.
    pub message_created_deliveries: u64,
    /// `ws_slow_consumer_closes_total`.
    pub slow_consumer_closes: u64,
    /// `ws_closes_total` by `code`.
    pub closes_by_code: BTreeMap<String, u64>,
    /// `ws_events_shed_total`.
    pub events_shed: u64,
}

fn count(v: f64) -> u64 {
    if v.is_finite() && v > 0.0 {
        v.round() as u64
    } else {
        0
    }
}

impl ServerFigures {
    /// Reads the figures from a scrape.
    pub fn of(scrape: &Scrape) -> Self {
        Self {
            messages_stored: count(scrape.sum(names::STORED, &[])),
            message_created_deliveries: count(
                scrape.sum(names::DELIVERIES, &[("type", "message.created")]),
            ),
            slow_consumer_closes: count(scrape.sum(names::SLOW_CONSUMER_CLOSES, &[])),
            closes_by_code: scrape
                .by_label(names::CLOSES, "code")
                .into_iter()
                .map(|(k, v)| (k, count(v)))
                .collect(),
            events_shed: count(scrape.sum(names::SHED, &[])),
        }
    }

    /// `self − before`; `Err` when a counter went backwards (the server
    /// restarted between the scrapes).
    pub fn since(&self, before: &Self) -> Result<Self, String> {
        let sub = |name: &str, after: u64, before: u64| {
            after
                .checked_sub(before)
                .ok_or_else(|| format!("{name} went from {before} to {after}: server restarted?"))
        };
        let mut closes = BTreeMap::new();
        for (code, after) in &self.closes_by_code {
            let was = before.closes_by_code.get(code).copied().unwrap_or(0);
            let d = sub(names::CLOSES, *after, was)?;
            if d > 0 {
                closes.insert(code.clone(), d);
            }
        }
        Ok(Self {
            messages_stored: sub(names::STORED, self.messages_stored, before.messages_stored)?,
            message_created_deliveries: sub(
                names::DELIVERIES,
                self.message_created_deliveries,
                before.message_created_deliveries,
            )?,
            slow_consumer_closes: sub(
                names::SLOW_CONSUMER_CLOSES,
                self.slow_consumer_closes,
                before.slow_consumer_closes,
            )?,
            closes_by_code: closes,
            events_shed: sub(names::SHED, self.events_shed, before.events_shed)?,
        })
    }
}

/// What the harness counted, in the server's terms. Each server figure is
/// expected in `[harness, harness + allowance]`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct HarnessFigures {
    /// Sends acked with a new message (WebSocket acks, less acks of a
    /// message that existed before the run, plus REST sends answered 2xx).
    pub stored: u64,
    /// Sends whose fate is unknown: an ack lost with its socket, an
    /// `unavailable` (or unknown) error answer, a REST send that failed. Each
    /// may or may not have been stored.
    pub stored_in_doubt: u64,
    /// Every `message.created` frame read, on every socket.
    pub frames: u64,
    /// Frames a completed `resume` replayed: Σ (`resumed` seq − the seq
    /// resumed from). The server does not count replays as deliveries.
    pub replayed: u64,
    /// Frames read during a `resume` cut short by a close: each was either
    /// queued live or replayed.
    pub in_doubt: u64,
    /// `frames − replayed − in_doubt`: frames queued live, read.
    pub live: u64,
    /// At most this many live frames were queued to a socket that closed
    /// before the harness read them (see `engine` and the README).
    pub unread_bound: u64,
    /// 4009 closes the harness read (after `ready`, or before it).
    pub slow_consumer_closes: u64,
    /// Connections that ended without the harness reading a close frame
    /// (its own drops, transport errors, EOF): a 4009 may hide in each.
    pub closes_unseen: u64,
}

impl HarnessFigures {
    /// The figures of a socket run. `known_above` raises every room's
    /// horizon (seqs learnt outside the engine, e.g. REST sends).
    pub fn of_engine(r: &crate::engine::EngineResult, known_above: i64) -> Self {
        let t = &r.frames;
        let horizon = |room: usize| r.known_max.get(room).copied().unwrap_or(0).max(known_above);
        Self {
            stored: r.counters.acked.saturating_sub(t.acked_existing),
            stored_in_doubt: t.sends_in_doubt,
            frames: t.frames,
            replayed: t.replayed,
            in_doubt: t.in_doubt,
            live: t
                .frames
                .saturating_sub(t.replayed)
                .saturating_sub(t.in_doubt),
            unread_bound: t.unread_bound(horizon),
            slow_consumer_closes: t.slow_consumer_closes,
            // After a drain that timed out, the final close may hide a 4009.
            closes_unseen: t.closes_unseen + if r.drained { 0 } else { t.stopped },
        }
    }

    /// Adds a REST sender's figures (the soak's REST mix).
    pub fn with_rest(mut self, acked: u64, failed: u64) -> Self {
        self.stored += acked;
        self.stored_in_doubt += failed;
        self
    }
}
