//! Who is connected where: the lookup registry fan-out delivers through.
//!
//! Each socket has an [`Outbox`]: two bounded queues behind one lock,
//! drained by the socket's one writer task — durable events (messages,
//! edits, reactions, membership, acks) and ephemeral ones (typing,
//! presence). A full ephemeral queue sheds the event; a full durable queue
//! closes the socket with 4009 (the client resumes from its last seq).
//! Nothing here awaits, so a slow socket never slows a room. The writer is
//! woken through one waker, and the heartbeat ping and the close request
//! travel in the same queue state, so a busy writer waits on nothing else.

use std::collections::{HashMap, HashSet, VecDeque};
use std::future::poll_fn;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use dashmap::DashMap;
use futures_util::task::AtomicWaker;
use tokio::sync::Notify;

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

/// What the writer is to do next (see [`OutboxReader::next`]).
#[derive(Debug, PartialEq, Eq)]
pub enum Next {
    /// Write this text frame.
    Frame(Bytes),
    /// Send a WebSocket ping (the heartbeat asked for one).
    Ping,
    /// Send the close frame and stop. Unless the close drops them (see
    /// [`flushes_before_close`]), the durable frames queued before it come
    /// first.
    Close(CloseReason),
}

/// Whether a close with `code` writes the durable frames queued before it
/// (answers, errors, events). A revoked session must not get more, a slow
/// consumer cannot take more and a silent one is gone; every other close
/// (an orderly one, a policy close for flooding, a frame too big or not
/// UTF-8, a server error) tells the client what it was answered first.
pub fn flushes_before_close(code: u16) -> bool {
    !matches!(
        code,
        close::REVOKED | close::SLOW_CONSUMER | close::IDLE | close::UNAUTHENTICATED
    )
}

/// The queues behind one lock. Empty queues own no memory, so an idle
/// socket's outbox costs only this struct.
#[derive(Debug, Default)]
struct Queues {
    durable: VecDeque<Bytes>,
    ephemeral: VecDeque<Bytes>,
    ping: bool,
    close: Option<CloseReason>,
    /// The writer is gone: nothing queued will be written.
    detached: bool,
}

/// A drained queue holding room for more entries than this gives it back
/// (after a burst or a replay), so idle sockets stay small.
const KEEP_CAPACITY: usize = 64;

impl Queues {
    fn pop_durable(&mut self) -> Option<Bytes> {
        let frame = self.durable.pop_front();
        if self.durable.is_empty() && self.durable.capacity() > KEEP_CAPACITY {
            self.durable = VecDeque::new();
        }
        frame
    }

    fn pop_ephemeral(&mut self) -> Option<Bytes> {
        let frame = self.ephemeral.pop_front();
        if self.ephemeral.is_empty() && self.ephemeral.capacity() > KEEP_CAPACITY {
            self.ephemeral = VecDeque::new();
        }
        frame
    }

    /// The next frame to write: durable first; once a close is asked
    /// for, only the durable frames queued before it, and none at all when
    /// the close says the client must not or cannot have them (see
    /// [`flushes_before_close`]).
    fn take_frame(&mut self) -> Option<Bytes> {
        match &self.close {
            None => self.pop_durable().or_else(|| self.pop_ephemeral()),
            Some(c) if flushes_before_close(c.code) => self.pop_durable(),
            Some(_) => None,
        }
    }

    fn take(&mut self) -> Option<Next> {
        self.take_frame()
            .map(Next::Frame)
            .or_else(|| {
                (self.close.is_none() && std::mem::take(&mut self.ping)).then_some(Next::Ping)
            })
            .or_else(|| self.close.clone().map(Next::Close))
    }
}

/// The sending side of one socket.
#[derive(Debug)]
pub struct Outbox {
    /// Its id.
    pub id: ConnectionId,
    /// The user.
    pub user_id: UserId,
    /// The session.
    pub session_id: SessionId,
    queues: Mutex<Queues>,
    durable_capacity: usize,
    ephemeral_capacity: usize,
    /// The writer task, woken by every push.
    writer: AtomicWaker,
    /// Set with the close reason: checked on every push without the lock.
    closing: AtomicBool,
    /// Set once the socket is unregistered: it may not be subscribed again
    /// (a resume that ends after its socket closed would otherwise leave
    /// it in the room's subscribers for good).
    unregistered: AtomicBool,
    /// Replays waiting for room in the durable queue, and how many.
    space: Notify,
    space_waiters: AtomicUsize,
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

/// The receiving side, owned by the socket's writer task. Dropping it
/// (the writer ended) makes every later push answer [`Pushed::Closed`].
#[derive(Debug)]
pub struct OutboxReader {
    outbox: Arc<Outbox>,
}

impl Outbox {
    /// A new outbox with queues of the given sizes, and its reader.
    pub fn new(
        user_id: UserId,
        session_id: SessionId,
        durable_capacity: usize,
        ephemeral_capacity: usize,
    ) -> (Arc<Self>, OutboxReader) {
        let outbox = Arc::new(Self {
            id: ConnectionId::new(),
            user_id,
            session_id,
            queues: Mutex::new(Queues::default()),
            durable_capacity: durable_capacity.max(1),
            ephemeral_capacity: ephemeral_capacity.max(1),
            writer: AtomicWaker::new(),
            closing: AtomicBool::new(false),
            unregistered: AtomicBool::new(false),
            space: Notify::new(),
            space_waiters: AtomicUsize::new(0),
            rooms: Mutex::new(HashSet::new()),
        });
        let reader = OutboxReader {
            outbox: Arc::clone(&outbox),
        };
        (outbox, reader)
    }

    fn queues(&self) -> MutexGuard<'_, Queues> {
        self.queues.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues a frame without waiting.
    pub fn push(&self, bytes: Bytes, ephemeral: bool) -> Pushed {
        if self.is_closing() {
            return Pushed::Closed;
        }
        let mut queues = self.queues();
        if queues.detached || queues.close.is_some() {
            return Pushed::Closed;
        }
        if ephemeral {
            if queues.ephemeral.len() >= self.ephemeral_capacity {
                drop(queues);
                metrics::counter!(telemetry::SHED).increment(1);
                return Pushed::Shed;
            }
            queues.ephemeral.push_back(bytes);
        } else {
            if queues.durable.len() >= self.durable_capacity {
                drop(queues);
                self.slow_consumer();
                return Pushed::Closed;
            }
            queues.durable.push_back(bytes);
        }
        drop(queues);
        self.writer.wake();
        Pushed::Queued
    }

    /// Queues a durable frame ahead of everything already queued, whatever
    /// the queue's size: for `ready`, which is built after the socket was
    /// subscribed and must still be its first frame.
    pub fn push_first(&self, bytes: Bytes) -> Pushed {
        if self.is_closing() {
            return Pushed::Closed;
        }
        let mut queues = self.queues();
        if queues.detached || queues.close.is_some() {
            return Pushed::Closed;
        }
        queues.durable.push_front(bytes);
        drop(queues);
        self.writer.wake();
        Pushed::Queued
    }

    fn slow_consumer(&self) {
        metrics::counter!(telemetry::SLOW_CONSUMER_CLOSES).increment(1);
        tracing::info!(conn = %self.id, user = %self.user_id, "slow consumer: closing with 4009");
        self.close(
            close::SLOW_CONSUMER,
            "slow consumer: resume from your last seq",
        );
    }

    /// Queues a durable frame, waiting up to `patience` for room: for
    /// replays, which must not overrun the queue but may wait for the client.
    /// A client that does not make room in time is closed as a slow consumer.
    pub async fn push_waiting(&self, bytes: Bytes, patience: Duration) -> Pushed {
        let deadline = tokio::time::Instant::now() + patience;
        self.space_waiters.fetch_add(1, Ordering::AcqRel);
        let pushed = loop {
            // Registered before the check, so a drain in between is not missed.
            let space = self.space.notified();
            tokio::pin!(space);
            space.as_mut().enable();
            {
                let mut queues = self.queues();
                if queues.detached || queues.close.is_some() {
                    break Pushed::Closed;
                }
                if queues.durable.len() < self.durable_capacity {
                    queues.durable.push_back(bytes);
                    drop(queues);
                    self.writer.wake();
                    break Pushed::Queued;
                }
            }
            if tokio::time::timeout_at(deadline, space).await.is_err() {
                self.slow_consumer();
                break Pushed::Closed;
            }
        };
        self.space_waiters.fetch_sub(1, Ordering::AcqRel);
        pushed
    }

    /// Asks the writer to close the socket (the first reason wins).
    pub fn close(&self, code: u16, reason: &str) {
        self.closing.store(true, Ordering::Release);
        let mut queues = self.queues();
        if queues.close.is_none() {
            queues.close = Some(CloseReason {
                code,
                reason: reason.to_owned(),
            });
            drop(queues);
            self.writer.wake();
            self.space.notify_waiters();
        }
    }

    /// Asks the writer to send a heartbeat ping (at most one is pending).
    pub fn ping(&self) {
        let mut queues = self.queues();
        if queues.close.is_none() && !queues.ping {
            queues.ping = true;
            drop(queues);
            self.writer.wake();
        }
    }

    /// Whether a close has been asked for.
    pub fn is_closing(&self) -> bool {
        self.closing.load(Ordering::Acquire)
    }

    /// The close asked for, if any.
    pub fn close_reason(&self) -> Option<CloseReason> {
        self.queues().close.clone()
    }

    fn rooms(&self) -> MutexGuard<'_, HashSet<RoomId>> {
        self.rooms.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether this socket receives the room.
    pub fn in_room(&self, room: RoomId) -> bool {
        self.rooms().contains(&room)
    }
}

impl OutboxReader {
    /// The next thing to write: frames first (durable before ephemeral),
    /// then a pending ping, then the close. Waits while there is nothing.
    pub async fn next(&self) -> Next {
        poll_fn(|cx| {
            if let Some(next) = self.try_next() {
                return Poll::Ready(next);
            }
            self.outbox.writer.register(cx.waker());
            // A push between the check and the registration woke nobody.
            self.try_next().map_or(Poll::Pending, Poll::Ready)
        })
        .await
    }

    /// The next queued frame, without waiting (to fill a write batch).
    pub fn try_frame(&self) -> Option<Bytes> {
        let frame = self.outbox.queues().take_frame();
        if frame.is_some() {
            self.made_room();
        }
        frame
    }

    fn try_next(&self) -> Option<Next> {
        let next = self.outbox.queues().take();
        if matches!(next, Some(Next::Frame(_))) {
            self.made_room();
        }
        next
    }

    fn made_room(&self) {
        if self.outbox.space_waiters.load(Ordering::Acquire) > 0 {
            self.outbox.space.notify_waiters();
        }
    }
}

impl Drop for OutboxReader {
    fn drop(&mut self) {
        let mut queues = self.outbox.queues();
        queues.detached = true;
        queues.durable = VecDeque::new();
        queues.ephemeral = VecDeque::new();
        drop(queues);
        self.outbox.closing.store(true, Ordering::Release);
        self.outbox.space.notify_waiters();
    }
}

/// One event to deliver, serialised once.
#[derive(Debug, Clone)]
pub struct Delivery {
    /// The frame, serialised once.
    pub bytes: Bytes,
    /// Shed, rather than closing the socket, when the queue is full.
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
///
/// Its subscription methods (`register`, `subscribe_*`, `unsubscribe_*`,
/// `drop_room`, `unregister`) are for [`crate::broker::Broker`]
/// implementations only: the core subscribes through the broker, so that a
/// broker spanning nodes sees every subscription.
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
    /// Asks one share of the sockets (share `share` of `shares`, by their
    /// connection id's random bits) for a heartbeat ping. Pinging a share at
    /// a time spreads the pings (and the pongs) over the interval instead
    /// of sending ten thousand at once.
    pub fn ping_share(&self, share: u64, shares: u64) {
        let shares = shares.max(1);
        for entry in &self.conns {
            let bits = entry.key().as_uuid().as_u128() as u64;
            if bits % shares == share % shares {
                entry.value().ping();
            }
        }
    }

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
        // Checked after the insert, and `unregister` sets the flag before
        // it drains: either it sees this room, or this sees the flag.
        if outbox.unregistered.load(Ordering::SeqCst) {
            self.unsubscribe_socket(outbox, room);
        }
    }

    /// Forgets a socket. Returns how many sockets its user still has.
    pub fn unregister(&self, outbox: &Outbox) -> usize {
        outbox.unregistered.store(true, Ordering::SeqCst);
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
        let (a, a_rx) = Outbox::new(alice, SessionId::new(), 8, 8);
        let (b, b_rx) = Outbox::new(bob, SessionId::new(), 8, 8);
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
        assert_eq!(a_rx.next().await, Next::Frame(Bytes::from_static(b"x")));
        assert_eq!(a_rx.try_frame(), None, "alice blocked bob: no y");
        assert_eq!(b_rx.next().await, Next::Frame(Bytes::from_static(b"x")));
        assert_eq!(b_rx.try_frame(), Some(Bytes::from_static(b"y")));
        assert_eq!(sockets.unregister(&a), 0);
        assert_eq!(
            sockets.deliver_room(room, &delivery("z", false, None), &blocks),
            1
        );
    }

    #[tokio::test]
    async fn a_socket_subscribed_after_it_was_unregistered_is_not_kept() {
        let sockets = Sockets::default();
        let blocks = BlockIndex::default();
        let room = RoomId::new();
        let (a, _a_rx) = Outbox::new(UserId::new(), SessionId::new(), 8, 8);
        let (b, _b_rx) = Outbox::new(UserId::new(), SessionId::new(), 8, 8);
        sockets.register(&a, [room]);
        sockets.register(&b, [room]);
        // `a` is resuming (unsubscribed) when its socket closes; the
        // resume's last step then subscribes it again.
        sockets.unsubscribe_socket(&a, room);
        sockets.unregister(&a);
        sockets.subscribe_socket(&a, room);
        assert!(!a.in_room(room));
        let subscribers = sockets.by_room.get(&room).map(|subs| subs.len());
        assert_eq!(subscribers, Some(1), "only b");
        assert_eq!(
            sockets.deliver_room(room, &delivery("x", false, None), &blocks),
            1
        );
        sockets.unregister(&b);
        sockets.subscribe_user(b.user_id, room);
        assert!(sockets.by_room.get(&room).is_none(), "no subscriber left");
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
            outbox.close_reason().map(|c| c.code),
            Some(close::SLOW_CONSUMER)
        );
        // Not an orderly close: nothing queued is written before it.
        assert!(matches!(
            rx.next().await,
            Next::Close(CloseReason {
                code: close::SLOW_CONSUMER,
                ..
            })
        ));
    }

    #[tokio::test]
    async fn a_policy_close_writes_the_queued_answers_first_and_a_revocation_does_not() {
        let (outbox, rx) = Outbox::new(UserId::new(), SessionId::new(), 8, 8);
        outbox.push(Bytes::from_static(b"rate_limited"), false);
        outbox.close(close::POLICY, "flooding");
        assert_eq!(
            rx.next().await,
            Next::Frame(Bytes::from_static(b"rate_limited"))
        );
        assert!(matches!(rx.next().await, Next::Close(c) if c.code == close::POLICY));

        let (outbox, rx) = Outbox::new(UserId::new(), SessionId::new(), 8, 8);
        outbox.push(Bytes::from_static(b"message"), false);
        outbox.close(close::REVOKED, "session revoked");
        assert!(matches!(rx.next().await, Next::Close(c) if c.code == close::REVOKED));
    }

    #[tokio::test]
    async fn the_writer_gets_durable_then_ephemeral_then_ping_then_an_orderly_close() {
        let (outbox, rx) = Outbox::new(UserId::new(), SessionId::new(), 8, 8);
        outbox.ping();
        outbox.ping();
        assert_eq!(outbox.push(Bytes::from_static(b"t"), true), Pushed::Queued);
        assert_eq!(outbox.push(Bytes::from_static(b"m"), false), Pushed::Queued);
        assert_eq!(rx.next().await, Next::Frame(Bytes::from_static(b"m")));
        assert_eq!(rx.next().await, Next::Frame(Bytes::from_static(b"t")));
        assert_eq!(rx.next().await, Next::Ping, "two pings asked, one sent");
        assert_eq!(outbox.push(Bytes::from_static(b"e"), true), Pushed::Queued);
        assert_eq!(outbox.push(Bytes::from_static(b"d"), false), Pushed::Queued);
        outbox.close(close::NORMAL, "bye");
        assert_eq!(
            outbox.push(Bytes::from_static(b"late"), false),
            Pushed::Closed
        );
        // An orderly close still writes the durable frames queued before it.
        assert_eq!(rx.try_frame(), Some(Bytes::from_static(b"d")));
        assert_eq!(rx.try_frame(), None, "the ephemeral one is dropped");
        assert!(matches!(
            rx.next().await,
            Next::Close(CloseReason {
                code: close::NORMAL,
                ..
            })
        ));
    }

    #[tokio::test]
    async fn a_waiting_push_gets_room_when_the_writer_drains_and_fails_when_it_is_gone() {
        let (outbox, rx) = Outbox::new(UserId::new(), SessionId::new(), 1, 1);
        assert_eq!(outbox.push(Bytes::from_static(b"1"), false), Pushed::Queued);
        let waiting = {
            let outbox = Arc::clone(&outbox);
            tokio::spawn(async move {
                outbox
                    .push_waiting(Bytes::from_static(b"2"), Duration::from_secs(10))
                    .await
            })
        };
        tokio::task::yield_now().await;
        assert_eq!(rx.next().await, Next::Frame(Bytes::from_static(b"1")));
        assert_eq!(waiting.await.expect("join"), Pushed::Queued);
        assert_eq!(rx.next().await, Next::Frame(Bytes::from_static(b"2")));
        drop(rx);
        assert_eq!(outbox.push(Bytes::from_static(b"3"), false), Pushed::Closed);
        assert_eq!(
            outbox
                .push_waiting(Bytes::from_static(b"4"), Duration::from_secs(10))
                .await,
            Pushed::Closed
        );
    }
}
