//! The scheduler: the load's commands handed to the slots, open loop by
//! due count for the duration, and the small generator churn picks with.

use std::time::{Duration, Instant};

use parley_actors::domain::PresenceStatus;
use tokio::sync::mpsc;

use super::{Cmd, Shared, SlotPlan};
use crate::token;

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
pub(super) async fn schedule(
    shared: &Shared,
    senders: &[mpsc::Sender<Cmd>],
    slots: &[SlotPlan],
) -> u64 {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xorshift_stays_below_its_bound() {
        let mut rng = XorShift::new(0);
        for _ in 0..1000 {
            assert!(rng.below(7) < 7);
        }
    }
}
