//! Who is connected where: the lookup registry fan-out delivers through.
//!
//! Each socket has an [`Outbox`]: two bounded queues drained by the socket's
//! one writer task — durable events (messages, edits, reactions,
//! membership, acks) and ephemeral ones (typing, presence). A full ephemeral
//! queue sheds the event; a full durable queue closes the socket with 4009
//! (the client resumes from its last seq). Nothing here awaits, so a slow
//! socket never slows a room.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use dashmap::DashMap;
use tokio::sync::{mpsc, watch};

use crate::blocks::BlockIndex;
use crate::domain::{ConnectionId, RoomId, SessionId, UserId};
use crate::protocol::close;
use crate::telemetry;

/// Why and how a socket is to be closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseReason {
    /// WebSocket close code.
    pub code: u16,
    /// Short reason text.
    pub reason: String,
}

/// The receiving ends, owned by the socket's writer task.
#[derive(Debug)]
pub struct OutboxReceivers {
    /// Durable events, in order.
    pub durable: mpsc::Receiver<Bytes>,
    /// Ephemeral events.
    pub ephemeral: mpsc::Receiver<Bytes>,
    /// Becomes `Some` when the socket must close.
    pub close: watch::Receiver<Option<CloseReason>>,
}

/// The sending side of one socket.
#[derive(Debug)]
pub struct Outbox {
    pub id: ConnectionId,
    pub user_id: UserId,
    pub session_id: SessionId,
    durable: mpsc::Sender<Bytes>,
    ephemeral: mpsc::Sender<Bytes>,
    close: watch::Sender<Option<CloseReason>>,
    /// Set with the close reason: checked on every push without a lock.
    closing: AtomicBool,
    /// Rooms this socket receives.
    rooms: Mutex<HashSet<RoomId>>,
}

/// What happened to one pushed frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    /// Queued.
    Queued,
    /// Ephemeral and the queue was full: dropped and counted.
    Shed,
    /// Durable and the queue was full: the socket is being closed (4009).
    Closed,
}

impl Outbox {
    /// A new outbox with queues of the given sizes, and its receivers.
    pub fn new(
        user_id: UserId,
        session_id: SessionId,
        durable_capacity: usize,
        ephemeral_capacity: usize,
    ) -> (Arc<Self>, OutboxReceivers) {
        let (durable_tx, durable_rx) = mpsc::channel(durable_capacity.max(1));
        let (ephemeral_tx, ephemeral_rx) = mpsc::channel(ephemeral_capacity.max(1));
        let (close_tx, close_rx) = watch::channel(None);
        let outbox = Arc::new(Self {
            id: ConnectionId::new(),
            user_id,
            session_id,
            durable: durable_tx,
            ephemeral: ephemeral_tx,
            close: close_tx,
            closing: AtomicBool::new(false),
            rooms: Mutex::new(HashSet::new()),
        });
        let receivers = OutboxReceivers {
            durable: durable_rx,
            ephemeral: ephemeral_rx,
            close: close_rx,
        };
        (outbox, receivers)
    }

    /// Queues a frame without waiting.
    pub fn push(&self, bytes: Bytes, ephemeral: bool) -> Pushed {
        if self.is_closing() {
            return Pushed::Closed;
        }
        if ephemeral {
            return match self.ephemeral.try_send(bytes) {
                Ok(()) => Pushed::Queued,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    metrics::counter!(telemetry::SHED).increment(1);
                    Pushed::Shed
                }
                Err(mpsc::error::TrySendError::Closed(_)) => Pushed::Closed,
            };
        }
        match self.durable.try_send(bytes) {
            Ok(()) => Pushed::Queued,
            Err(mpsc::error::TrySendError::Full(_)) => {
                metrics::counter!(telemetry::SLOW_CONSUMER_CLOSES).increment(1);
                tracing::info!(conn = %self.id, user = %self.user_id, "slow consumer: closing with 4009");
                self.close(
                    close::SLOW_CONSUMER,
                    "slow consumer: resume from your last seq",
                );
                Pushed::Closed
            }
            Err(mpsc::error::TrySendError::Closed(_)) => Pushed::Closed,
        }
    }

    /// Queues a durable frame, waiting up to `patience` for room: for
    /// replays, which must not overrun the queue but may wait for the client.
    /// A client that does not make room in time is closed as a slow consumer.
    pub async fn push_waiting(&self, bytes: Bytes, patience: std::time::Duration) -> Pushed {
        if self.is_closing() {
            return Pushed::Closed;
        }
        match self.durable.send_timeout(bytes, patience).await {
            Ok(()) => Pushed::Queued,
            Err(mpsc::error::SendTimeoutError::Timeout(_)) => {
                metrics::counter!(telemetry::SLOW_CONSUMER_CLOSES).increment(1);
                self.close(
                    close::SLOW_CONSUMER,
                    "slow consumer: resume from your last seq",
                );
                Pushed::Closed
            }
            Err(mpsc::error::SendTimeoutError::Closed(_)) => Pushed::Closed,
        }
    }

    /// Asks the writer to close the socket (the first reason wins).
    pub fn close(&self, code: u16, reason: &str) {
        self.closing.store(true, Ordering::Release);
        self.close.send_if_modified(|current| {
            if current.is_some() {
                return false;
            }
            *current = Some(CloseReason {
                code,
                reason: reason.to_owned(),
            });
            true
        });
    }

    /// Whether a close has been asked for.
    pub fn is_closing(&self) -> bool {
        self.closing.load(Ordering::Acquire)
    }

    fn rooms(&self) -> std::sync::MutexGuard<'_, HashSet<RoomId>> {
        self.rooms.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether this socket receives the room.
    pub fn in_room(&self, room: RoomId) -> bool {
        self.rooms().contains(&room)
    }
}

/// One event to deliver, serialised once.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub bytes: Bytes,
    pub ephemeral: bool,
    /// The user who caused it: recipients who block them do not get it.
    pub author: Option<UserId>,
    /// Not to this user's sockets (e.g. typing goes to the others).
    pub except_user: Option<UserId>,
    /// Not to this socket (e.g. `read` goes to my other devices).
    pub except_conn: Option<ConnectionId>,
    /// Also not to users the author blocked (presence: neither way).
    pub mutual: bool,
    /// The frame's `type`, for metrics.
    pub kind: &'static str,
}

impl Delivery {
    /// A durable-or-ephemeral event with no filters.
    pub fn plain(bytes: Bytes, ephemeral: bool) -> Self {
        Self {
            bytes,
            ephemeral,
            author: None,
            except_user: None,
            except_conn: None,
            mutual: false,
            kind: "other",
        }
    }

    /// A frame, serialized once, with no filters.
    pub fn frame(frame: &crate::protocol::ServerFrame) -> Self {
        Self {
            kind: frame.kind(),
            ..Self::plain(frame.to_bytes(), frame.is_ephemeral())
        }
    }

    /// Recipients to leave out because of blocks.
    fn excluded(&self, blocks: &BlockIndex) -> Option<HashSet<UserId>> {
        let author = self.author?;
        if self.mutual {
            blocks.either_way(author)
        } else {
            blocks.blockers_of(author)
        }
    }
}

/// The registry of local sockets.
#[derive(Debug, Default)]
pub struct Sockets {
    /// Sockets per user, reserved before a socket is accepted (so concurrent
    /// upgrades cannot all pass the per-user cap) and released when it closes.
    user_slots: DashMap<UserId, usize>,
    conns: DashMap<ConnectionId, Arc<Outbox>>,
    by_user: DashMap<UserId, Vec<Arc<Outbox>>>,
    by_room: DashMap<RoomId, HashMap<ConnectionId, Arc<Outbox>>>,
}

/// One reserved socket slot of a user; released on drop.
#[derive(Debug)]
pub struct UserSlot {
    sockets: Arc<Sockets>,
    user: UserId,
}

impl Drop for UserSlot {
    fn drop(&mut self) {
        self.sockets.user_slots.remove_if_mut(&self.user, |_, n| {
            *n = n.saturating_sub(1);
            *n == 0
        });
    }
}

impl Sockets {
    /// Reserves one of `cap` socket slots for `user`, atomically; `None`
    /// when all are taken.
    pub fn reserve_slot(self: &Arc<Self>, user: UserId, cap: usize) -> Option<UserSlot> {
        let mut taken = self.user_slots.entry(user).or_insert(0);
        if *taken >= cap {
            let empty = *taken == 0;
            drop(taken);
            if empty {
                self.user_slots.remove_if(&user, |_, n| *n == 0);
            }
            return None;
        }
        *taken += 1;
        Some(UserSlot {
            sockets: Arc::clone(self),
            user,
        })
    }

    /// Subscribes one socket to a room (after a resume replayed its gap).
    pub fn subscribe_socket(&self, outbox: &Arc<Outbox>, room: RoomId) {
        self.subscribe(outbox, room);
    }

    /// Unsubscribes one socket from a room (while a resume replays its gap).
    pub fn unsubscribe_socket(&self, outbox: &Outbox, room: RoomId) {
        outbox.rooms().remove(&room);
        self.by_room.remove_if_mut(&room, |_, subs| {
            subs.remove(&outbox.id);
            subs.is_empty()
        });
    }

    /// Registers a socket receiving `rooms`.
    pub fn register(&self, outbox: &Arc<Outbox>, rooms: impl IntoIterator<Item = RoomId>) {
        self.conns.insert(outbox.id, Arc::clone(outbox));
        self.by_user
            .entry(outbox.user_id)
            .or_default()
            .push(Arc::clone(outbox));
        for room in rooms {
            self.subscribe(outbox, room);
        }
        metrics::gauge!(telemetry::WS_CONNECTIONS).set(self.conns.len() as f64);
        metrics::gauge!(telemetry::USERS_ONLINE).set(self.by_user.len() as f64);
    }

    fn subscribe(&self, outbox: &Arc<Outbox>, room: RoomId) {
        outbox.rooms().insert(room);
        self.by_room
            .entry(room)
            .or_default()
            .insert(outbox.id, Arc::clone(outbox));
    }

    /// Forgets a socket. Returns how many sockets its user still has.
    pub fn unregister(&self, outbox: &Outbox) -> usize {
        self.conns.remove(&outbox.id);
        let rooms: Vec<RoomId> = outbox.rooms().drain().collect();
        for room in rooms {
            self.by_room.remove_if_mut(&room, |_, subs| {
                subs.remove(&outbox.id);
                subs.is_empty()
            });
        }
        let mut left = 0;
        self.by_user.remove_if_mut(&outbox.user_id, |_, list| {
            list.retain(|o| o.id != outbox.id);
            left = list.len();
            list.is_empty()
        });
        metrics::gauge!(telemetry::WS_CONNECTIONS).set(self.conns.len() as f64);
        metrics::gauge!(telemetry::USERS_ONLINE).set(self.by_user.len() as f64);
        left
    }

    /// Every socket of `user` now receives `room`.
    pub fn subscribe_user(&self, user: UserId, room: RoomId) {
        for outbox in self.user_outboxes(user) {
            self.subscribe(&outbox, room);
        }
    }

    /// No socket of `user` receives `room` any more.
    pub fn unsubscribe_user(&self, user: UserId, room: RoomId) {
        for outbox in self.user_outboxes(user) {
            self.unsubscribe_socket(&outbox, room);
        }
    }

    /// No socket receives `room` any more (it was deleted).
    pub fn drop_room(&self, room: RoomId) {
        if let Some((_, subs)) = self.by_room.remove(&room) {
            for outbox in subs.values() {
                outbox.rooms().remove(&room);
            }
        }
    }

    fn user_outboxes(&self, user: UserId) -> Vec<Arc<Outbox>> {
        self.by_user
            .get(&user)
            .map(|list| list.clone())
            .unwrap_or_default()
    }

    /// How many sockets a user has open here.
    pub fn user_connections(&self, user: UserId) -> usize {
        self.by_user.get(&user).map_or(0, |list| list.len())
    }

    /// Open sockets.
    pub fn len(&self) -> usize {
        self.conns.len()
    }

    /// Whether none are open.
    pub fn is_empty(&self) -> bool {
        self.conns.is_empty()
    }

    fn wanted(delivery: &Delivery, outbox: &Outbox, blockers: Option<&HashSet<UserId>>) -> bool {
        delivery.except_user != Some(outbox.user_id)
            && delivery.except_conn != Some(outbox.id)
            && !blockers.is_some_and(|b| b.contains(&outbox.user_id))
    }

    /// Delivers to every socket in a room. Returns how many got it.
    pub fn deliver_room(&self, room: RoomId, delivery: &Delivery, blocks: &BlockIndex) -> usize {
        let blockers = delivery.excluded(blocks);
        let Some(subs) = self.by_room.get(&room) else {
            return 0;
        };
        let mut delivered = 0;
        for outbox in subs.values() {
            if Self::wanted(delivery, outbox, blockers.as_ref())
                && outbox.push(delivery.bytes.clone(), delivery.ephemeral) == Pushed::Queued
            {
                delivered += 1;
            }
        }
        delivered
    }

    /// Delivers once to every socket receiving any of `rooms`, leaving out
    /// rooms with more than `max_room` local sockets (presence in very large
    /// rooms is not pushed: it would be quadratic). Returns how many got it.
    pub fn deliver_rooms_union(
        &self,
        rooms: &[RoomId],
        max_room: usize,
        delivery: &Delivery,
        blocks: &BlockIndex,
    ) -> usize {
        let excluded = delivery.excluded(blocks);
        let mut seen = HashSet::new();
        let mut delivered = 0;
        for room in rooms {
            let Some(subs) = self.by_room.get(room) else {
                continue;
            };
            if subs.len() > max_room {
                continue;
            }
            for outbox in subs.values() {
                if seen.insert(outbox.id)
                    && Self::wanted(delivery, outbox, excluded.as_ref())
                    && outbox.push(delivery.bytes.clone(), delivery.ephemeral) == Pushed::Queued
                {
                    delivered += 1;
                }
            }
        }
        delivered
    }

    /// Delivers to every socket of the given users.
    pub fn deliver_users(
        &self,
        users: &[UserId],
        delivery: &Delivery,
        blocks: &BlockIndex,
    ) -> usize {
        let blockers = delivery.excluded(blocks);
        let mut delivered = 0;
        for user in users {
            if let Some(list) = self.by_user.get(user) {
                for outbox in list.iter() {
                    if Self::wanted(delivery, outbox, blockers.as_ref())
                        && outbox.push(delivery.bytes.clone(), delivery.ephemeral) == Pushed::Queued
                    {
                        delivered += 1;
                    }
                }
            }
        }
        delivered
    }

    /// Delivers to every socket.
    pub fn deliver_all(&self, delivery: &Delivery) -> usize {
        self.conns
            .iter()
            .filter(|o| o.push(delivery.bytes.clone(), delivery.ephemeral) == Pushed::Queued)
            .count()
    }

    /// Closes every socket of these sessions.
    pub fn close_sessions(&self, sessions: &[SessionId], code: u16, reason: &str) {
        for entry in self.conns.iter() {
            if sessions.contains(&entry.session_id) {
                entry.close(code, reason);
            }
        }
    }

    /// Closes every socket of a user.
    pub fn close_user(&self, user: UserId, code: u16, reason: &str) {
        for outbox in self.user_outboxes(user) {
            outbox.close(code, reason);
        }
    }

    /// Closes every socket (shutdown).
    pub fn close_all(&self, code: u16, reason: &str) {
        for entry in self.conns.iter() {
            entry.close(code, reason);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivery(text: &'static str, ephemeral: bool, author: Option<UserId>) -> Delivery {
        Delivery {
            author,
            ..Delivery::plain(Bytes::from_static(text.as_bytes()), ephemeral)
        }
    }

    #[tokio::test]
    async fn rooms_reach_subscribers_and_blocks_filter() {
        let sockets = Sockets::default();
        let blocks = BlockIndex::default();
        let (alice, bob) = (UserId::new(), UserId::new());
        let room = RoomId::new();
        let (a, mut a_rx) = Outbox::new(alice, SessionId::new(), 8, 8);
        let (b, mut b_rx) = Outbox::new(bob, SessionId::new(), 8, 8);
        sockets.register(&a, [room]);
        sockets.register(&b, [room]);
        assert_eq!(
            sockets.deliver_room(room, &delivery("x", false, Some(bob)), &blocks),
            2
        );
        blocks.insert(alice, bob);
        assert_eq!(
            sockets.deliver_room(room, &delivery("y", false, Some(bob)), &blocks),
            1
        );
        assert_eq!(a_rx.durable.recv().await.as_deref(), Some(&b"x"[..]));
        assert!(a_rx.durable.try_recv().is_err(), "alice blocked bob: no y");
        assert_eq!(b_rx.durable.recv().await.as_deref(), Some(&b"x"[..]));
        assert_eq!(b_rx.durable.recv().await.as_deref(), Some(&b"y"[..]));
        assert_eq!(sockets.unregister(&a), 0);
        assert_eq!(
            sockets.deliver_room(room, &delivery("z", false, None), &blocks),
            1
        );
    }

    #[tokio::test]
    async fn a_full_durable_queue_closes_and_a_full_ephemeral_queue_sheds() {
        let (outbox, rx) = Outbox::new(UserId::new(), SessionId::new(), 1, 1);
        assert_eq!(outbox.push(Bytes::from_static(b"t1"), true), Pushed::Queued);
        assert_eq!(outbox.push(Bytes::from_static(b"t2"), true), Pushed::Shed);
        assert!(!outbox.is_closing());
        assert_eq!(
            outbox.push(Bytes::from_static(b"m1"), false),
            Pushed::Queued
        );
        assert_eq!(
            outbox.push(Bytes::from_static(b"m2"), false),
            Pushed::Closed
        );
        assert_eq!(
            rx.close.borrow().as_ref().map(|c| c.code),
            Some(close::SLOW_CONSUMER)
        );
    }
}
