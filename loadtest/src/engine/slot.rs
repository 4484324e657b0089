//! One slot's task: it connects (paced), waits for `ready`, resumes after
//! a reconnect, serves the scheduler's commands and reads frames until the
//! run stops; and what it keeps across its connections.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use parley_actors::protocol::{ClientFrame, close};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio_tungstenite::tungstenite::Message;

use super::{Cmd, Shared, SlotPlan, SlotResult};
use crate::client::{self, OpenError};
use crate::ledger::{RoomReceipts, SeqSet};
use crate::servercheck::{FrameTally, GenReads};
use crate::stats;

/// One slot's task.
pub(super) struct SlotTask {
    pub(super) index: usize,
    pub(super) plan: SlotPlan,
    pub(super) shared: Arc<Shared>,
    pub(super) commands: mpsc::Receiver<Cmd>,
    pub(super) stop: watch::Receiver<bool>,
    pub(super) ready_tx: mpsc::Sender<(usize, bool)>,
    pub(super) gate: Arc<Semaphore>,
    pub(super) start_at: Instant,
}

/// How a connection generation ended.
enum Ended {
    /// The run is over.
    Stop,
    /// Reconnect (after a drop or a server close).
    Reconnect,
    /// Do not reconnect (auth or policy close).
    Fatal,
}

/// What a slot keeps across its connections.
pub(super) struct SlotState {
    pub(super) receipts: Vec<(usize, RoomReceipts)>,
    pub(super) acked: Vec<(usize, i64)>,
    /// ref → (room for a message send, sent at).
    pub(super) pending: HashMap<u64, (Option<usize>, Instant)>,
    pub(super) next_ref: u64,
    pub(super) next_msg: u64,
    /// While resuming: room → the room's last seq at reconnect.
    pub(super) resume_targets: Option<Vec<i64>>,
    /// The seq each room was resumed from by the last `resume`.
    pub(super) resume_from: Vec<(usize, i64)>,
    pub(super) latencies: Vec<u64>,
    /// Cross-check accounting.
    pub(super) tally: FrameTally,
    /// Seqs read on the current connection, parallel to `receipts`.
    pub(super) connection_reads: Vec<SeqSet>,
    /// Connections closed since the last completed resume.
    pub(super) closed: Vec<GenReads>,
}

impl SlotState {
    /// Starts a connection's reads: from `lower(receipts)` in each room.
    pub(super) fn open_connection(&mut self, lower: impl Fn(&RoomReceipts) -> i64) {
        self.connection_reads = self
            .receipts
            .iter()
            .map(|(_, r)| SeqSet::new(lower(r)))
            .collect();
    }

    /// Files the current connection's reads among the closed ones.
    pub(super) fn close_connection(&mut self) {
        for (set, (room, _)) in self.connection_reads.drain(..).zip(&self.receipts) {
            self.closed.push(GenReads {
                room: *room,
                lower: set.base(),
                reads: set.len(),
            });
        }
    }
}

impl SlotTask {
    pub(super) async fn run(mut self) -> SlotResult {
        tokio::time::sleep_until(self.start_at.into()).await;
        let stats = Arc::clone(&self.shared.stats);
        let mut state = SlotState {
            receipts: Vec::new(),
            acked: Vec::new(),
            pending: HashMap::new(),
            next_ref: 0,
            next_msg: 0,
            resume_targets: None,
            resume_from: Vec::new(),
            latencies: Vec::with_capacity(256),
            tally: FrameTally::default(),
            connection_reads: Vec::new(),
            closed: Vec::new(),
        };
        let mut first = true;
        let mut reconnects = 0u32;
        loop {
            stats::inc(&stats.counters.connect_attempts);
            let opened = {
                let _permit = self.gate.acquire().await;
                client::open(
                    &self.shared.target,
                    self.plan.token.as_deref(),
                    self.plan.bind,
                    self.shared.opts.connect_timeout,
                )
                .await
            };
            let mut opened = match opened {
                Ok(o) => o,
                Err(e) => {
                    stats::inc(&stats.counters.connect_failures);
                    stats.error(e.kind());
                    if e == OpenError::Closed(close::SLOW_CONSUMER) {
                        state.tally.slow_consumer_closes += 1;
                    }
                    if first {
                        self.say_ready(false).await;
                        return self.finish(state, false);
                    }
                    let fatal = matches!(e, OpenError::Http(401 | 403));
                    reconnects += 1;
                    if fatal
                        || reconnects > self.shared.opts.max_reconnects
                        || self.shared.stopping.load(Ordering::Relaxed)
                    {
                        stats::dec(&self.shared.reconnecting);
                        return self.finish(state, true);
                    }
                    tokio::time::sleep(self.shared.load.reconnect_delay).await;
                    continue;
                }
            };
            stats.connect.record(self.index, opened.connect_us);
            stats.ready.record(self.index, opened.ready_us);
            stats::inc(&stats.counters.ready);
            stats::inc(&stats.counters.open);
            if first {
                for &room in &self.plan.rooms {
                    let id = self.shared.plan_rooms[room];
                    let base = opened
                        .ready
                        .rooms
                        .iter()
                        .find(|r| r.id == id)
                        .map_or(0, |r| r.last_seq);
                    state.receipts.push((room, RoomReceipts::new(base)));
                }
                // Nothing at or below `ready`'s last_seq is queued live.
                state.open_connection(|r| r.live.base());
                self.say_ready(true).await;
                first = false;
            } else {
                stats::dec(&self.shared.reconnecting);
                // A message stored before `ready` may be published after
                // it: count from the (lower) seq resumed from.
                state.open_connection(RoomReceipts::resume_from);
                if !state.receipts.is_empty() {
                    self.resume(&mut opened, &mut state).await;
                }
            }
            let ended = self.serve(opened.ws, &mut state).await;
            stats::dec(&stats.counters.open);
            if state.resume_targets.take().is_some() {
                stats::dec(&self.shared.resuming);
                state.tally.on_end();
            }
            state.close_connection();
            // Sends in flight on a closed socket will never be acked.
            for (_, (room, _)) in state.pending.drain() {
                if room.is_some() {
                    stats::inc(&stats.counters.send_errors);
                    stats.error("ack_lost_on_close");
                    state.tally.sends_in_doubt += 1;
                }
            }
            match ended {
                Ended::Stop | Ended::Fatal => {
                    if matches!(ended, Ended::Stop) {
                        state.tally.stopped += 1;
                    }
                    return self.finish(state, true);
                }
                Ended::Reconnect => {
                    reconnects += 1;
                    if reconnects > self.shared.opts.max_reconnects
                        || self.shared.stopping.load(Ordering::Relaxed)
                    {
                        return self.finish(state, true);
                    }
                    stats::inc(&stats.counters.reconnects);
                    stats::inc(&self.shared.reconnecting);
                    tokio::time::sleep(self.shared.load.reconnect_delay).await;
                }
            }
        }
    }

    async fn say_ready(&self, ok: bool) {
        if self.ready_tx.send((self.index, ok)).await.is_err() {
            // The engine stopped listening: nothing to tell.
        }
    }

    fn finish(&self, mut state: SlotState, ready: bool) -> SlotResult {
        self.shared
            .stats
            .latency
            .record_many(self.index, &state.latencies);
        state.latencies.clear();
        state.close_connection();
        state.tally.unresolved.append(&mut state.closed);
        SlotResult {
            ready,
            receipts: state.receipts,
            acked: state.acked,
            tally: state.tally,
        }
    }

    async fn resume(&self, opened: &mut client::Opened, state: &mut SlotState) {
        let mut rooms = std::collections::BTreeMap::new();
        let mut targets = vec![0i64; self.shared.plan_rooms.len()];
        state.resume_from.clear();
        for (room, receipts) in &state.receipts {
            let id = self.shared.plan_rooms[*room];
            rooms.insert(id, receipts.resume_from());
            state.resume_from.push((*room, receipts.resume_from()));
            targets[*room] = opened
                .ready
                .rooms
                .iter()
                .find(|r| r.id == id)
                .map_or(0, |r| r.last_seq);
        }
        let frame = ClientFrame::Resume {
            rooms,
            reference: None,
        };
        let stats = &self.shared.stats;
        match serde_json::to_string(&frame) {
            Ok(text) => {
                if opened.ws.send(Message::text(text)).await.is_ok() {
                    stats::inc(&stats.counters.resumes);
                    stats::inc(&self.shared.resuming);
                    state.resume_targets = Some(targets);
                } else {
                    stats.error("resume_send_failed");
                }
            }
            Err(e) => stats.error(format!("resume encode: {e}")),
        }
    }

    /// One connection generation: commands and frames until it ends.
    async fn serve(&mut self, mut ws: client::Ws, state: &mut SlotState) -> Ended {
        let stats = Arc::clone(&self.shared.stats);
        // Made once, not on every turn of the loop: this loop runs once per
        // received frame, and the harness shares the CPU with the server.
        let mut stop = self.stop.clone();
        let stopped = async move {
            while !*stop.borrow_and_update() {
                if stop.changed().await.is_err() {
                    break;
                }
            }
        };
        tokio::pin!(stopped);
        // The scheduler drops its senders when the load ends.
        let mut commands_open = true;
        loop {
            tokio::select! {
                // In this order, with no random start: a frame is the common
                // case, and a command must not wait behind a stop.
                biased;
                cmd = self.commands.recv(), if commands_open => {
                    let Some(cmd) = cmd else {
                        commands_open = false;
                        continue;
                    };
                    let frame = match cmd {
                        Cmd::Drop => {
                            stats::inc(&stats.counters.client_drops);
                            state.tally.closes_unseen += 1;
                            // Abrupt: no close handshake, like a lost network.
                            drop(ws);
                            return Ended::Reconnect;
                        }
                        Cmd::Send { room } => self.message_frame(room, state),
                        Cmd::Typing => match state.receipts.first() {
                            Some((room, _)) => ClientFrame::Typing {
                                room_id: self.shared.plan_rooms[*room],
                                reference: Some(self.pending(state, None)),
                            },
                            None => continue,
                        },
                        Cmd::Presence(status) => ClientFrame::PresenceSet {
                            status,
                            reference: Some(self.pending(state, None)),
                        },
                    };
                    match serde_json::to_string(&frame) {
                        Ok(text) => {
                            if let Err(e) = ws.send(Message::text(text)).await {
                                stats.close(format!("send: {}", client::short_ws_error(&e)));
                                state.tally.closes_unseen += 1;
                                return Ended::Reconnect;
                            }
                        }
                        Err(e) => stats.error(format!("encode: {e}")),
                    }
                }
                msg = ws.next() => {
                    match msg {
                        Some(Ok(Message::Text(text))) => self.on_text(&text, state),
                        Some(Ok(Message::Close(frame))) => {
                            let code = frame.map_or(1005, |f| u16::from(f.code));
                            stats.close(code.to_string());
                            stats::inc(&stats.counters.server_closes);
                            if code == close::SLOW_CONSUMER {
                                state.tally.slow_consumer_closes += 1;
                            }
                            if matches!(code, close::UNAUTHENTICATED | close::REVOKED | close::POLICY) {
                                return Ended::Fatal;
                            }
                            return Ended::Reconnect;
                        }
                        Some(Ok(_)) => {}
                        Some(Err(e)) => {
                            stats.close(format!("error: {}", client::short_ws_error(&e)));
                            stats::inc(&stats.counters.server_closes);
                            state.tally.closes_unseen += 1;
                            return Ended::Reconnect;
                        }
                        None => {
                            stats.close("eof");
                            stats::inc(&stats.counters.server_closes);
                            state.tally.closes_unseen += 1;
                            return Ended::Reconnect;
                        }
                    }
                }
                () = &mut stopped => {
                    let closing = tokio::time::timeout(Duration::from_secs(2), ws.close(None));
                    if closing.await.is_err() {
                        stats.error("close_timeout");
                    }
                    return Ended::Stop;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, AtomicU64};

    use parley_actors::domain::RoomId;

    use crate::client::Target;
    use crate::engine::{EngineOpts, Load};
    use crate::stats::Stats;

    /// A slot task with no socket, to feed frames to by hand.
    fn bare_slot(room: RoomId) -> (SlotTask, SlotState) {
        let (_tx, commands) = mpsc::channel(1);
        let (_stop_tx, stop) = watch::channel(false);
        let (ready_tx, _ready_rx) = mpsc::channel(1);
        let opts = EngineOpts {
            connect_rate: 0.0,
            connect_concurrency: 1,
            connect_timeout: Duration::from_secs(1),
            drain_timeout: Duration::from_secs(1),
            max_reconnects: 1,
            progress: false,
            settle: Duration::ZERO,
            workers: 1,
        };
        let shared = Arc::new(Shared {
            plan_rooms: vec![room],
            room_ids: vec![room.to_string()],
            stats: Arc::new(Stats::new()),
            members: vec![AtomicU64::new(1)],
            expected: AtomicU64::new(0),
            resuming: AtomicU64::new(0),
            reconnecting: AtomicU64::new(0),
            load: Load::idle(Duration::ZERO),
            opts,
            target: Target::parse("http://127.0.0.1:9", false).unwrap(),
            stopping: AtomicBool::new(false),
            run_id: 1,
        });
        let task = SlotTask {
            index: 0,
            plan: SlotPlan {
                token: None,
                rooms: vec![0],
                bind: None,
            },
            shared,
            commands,
            stop,
            ready_tx,
            gate: Arc::new(Semaphore::new(1)),
            start_at: Instant::now(),
        };
        let state = SlotState {
            receipts: vec![(0, RoomReceipts::new(0))],
            acked: Vec::new(),
            pending: HashMap::new(),
            next_ref: 0,
            next_msg: 0,
            resume_targets: None,
            resume_from: Vec::new(),
            latencies: Vec::new(),
            tally: FrameTally::default(),
            connection_reads: Vec::new(),
            closed: Vec::new(),
        };
        (task, state)
    }

    fn created(room: RoomId, seq: i64) -> String {
        format!(
            r#"{{"type":"message.created","room_id":"{room}","message":{{"id":"x","room_id":"{room}","seq":{seq},"author_id":null,"body":"lt1|p1|s{seq}|t3|","reply_to":null,"created_at":"t","edited_at":null,"deleted":false,"reactions":{{}}}}}}"#
        )
    }

    #[test]
    fn a_churned_slot_tallies_what_the_server_counts() {
        let room = RoomId::new();
        let (task, mut state) = bare_slot(room);
        // The server queues to the first connection 1..=6 live; it reads
        // 1..=4, then the harness drops it.
        state.open_connection(|r| r.live.base());
        for seq in 1..=4 {
            task.on_text(&created(room, seq), &mut state);
        }
        state.close_connection();
        // 7 is stored while the slot is away. The second connection is
        // queued 8 live before its `resume` (from 4) pauses the room; the
        // replay sends 5..=8, the catch-up 9, then 10 comes live before
        // `resumed` (9), and 11 after it.
        state.open_connection(RoomReceipts::resume_from);
        assert_eq!(state.receipts[0].1.resume_from(), 4);
        state.resume_from = vec![(0, 4)];
        state.resume_targets = Some(vec![7]);
        for seq in [8, 5, 6, 7, 8, 9, 10] {
            task.on_text(&created(room, seq), &mut state);
        }
        task.on_text(
            &format!(r#"{{"type":"resumed","rooms":{{"{room}":9}}}}"#),
            &mut state,
        );
        assert!(state.resume_targets.is_none());
        task.on_text(&created(room, 11), &mut state);
        // The run stops.
        state.close_connection();
        let mut tally = std::mem::take(&mut state.tally);
        tally.unresolved.append(&mut state.closed);
        let known = state.receipts[0].1.max_seq();
        assert_eq!(known, 11);
        assert_eq!((tally.frames, tally.replayed, tally.in_doubt), (12, 5, 0));
        // The server counted 6 + 3 live deliveries: within [7, 7 + 5].
        let live = tally.frames - tally.replayed - tally.in_doubt;
        let bound = tally.unread_bound(|_| known);
        assert_eq!((live, bound), (7, 5));
        let server = 6 + 3;
        assert!(live <= server && server <= live + bound);
        // The ledger, for comparison, splits by seq against `ready`'s
        // last_seq (7): it counts the replayed 9 as live (8 live, 3
        // recovered, the second 8 a duplicate). Its split serves losses;
        // the cross-check counts frames instead.
        let r = &state.receipts[0].1;
        assert_eq!((r.live.len(), r.replayed.len(), r.duplicates), (8, 3, 1));
    }

    #[test]
    fn a_resume_cut_short_leaves_its_frames_in_doubt() {
        let room = RoomId::new();
        let (task, mut state) = bare_slot(room);
        state.open_connection(|r| r.live.base());
        task.on_text(&created(room, 1), &mut state);
        state.close_connection();
        state.open_connection(RoomReceipts::resume_from);
        state.resume_from = vec![(0, 1)];
        state.resume_targets = Some(vec![3]);
        for seq in [4, 2, 3] {
            task.on_text(&created(room, seq), &mut state);
        }
        // Closed before `resumed`: what the engine does when serve ends.
        state.resume_targets = None;
        state.tally.on_end();
        state.close_connection();
        let t = &state.tally;
        assert_eq!((t.frames, t.replayed, t.in_doubt), (4, 0, 3));
        assert_eq!(state.closed.len(), 2, "both wait for a horizon");
    }
}
