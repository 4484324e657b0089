//! The one seam between the actors and the sockets.
//!
//! Actors publish events to a [`Broker`]; it delivers them to sockets. The
//! in-process [`LocalBroker`] hands them straight to this node's
//! [`Sockets`]; a cluster broker (Redis, not built yet) will also carry them
//! to the other nodes, each delivering to its own sockets, without any actor
//! changing.

use std::sync::Arc;
use std::time::Instant;

use crate::blocks::BlockIndex;
use crate::domain::{RoomId, SessionId, UserId};
use crate::sockets::{Delivery, Outbox, Sockets};
use crate::telemetry;

/// Who an event is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Every socket receiving the room.
    Room(RoomId),
    /// Every socket of these users.
    Users(Vec<UserId>),
    /// Every socket receiving any of these rooms, once, skipping rooms with
    /// more than `max_room` sockets.
    RoomsUnion {
        /// The rooms.
        rooms: Vec<RoomId>,
        /// Rooms with more local sockets than this are skipped.
        max_room: usize,
    },
    /// Every socket.
    All,
}

/// Delivery of events and socket control, local or cluster-wide.
///
/// Every subscription and unsubscription of a socket goes through here, so
/// a broker that spans nodes sees all of them; nothing in the core calls
/// [`Sockets`]' subscription methods directly.
pub trait Broker: Send + Sync + std::fmt::Debug + 'static {
    /// Delivers an event; never waits on a socket.
    fn publish(&self, target: Target, delivery: Delivery);
    /// A socket of this node opened, receiving `rooms`.
    fn register(&self, outbox: &Arc<Outbox>, rooms: &[RoomId]);
    /// A socket of this node closed: it receives nothing more.
    fn unregister(&self, outbox: &Outbox);
    /// One socket starts receiving `room` (the end of a resume, or a
    /// membership that changed while the socket was being accepted).
    fn subscribe_socket(&self, outbox: &Arc<Outbox>, room: RoomId);
    /// One socket stops receiving `room` (while a resume replays its gap,
    /// or a membership that ended while the socket was being accepted).
    fn unsubscribe_socket(&self, outbox: &Outbox, room: RoomId);
    /// Every socket of `user` starts receiving `room`.
    fn subscribe_user(&self, user: UserId, room: RoomId);
    /// Every socket of `user` stops receiving `room`.
    fn unsubscribe_user(&self, user: UserId, room: RoomId);
    /// No socket receives `room` any more.
    fn drop_room(&self, room: RoomId);
    /// Closes every socket of these sessions.
    fn close_sessions(&self, sessions: &[SessionId], code: u16, reason: &str);
    /// Closes every socket of a user.
    fn close_user(&self, user: UserId, code: u16, reason: &str);
}

/// The single-node broker: delivers to this process's sockets.
#[derive(Debug, Clone)]
pub struct LocalBroker {
    sockets: Arc<Sockets>,
    blocks: Arc<BlockIndex>,
}

impl LocalBroker {
    /// A broker over the local registry.
    pub fn new(sockets: Arc<Sockets>, blocks: Arc<BlockIndex>) -> Self {
        Self { sockets, blocks }
    }
}

impl Broker for LocalBroker {
    fn publish(&self, target: Target, delivery: Delivery) {
        let started = Instant::now();
        let queued = match &target {
            Target::Room(room) => self.sockets.deliver_room(*room, &delivery, &self.blocks),
            Target::Users(users) => self.sockets.deliver_users(users, &delivery, &self.blocks),
            Target::RoomsUnion { rooms, max_room } => {
                self.sockets
                    .deliver_rooms_union(rooms, *max_room, &delivery, &self.blocks)
            }
            Target::All => self.sockets.deliver_all(&delivery),
        };
        metrics::histogram!(telemetry::FANOUT_DURATION).record(started.elapsed().as_secs_f64());
        metrics::counter!(telemetry::DELIVERIES, "type" => delivery.kind).increment(queued as u64);
    }

    fn register(&self, outbox: &Arc<Outbox>, rooms: &[RoomId]) {
        self.sockets.register(outbox, rooms.iter().copied());
    }

    fn unregister(&self, outbox: &Outbox) {
        self.sockets.unregister(outbox);
    }

    fn subscribe_socket(&self, outbox: &Arc<Outbox>, room: RoomId) {
        self.sockets.subscribe_socket(outbox, room);
    }

    fn unsubscribe_socket(&self, outbox: &Outbox, room: RoomId) {
        self.sockets.unsubscribe_socket(outbox, room);
    }

    fn subscribe_user(&self, user: UserId, room: RoomId) {
        self.sockets.subscribe_user(user, room);
    }

    fn unsubscribe_user(&self, user: UserId, room: RoomId) {
        self.sockets.unsubscribe_user(user, room);
    }

    fn drop_room(&self, room: RoomId) {
        self.sockets.drop_room(room);
    }

    fn close_sessions(&self, sessions: &[SessionId], code: u16, reason: &str) {
        self.sockets.close_sessions(sessions, code, reason);
    }

    fn close_user(&self, user: UserId, code: u16, reason: &str) {
        self.sockets.close_user(user, code, reason);
    }
}
