//! [`FrameTally`]: the frames one slot read, replayed or may have missed,
//! summed over slots for the cross-check's delivery interval.

use serde::{Deserialize, Serialize};

/// The frame accounting of one slot (summed over slots for a run): what
/// the engine records for the cross-check.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct FrameTally {
    /// `message.created` frames read, on every connection.
    pub frames: u64,
    /// Frames replayed by completed resumes.
    pub replayed: u64,
    /// Frames read during resumes cut short by a close.
    pub in_doubt: u64,
    /// Unread bound of closed connections resolved by their successor's
    /// `resumed`.
    pub unread_resolved: u64,
    /// Acks of a message that existed before the run.
    pub acked_existing: u64,
    /// Sends that may or may not have been stored.
    pub sends_in_doubt: u64,
    /// 4009 closes read.
    pub slow_consumer_closes: u64,
    /// Connections that ended without a close frame read.
    pub closes_unseen: u64,
    /// Connections still open when the run stopped.
    pub stopped: u64,
    /// Frames read in the resume window still open.
    #[serde(skip)]
    pub window: u64,
    /// Closed connections' reads waiting for a horizon: see [`GenReads`].
    #[serde(skip)]
    pub unresolved: Vec<GenReads>,
}

/// One connection's reads in one room, for the unread bound: it may have
/// been queued every seq in `(lower, horizon]`, and it read `reads` of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct GenReads {
    /// Index of the room in the plan.
    pub room: usize,
    /// No seq at or below this was queued to it live: its `ready`'s
    /// `last_seq` on a first connection, the seq resumed from after a
    /// reconnect (which is lower).
    pub lower: i64,
    /// Distinct seqs above `lower` read on it (live or replayed).
    pub reads: u64,
}

impl GenReads {
    /// Seqs in `(lower, horizon]` it did not read: an upper bound on the
    /// live frames queued to it and never read. The horizon must be at or
    /// above every seq stored while the connection was subscribed (and so
    /// above every seq it read).
    pub fn unread(&self, horizon: i64) -> u64 {
        u64::try_from(horizon - self.lower)
            .unwrap_or(0)
            .saturating_sub(self.reads)
    }
}

impl FrameTally {
    /// A `message.created` frame was read (`resuming`: inside a resume
    /// window).
    pub fn on_frame(&mut self, resuming: bool) {
        self.frames += 1;
        if resuming {
            self.window += 1;
        }
    }

    /// A `resume` completed: `replayed` frames of the window were replays;
    /// `horizons` gives, per room, the seq live delivery resumed after.
    /// Connections closed before it are bounded with that horizon: the
    /// server forgot them before it caught this one up (they closed before
    /// it connected).
    pub fn on_resumed(
        &mut self,
        replayed: u64,
        closed: Vec<GenReads>,
        horizon: impl Fn(usize) -> Option<i64>,
    ) {
        self.replayed += replayed;
        self.window = 0;
        for reads in closed {
            match horizon(reads.room) {
                Some(h) => self.unread_resolved += reads.unread(h),
                None => self.unresolved.push(reads),
            }
        }
    }

    /// A connection ended with a resume window open: its frames stay in
    /// doubt.
    pub fn on_end(&mut self) {
        self.in_doubt += self.window;
        self.window = 0;
    }

    /// Adds another slot's tally.
    pub fn merge(&mut self, other: Self) {
        self.frames += other.frames;
        self.replayed += other.replayed;
        self.in_doubt += other.in_doubt + other.window;
        self.unread_resolved += other.unread_resolved;
        self.acked_existing += other.acked_existing;
        self.sends_in_doubt += other.sends_in_doubt;
        self.slow_consumer_closes += other.slow_consumer_closes;
        self.closes_unseen += other.closes_unseen;
        self.stopped += other.stopped;
        self.unresolved.extend(other.unresolved);
    }

    /// The unread bound: resolved connections, plus every unresolved one
    /// up to `horizon(room)` (the highest seq known at the end of the run).
    pub fn unread_bound(&self, horizon: impl Fn(usize) -> i64) -> u64 {
        self.unread_resolved
            + self
                .unresolved
                .iter()
                .map(|g| g.unread(horizon(g.room)))
                .sum::<u64>()
    }
}
