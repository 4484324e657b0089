//! The realtime core as one handle, for the server: it starts the actor
//! tree (the `supervisor` module), accepts and forgets sockets, and gives
//! the HTTP layer rooms ([`Rooms`]), presence, blocks and broadcasts.
//! Actors never import this module.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use chrono::Utc;
use ractor::{Actor, ActorRef};

use crate::backlog::Backlog;
use crate::blocks::BlockIndex;
use crate::broker::{Broker, LocalBroker, Target};
use crate::connection::{ConnectionActor, ConnectionMsg};
use crate::domain::{RoomId, RoomName, RoomTopic, SessionId, UserId, Visibility};
use crate::error::ChatError;
use crate::group_commit::GroupCommit;
use crate::presence::{Presence, PresenceMsg};
use crate::protocol::{ReadyRoom, ReadyUser, ServerFrame};
use crate::room::Rooms;
use crate::shared::Shared;
use crate::sockets::{Delivery, Outbox, Sockets};
use crate::store::{Membership, Room, Store};
use crate::supervisor::RootSupervisor;

pub use crate::config::RealtimeConfig;

/// The realtime core. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Realtime {
    shared: Arc<Shared>,
    /// This node's sockets: for accepting them (slots, outboxes), the
    /// heartbeat and shutdown; subscriptions go through the broker.
    sockets: Arc<Sockets>,
    rooms: Rooms,
    presence: Presence,
    root: ActorRef<()>,
    connections: Arc<OnceLock<ActorRef<()>>>,
    /// Frames handed to connection actors and not yet handled.
    connection_backlog: Arc<Backlog>,
}

impl Realtime {
    /// Starts the actor tree over `store`, with the in-process broker.
    pub async fn start(store: Arc<dyn Store>, config: RealtimeConfig) -> Result<Self, ChatError> {
        Self::start_with_broker(store, config, |sockets, blocks| {
            Arc::new(LocalBroker::new(sockets, blocks))
        })
        .await
    }

    /// Starts the actor tree over `store` with the broker `broker` builds
    /// from this node's sockets and the block view (a cluster broker wraps
    /// the local one).
    pub async fn start_with_broker(
        store: Arc<dyn Store>,
        config: RealtimeConfig,
        broker: impl FnOnce(Arc<Sockets>, Arc<BlockIndex>) -> Arc<dyn Broker>,
    ) -> Result<Self, ChatError> {
        let blocks = Arc::new(BlockIndex::from_pairs(store.all_blocks().await?));
        let sockets = Arc::new(Sockets::default());
        let broker = broker(Arc::clone(&sockets), Arc::clone(&blocks));
        let shared = Arc::new(Shared {
            group_commit: GroupCommit::spawn(Arc::clone(&store)),
            store,
            broker,
            blocks,
            config,
        });
        let presence = Presence::default();
        let rooms = Rooms::new(Arc::clone(&shared), presence.clone());
        let connections = Arc::new(OnceLock::new());
        let root = RootSupervisor {
            shared: Arc::clone(&shared),
            rooms: rooms.clone(),
            presence: presence.clone(),
            connections: Arc::clone(&connections),
        };
        let (root, _handle) = Actor::spawn(None, root, ())
            .await
            .map_err(|e| ChatError::Unavailable(format!("actor tree did not start: {e}")))?;
        Ok(Self {
            shared,
            sockets,
            rooms,
            presence,
            root,
            connections,
            connection_backlog: Arc::new(Backlog::new("connection")),
        })
    }

    /// The local socket registry.
    pub fn sockets(&self) -> &Sockets {
        &self.sockets
    }

    /// Reserves one of a user's `cap` socket slots (released when the
    /// returned guard drops); `None` when the user is at the cap.
    pub fn reserve_slot(&self, user: UserId, cap: usize) -> Option<crate::sockets::UserSlot> {
        self.sockets.reserve_slot(user, cap)
    }

    /// The block view.
    pub fn blocks(&self) -> &BlockIndex {
        &self.shared.blocks
    }

    /// Room actors.
    pub fn rooms(&self) -> &Rooms {
        &self.rooms
    }

    /// Presence.
    pub fn presence(&self) -> &Presence {
        &self.presence
    }

    /// The store the core uses.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.shared.store
    }

    /// Tunables.
    pub fn config(&self) -> &RealtimeConfig {
        &self.shared.config
    }

    /// A new outbox for a socket of this user, with the configured queue sizes.
    pub fn outbox(
        &self,
        user: UserId,
        session: SessionId,
    ) -> (Arc<Outbox>, crate::sockets::OutboxReader) {
        Outbox::new(
            user,
            session,
            self.shared.config.durable_queue,
            self.shared.config.ephemeral_queue,
        )
    }

    /// Accepts an authenticated socket: subscribes it to every room of the
    /// user, queues its `ready` frame first, starts its actor and marks the
    /// user online.
    ///
    /// `ready`'s `last_seq`s are read after the subscription: a message
    /// published before it was stored before it (rooms publish after the
    /// commit), so its seq is at or below the `last_seq` read, and one
    /// published after it reaches the socket. Read before, a message
    /// published in between fell between `ready` and the live stream.
    /// Membership changes in between are reconciled the same way.
    pub async fn connect(
        &self,
        outbox: &Arc<Outbox>,
        username: &str,
        heartbeat_interval_ms: u64,
    ) -> Result<ActorRef<ConnectionMsg>, ChatError> {
        let store = &self.shared.store;
        let mut memberships = store.list_memberships(outbox.user_id).await?;
        let supervisor = self
            .connections
            .get()
            .ok_or_else(|| ChatError::Unavailable("realtime core not started".to_owned()))?;
        let actor = ConnectionActor {
            shared: Arc::clone(&self.shared),
            rooms: self.rooms.clone(),
            presence: self.presence.clone(),
            backlog: Arc::clone(&self.connection_backlog),
        };
        let (actor, _handle) =
            Actor::spawn_linked(None, actor, Arc::clone(outbox), supervisor.get_cell())
                .await
                .map_err(|e| {
                    ChatError::Unavailable(format!("connection actor did not start: {e}"))
                })?;
        let rooms: Vec<RoomId> = memberships.iter().map(|m| m.room.id).collect();
        self.shared.broker.register(outbox, &rooms);
        let rooms = match self.settle_memberships(outbox, &mut memberships).await {
            Ok(rooms) => rooms,
            Err(e) => {
                self.shared.broker.unregister(outbox);
                actor.stop(Some("socket not accepted".to_owned()));
                return Err(e);
            }
        };
        let ready = ServerFrame::Ready {
            session_id: outbox.session_id.to_string(),
            user: ReadyUser {
                id: outbox.user_id,
                username: username.to_owned(),
            },
            rooms: memberships.iter().map(ready_room).collect(),
            heartbeat_interval_ms,
        };
        outbox.push_first(ready.to_bytes());
        if let Err(e) = self
            .presence
            .route(outbox.user_id, PresenceMsg::Connected(outbox.id, rooms))
        {
            // The socket works without presence; say so rather than refuse it.
            tracing::warn!(user = %outbox.user_id, error = %e, "presence not told of a connection");
        }
        Ok(actor)
    }

    /// The second look of [`Self::connect`], once the socket is registered:
    /// each room's `last_seq` as of now, and the socket's subscriptions
    /// brought in line with memberships that changed since the first look
    /// (a join or a leave in between told the user's sockets before this
    /// one was among them). Returns the rooms.
    async fn settle_memberships(
        &self,
        outbox: &Arc<Outbox>,
        memberships: &mut Vec<Membership>,
    ) -> Result<Vec<RoomId>, ChatError> {
        let store = &self.shared.store;
        let now: HashMap<RoomId, i64> = store
            .member_last_seqs(outbox.user_id)
            .await?
            .into_iter()
            .collect();
        let before: HashSet<RoomId> = memberships.iter().map(|m| m.room.id).collect();
        for m in memberships.iter().filter(|m| !now.contains_key(&m.room.id)) {
            self.shared.broker.unsubscribe_socket(outbox, m.room.id);
        }
        let joined: Vec<RoomId> = now
            .keys()
            .filter(|r| !before.contains(r))
            .copied()
            .collect();
        if !joined.is_empty() {
            for &room in &joined {
                self.shared.broker.subscribe_socket(outbox, room);
            }
            // Rare: the names and unread counts of the new rooms.
            *memberships = store.list_memberships(outbox.user_id).await?;
        }
        memberships.retain(|m| now.contains_key(&m.room.id));
        for m in memberships.iter_mut() {
            if let Some(&last_seq) = now.get(&m.room.id) {
                m.room.last_seq = m.room.last_seq.max(last_seq);
            }
        }
        Ok(memberships.iter().map(|m| m.room.id).collect())
    }

    /// Hands a client frame to a socket's connection actor.
    pub fn deliver_frame(
        &self,
        actor: &ActorRef<ConnectionMsg>,
        frame: crate::protocol::ClientFrame,
    ) -> Result<(), ChatError> {
        self.connection_backlog.add(1);
        actor.cast(ConnectionMsg::Frame(frame)).map_err(|_| {
            self.connection_backlog.add(-1);
            ChatError::Unavailable("connection actor stopped".to_owned())
        })
    }

    /// Waits up to `within` until the socket's connection actor has handled
    /// every frame delivered before this call, so their answers are queued
    /// on the socket. `false` when it did not settle in time.
    pub async fn settle(&self, actor: &ActorRef<ConnectionMsg>, within: Duration) -> bool {
        let ms = u64::try_from(within.as_millis()).unwrap_or(u64::MAX);
        match ractor::call_t!(actor, ConnectionMsg::Settle, ms) {
            Ok(()) => true,
            Err(e) => {
                tracing::debug!(error = %e, "connection actor did not settle");
                false
            }
        }
    }

    /// Forgets a closed socket.
    pub fn disconnect(&self, outbox: &Outbox, actor: &ActorRef<ConnectionMsg>) {
        self.shared.broker.unregister(outbox);
        actor.stop(Some("socket closed".to_owned()));
        if let Err(e) = self
            .presence
            .route(outbox.user_id, PresenceMsg::Disconnected(outbox.id))
        {
            tracing::debug!(error = %e, "presence not told of a disconnect");
        }
    }

    /// Creates a room owned by `owner`; the owner's sockets receive it at once.
    pub async fn create_room(
        &self,
        owner: UserId,
        name: RoomName,
        topic: Option<RoomTopic>,
        visibility: Visibility,
    ) -> Result<Room, ChatError> {
        self.rooms.create(owner, name, topic, visibility).await
    }

    /// The direct room between `me` and `other`, created on first use.
    /// Refused when either blocked the other.
    pub async fn open_direct(&self, me: UserId, other: UserId) -> Result<Room, ChatError> {
        self.rooms.open_direct(me, other).await
    }

    /// `blocker` blocks `blocked` (stored, then applied to fan-out).
    pub async fn block(&self, blocker: UserId, blocked: UserId) -> Result<bool, ChatError> {
        if blocker == blocked {
            return Err(ChatError::Invalid {
                field: "user_id",
                code: "invalid_value",
                message: "you cannot block yourself".to_owned(),
            });
        }
        if self.shared.store.user_by_id(blocked).await?.is_none() {
            return Err(ChatError::NotFound("user"));
        }
        let created = self
            .shared
            .store
            .create_block(blocker, blocked, Utc::now())
            .await?;
        self.shared.blocks.insert(blocker, blocked);
        Ok(created)
    }

    /// Lifts a block.
    pub async fn unblock(&self, blocker: UserId, blocked: UserId) -> Result<bool, ChatError> {
        let removed = self.shared.store.delete_block(blocker, blocked).await?;
        self.shared.blocks.remove(blocker, blocked);
        Ok(removed)
    }

    /// A user's rooms for `ready` and `GET /rooms`.
    pub async fn memberships(&self, user: UserId) -> Result<Vec<Membership>, ChatError> {
        Ok(self.shared.store.list_memberships(user).await?)
    }

    /// Closes every socket of these sessions (revocation: 4003).
    pub fn close_sessions(&self, sessions: &[SessionId], code: u16, reason: &str) {
        self.shared.broker.close_sessions(sessions, code, reason);
    }

    /// Closes every socket of a user (suspension, ban: 4003).
    pub fn close_user(&self, user: UserId, code: u16, reason: &str) {
        self.shared.broker.close_user(user, code, reason);
    }

    /// A `system` event to every socket.
    pub fn broadcast_system(&self, message: &str) {
        let frame = ServerFrame::System {
            message: message.to_owned(),
        };
        self.shared
            .broker
            .publish(Target::All, Delivery::frame(&frame));
    }

    /// Makes a room actor panic (tests of supervision only).
    #[cfg(feature = "fault-injection")]
    pub fn crash_room(&self, room: RoomId) {
        self.rooms.crash(room);
    }

    /// Graceful stop: every socket gets 1001, then the actor tree stops.
    pub async fn shutdown(&self) {
        // Only this node's sockets: this node is stopping, not the cluster.
        self.sockets
            .close_all(crate::protocol::close::GOING_AWAY, "server shutting down");
        // Give writers a moment to flush their queues and send the close.
        for _ in 0..50 {
            if self.sockets.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if let Err(e) = self
            .root
            .stop_and_wait(Some("shutdown".to_owned()), Some(Duration::from_secs(5)))
            .await
        {
            tracing::warn!(error = %e, "actor tree did not stop cleanly");
        }
    }
}

fn ready_room(m: &Membership) -> ReadyRoom {
    ReadyRoom {
        id: m.room.id,
        name: m.room.name.clone(),
        last_seq: m.room.last_seq,
        unread_count: m.unread_count,
    }
}
