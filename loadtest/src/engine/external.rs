//! [`ExternalAcks`]: messages another sender of the run stored (the soak's
//! REST mix), entered in the ledger and the drain like the engine's own.

use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::watch;

/// Messages stored by another sender of the same run (the soak's REST
/// mix), entered in the ledger like the engine's own acks: each is expected
/// on every ready member slot of its room, and the drain waits for them and
/// for the sender to finish (so no ack comes in after the count). The
/// sender waits for [`started`](Self::started): it sends only once every
/// socket is ready, as the engine's own publishers do.
#[derive(Debug)]
pub struct ExternalAcks {
    seqs: std::sync::Mutex<Vec<(usize, i64)>>,
    finished: AtomicBool,
    load: watch::Sender<bool>,
}

impl Default for ExternalAcks {
    fn default() -> Self {
        Self {
            seqs: std::sync::Mutex::default(),
            finished: AtomicBool::new(false),
            load: watch::Sender::new(false),
        }
    }
}

impl ExternalAcks {
    /// The engine's load phase has begun (or the engine has ended).
    pub fn start(&self) {
        self.load.send_replace(true);
    }

    /// Waits for [`start`](Self::start).
    pub async fn started(&self) {
        let mut rx = self.load.subscribe();
        // The sender lives in `self`, so this cannot fail.
        let _ = rx.wait_for(|started| *started).await;
    }

    /// The sender has had every answer it will get.
    pub fn finish(&self) {
        self.finished.store(true, Ordering::Release);
    }

    /// Whether [`finish`](Self::finish) was called.
    pub fn finished(&self) -> bool {
        self.finished.load(Ordering::Acquire)
    }

    /// Records that `seq` was stored in the plan's room `room`.
    pub fn push(&self, room: usize, seq: i64) {
        self.lock().push((room, seq));
    }

    /// Deliveries these acks call for, given each room's ready members.
    pub fn expected(&self, members: impl Fn(usize) -> u64) -> u64 {
        self.lock().iter().map(|&(room, _)| members(room)).sum()
    }

    /// Adds the recorded seqs to per-room acked lists (unsorted).
    pub fn add_to(&self, acked: &mut [Vec<i64>]) {
        for &(room, seq) in self.lock().iter() {
            if let Some(seqs) = acked.get_mut(room) {
                seqs.push(seq);
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(usize, i64)>> {
        self.seqs.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    #[tokio::test]
    async fn the_external_sender_waits_for_the_load() {
        let acks = Arc::new(ExternalAcks::default());
        let waiter = tokio::spawn({
            let acks = Arc::clone(&acks);
            async move { acks.started().await }
        });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished(), "released before the load started");
        acks.start();
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("released once started")
            .expect("joined");
        // Later waiters return at once.
        tokio::time::timeout(Duration::from_secs(5), acks.started())
            .await
            .expect("already started");
    }

    #[test]
    fn external_acks_join_the_ledger_and_the_drain() {
        let acks = ExternalAcks::default();
        acks.push(0, 7);
        acks.push(1, 3);
        acks.push(0, 5);
        acks.push(9, 1); // not a room of the plan: ignored by add_to
        let mut acked = vec![vec![6], vec![]];
        acks.add_to(&mut acked);
        assert_eq!(acked, [vec![6, 7, 5], vec![3]]);
        // Room 0 has 10 ready members, room 1 has 4, room 9 none.
        let members = [10, 4];
        assert_eq!(
            acks.expected(|room| members.get(room).copied().unwrap_or(0)),
            24
        );
        assert!(!acks.finished());
        acks.finish();
        assert!(acks.finished());
    }
}
