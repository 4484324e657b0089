//! Loss accounting.
//!
//! Every acknowledged message is an expected delivery on every socket slot
//! that is a member of its room. A slot (a logical client: it keeps its
//! identity across reconnects) records each `(room, seq)` it receives,
//! either live or through `resume` replay. At the end:
//!
//! `losses = expected − delivered − recovered`, where `delivered` counts
//! acked seqs received live and `recovered` those only received through a
//! replay after a close the client resumed from. Duplicates (the same seq
//! twice on one slot) and unexpected seqs (not acked by this run) are
//! counted apart and never make up for a loss.

use serde::{Deserialize, Serialize};

/// A set of seqs above a base, as a bitmap (seqs in a run are dense).
#[derive(Debug, Clone, Default)]
pub struct SeqSet {
    /// Seqs `<= base` are outside the run and never recorded.
    base: i64,
    bits: Vec<u64>,
    len: u64,
}

impl SeqSet {
    /// An empty set for seqs after `base`.
    pub fn new(base: i64) -> Self {
        Self {
            base,
            bits: Vec::new(),
            len: 0,
        }
    }

    /// The base seq.
    pub fn base(&self) -> i64 {
        self.base
    }

    fn index(&self, seq: i64) -> Option<usize> {
        usize::try_from(seq - self.base - 1).ok()
    }

    /// Adds a seq; `false` if it was there already or is at or below the
    /// base (not part of this run).
    pub fn insert(&mut self, seq: i64) -> bool {
        let Some(i) = self.index(seq) else {
            return false;
        };
        let (word, bit) = (i / 64, i % 64);
        if word >= self.bits.len() {
            self.bits.resize(word + 1, 0);
        }
        let mask = 1u64 << bit;
        if self.bits[word] & mask != 0 {
            return false;
        }
        self.bits[word] |= mask;
        self.len += 1;
        true
    }

    /// Whether a seq is in the set.
    pub fn contains(&self, seq: i64) -> bool {
        self.index(seq)
            .and_then(|i| self.bits.get(i / 64).map(|w| w & (1u64 << (i % 64)) != 0))
            .unwrap_or(false)
    }

    /// How many seqs are in the set.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// The highest seq in the set (the base when it is empty).
    pub fn max(&self) -> i64 {
        self.bits
            .iter()
            .enumerate()
            .rev()
            .find(|(_, w)| **w != 0)
            .map_or(self.base, |(i, w)| {
                self.base + 1 + (i * 64) as i64 + i64::from(63 - w.leading_zeros())
            })
    }

    /// The highest seq `s` such that every seq in `base+1 ..= s` is in the
    /// set (or in `other`): what a client resumes from.
    pub fn contiguous_with(&self, other: &SeqSet) -> i64 {
        let mut seq = self.base;
        loop {
            let next = seq + 1;
            if self.contains(next) || other.contains(next) {
                seq = next;
            } else {
                return seq;
            }
        }
    }
}

/// What one slot received in one room.
#[derive(Debug, Clone, Default)]
pub struct RoomReceipts {
    /// Received live (not during a resume replay).
    pub live: SeqSet,
    /// Received during a resume replay.
    pub replayed: SeqSet,
    /// Receptions of a seq this slot already had.
    pub duplicates: u64,
}

impl RoomReceipts {
    /// Empty receipts for seqs after `base`.
    pub fn new(base: i64) -> Self {
        Self {
            live: SeqSet::new(base),
            replayed: SeqSet::new(base),
            duplicates: 0,
        }
    }

    /// Records a reception; `true` when it was new to this slot.
    pub fn record(&mut self, seq: i64, replay: bool) -> bool {
        if self.live.contains(seq) || self.replayed.contains(seq) {
            self.duplicates += 1;
            return false;
        }
        if replay {
            self.replayed.insert(seq)
        } else {
            self.live.insert(seq)
        }
    }

    /// The seq to resume this room from.
    pub fn resume_from(&self) -> i64 {
        self.live.contiguous_with(&self.replayed)
    }

    /// The highest seq received, live or replayed (the base if none).
    pub fn max_seq(&self) -> i64 {
        self.live.max().max(self.replayed.max())
    }
}

/// The totals of a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LossAccount {
    /// Acked messages × member slots.
    pub expected: u64,
    /// Expected deliveries received live.
    pub delivered: u64,
    /// Expected deliveries received only through a resume replay.
    pub recovered: u64,
    /// `expected − delivered − recovered`: must be 0.
    pub losses: u64,
    /// The same seq received twice on one slot.
    pub duplicates: u64,
    /// Seqs received that no publisher of this run had acked (e.g. a send
    /// whose ack was lost, or traffic from outside the harness).
    pub unexpected: u64,
}

impl LossAccount {
    /// Adds another account (another process's slots).
    pub fn add(&mut self, other: &Self) {
        self.expected += other.expected;
        self.delivered += other.delivered;
        self.recovered += other.recovered;
        self.losses += other.losses;
        self.duplicates += other.duplicates;
        self.unexpected += other.unexpected;
    }

    /// Adds one slot's receipts in one room against the seqs acked there
    /// (sorted or not, without duplicates).
    pub fn tally(&mut self, acked: &[i64], receipts: &RoomReceipts) {
        let mut matched = 0;
        for &seq in acked {
            if seq <= receipts.live.base() {
                // Acked before this slot joined the run: not expected here.
                continue;
            }
            self.expected += 1;
            if receipts.live.contains(seq) {
                self.delivered += 1;
                matched += 1;
            } else if receipts.replayed.contains(seq) {
                self.recovered += 1;
                matched += 1;
            } else {
                self.losses += 1;
            }
        }
        let received = receipts.live.len() + receipts.replayed.len();
        self.unexpected += received.saturating_sub(matched);
        self.duplicates += receipts.duplicates;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seq_sets_ignore_the_base_and_count_once() {
        let mut set = SeqSet::new(10);
        assert!(!set.insert(10), "at the base: not part of the run");
        assert!(set.insert(11));
        assert!(!set.insert(11));
        assert!(set.insert(200));
        assert_eq!(set.len(), 2);
        assert!(set.contains(200));
        assert!(!set.contains(199));
        assert!(!set.contains(5));
        assert_eq!(set.max(), 200);
        assert_eq!(SeqSet::new(7).max(), 7, "empty: the base");
        let mut edge = SeqSet::new(0);
        edge.insert(64);
        edge.insert(1);
        assert_eq!(edge.max(), 64);
    }

    #[test]
    fn resume_starts_after_the_last_contiguous_seq() {
        let mut r = RoomReceipts::new(0);
        for seq in [1, 2, 3, 5] {
            r.record(seq, false);
        }
        assert_eq!(r.resume_from(), 3);
        r.record(4, true);
        assert_eq!(r.resume_from(), 5);
        assert_eq!(RoomReceipts::new(7).resume_from(), 7);
    }

    #[test]
    fn every_expected_delivery_is_delivered_recovered_or_lost() {
        let acked: Vec<i64> = (1..=10).collect();
        // Slot A got everything live.
        let mut a = RoomReceipts::new(0);
        for seq in 1..=10 {
            a.record(seq, false);
        }
        // Slot B dropped after 4, got 5..=8 back through resume, then live
        // 9 and 10, and saw 4 twice.
        let mut b = RoomReceipts::new(0);
        for seq in 1..=4 {
            b.record(seq, false);
        }
        for seq in 4..=8 {
            b.record(seq, true);
        }
        b.record(9, false);
        b.record(10, false);
        // Slot C missed 3 and 7 for good and got an unacked seq 11.
        let mut c = RoomReceipts::new(0);
        for seq in [1, 2, 4, 5, 6, 8, 9, 10, 11] {
            c.record(seq, false);
        }
        let mut account = LossAccount::default();
        for r in [&a, &b, &c] {
            account.tally(&acked, r);
        }
        assert_eq!(account.expected, 30);
        assert_eq!(account.delivered, 10 + 6 + 8);
        assert_eq!(account.recovered, 4);
        assert_eq!(account.losses, 2);
        assert_eq!(
            account.expected,
            account.delivered + account.recovered + account.losses
        );
        assert_eq!(account.duplicates, 1);
        assert_eq!(account.unexpected, 1);
    }

    #[test]
    fn seqs_acked_before_a_slot_joined_are_not_expected_of_it() {
        let mut late = RoomReceipts::new(5);
        late.record(6, false);
        let mut account = LossAccount::default();
        account.tally(&[4, 5, 6], &late);
        assert_eq!(account.expected, 1);
        assert_eq!(account.losses, 0);
    }
}
