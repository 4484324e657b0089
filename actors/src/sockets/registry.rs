//! The registry of local sockets by connection, user and room, and the per-user socket slots.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use dashmap::DashMap;

use crate::blocks::BlockIndex;
use crate::domain::{ConnectionId, RoomId, SessionId, UserId};
use crate::telemetry;

use super::delivery::Delivery;
use super::outbox::{Outbox, Pushed};

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
    pub(super) by_room: DashMap<RoomId, HashMap<ConnectionId, Arc<Outbox>>>,
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
