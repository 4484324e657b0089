//! Per-socket outbox: the bounded durable and ephemeral queues the writer drains, and how a socket closes.

use std::collections::{HashSet, VecDeque};
use std::future::poll_fn;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use futures_util::task::AtomicWaker;
use tokio::sync::Notify;

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
    pub(super) unregistered: AtomicBool,
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

    pub(super) fn rooms(&self) -> MutexGuard<'_, HashSet<RoomId>> {
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
