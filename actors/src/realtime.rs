//! The realtime core as one handle: the root supervisor over the room,
//! presence and connection supervisors, the socket registry, the block
//! view, and the broker. The HTTP layer talks to it; it talks to actors.
//!
//! ```text
//! RootSupervisor
//! ├── RoomSupervisor ──────── RoomActor (one per active room)
//! ├── PresenceSupervisor ──── PresenceActor (one per online user)
//! └── ConnectionSupervisor ── ConnectionActor (one per socket)
//! ```

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use chrono::Utc;
use ractor::{Actor, ActorProcessingErr, ActorRef, SupervisionEvent};

use crate::blocks::BlockIndex;
use crate::broker::{Broker, LocalBroker, Target};
use crate::connection::{ConnectionActor, ConnectionMsg, ConnectionSupervisor};
use crate::domain::{RoomId, RoomName, RoomRole, RoomTopic, SessionId, UserId, Visibility};
use crate::error::ChatError;
use crate::presence::{Presence, PresenceMsg, PresenceSupervisor};
use crate::protocol::{ReadyRoom, ReadyUser, ServerFrame};
use crate::room::RoomMsg;
use crate::rooms::{RoomSupervisor, Rooms};
use crate::sockets::{Delivery, Outbox, Sockets};
use crate::store::{Membership, NewRoom, Room, Store};

/// Tunables of the realtime core (all configurable in the server).
#[derive(Debug, Clone)]
pub struct RealtimeConfig {
    /// How often a room actor checks whether it is idle.
    pub room_tick: Duration,
    /// A room actor with no requests for this long stops (it restarts on use).
    pub room_idle: Duration,
    /// `expires_in_ms` of typing events.
    pub typing_ttl: Duration,
    /// Typing from one user in one room is sent at most once per this.
    pub typing_coalesce: Duration,
    /// Offline is shown this long after a user's last connection closes.
    pub presence_grace: Duration,
    /// A resume further behind than this many messages gets `resync_required`.
    pub resume_max_gap: u32,
    /// Presence is pushed only through rooms with at most this many sockets
    /// (it grows with the square of a room's size); members lists still show it.
    pub presence_max_room: usize,
    /// Durable events queued per socket before it is closed with 4009.
    pub durable_queue: usize,
    /// Ephemeral events queued per socket before they are shed.
    pub ephemeral_queue: usize,
    /// Longest message body, in characters (at most 4000).
    pub max_body_chars: usize,
}

impl Default for RealtimeConfig {
    fn default() -> Self {
        Self {
            room_tick: Duration::from_secs(30),
            room_idle: Duration::from_secs(300),
            typing_ttl: Duration::from_secs(5),
            typing_coalesce: Duration::from_millis(1000),
            presence_grace: Duration::from_secs(5),
            resume_max_gap: 1000,
            presence_max_room: 1000,
            durable_queue: 1024,
            ephemeral_queue: 64,
            max_body_chars: crate::domain::MessageBody::MAX_CHARS,
        }
    }
}

/// What every actor shares.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) store: Arc<dyn Store>,
    /// Stores the rooms' messages, many rooms per transaction.
    pub(crate) writer: crate::writer::MessageWriter,
    /// This node's sockets (resume re-subscribes one socket directly).
    pub(crate) sockets: Arc<Sockets>,
    pub(crate) broker: Arc<dyn Broker>,
    pub(crate) blocks: Arc<BlockIndex>,
    pub(crate) rooms: Rooms,
    pub(crate) presence: Presence,
    pub(crate) config: RealtimeConfig,
    /// Frames handed to connection actors and not yet handled (mailbox depth).
    pub(crate) connection_backlog: Backlog,
}

/// A sampled mailbox depth: incremented when a message is sent, decremented
/// when handled, exported as `actor_mailbox_depth{actor}` (ractor does not
/// expose queue lengths itself).
#[derive(Debug)]
pub(crate) struct Backlog {
    depth: std::sync::atomic::AtomicI64,
    actor: &'static str,
}

impl Backlog {
    pub(crate) fn new(actor: &'static str) -> Self {
        Self {
            depth: std::sync::atomic::AtomicI64::new(0),
            actor,
        }
    }

    pub(crate) fn add(&self, n: i64) {
        let depth = self
            .depth
            .fetch_add(n, std::sync::atomic::Ordering::Relaxed)
            + n;
        metrics::gauge!(crate::telemetry::MAILBOX_DEPTH, "actor" => self.actor).set(depth as f64);
    }
}

/// The root supervisor.
#[derive(Debug)]
struct RootSupervisor {
    shared: Arc<Shared>,
    connections: Arc<OnceLock<ActorRef<()>>>,
}

impl Actor for RootSupervisor {
    type Msg = ();
    type State = ();
    type Arguments = ();

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        _args: (),
    ) -> Result<Self::State, ActorProcessingErr> {
        let rooms = RoomSupervisor {
            shared: Arc::clone(&self.shared),
            registry: Arc::clone(&self.shared.rooms.registry),
        };
        let (rooms, _) = Actor::spawn_linked(None, rooms, (), myself.get_cell()).await?;
        let presence = PresenceSupervisor {
            shared: Arc::clone(&self.shared),
            board: Arc::clone(&self.shared.presence.board),
        };
        let (presence, _) = Actor::spawn_linked(None, presence, (), myself.get_cell()).await?;
        let (connections, _) =
            Actor::spawn_linked(None, ConnectionSupervisor, (), myself.get_cell()).await?;
        let already = self.shared.rooms.supervisor.set(rooms).is_err()
            | self.shared.presence.supervisor.set(presence).is_err()
            | self.connections.set(connections).is_err();
        if already {
            return Err("realtime supervisors started twice".into());
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        _myself: ActorRef<Self::Msg>,
        event: SupervisionEvent,
        _state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match event {
            SupervisionEvent::ActorFailed(cell, error) => {
                tracing::error!(actor = %cell.get_id(), %error, "a realtime supervisor failed");
            }
            SupervisionEvent::ActorTerminated(cell, _, reason) => {
                tracing::info!(actor = %cell.get_id(), ?reason, "a realtime supervisor stopped");
            }
            _ => {}
        }
        Ok(())
    }
}

/// The realtime core. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Realtime {
    shared: Arc<Shared>,
    sockets: Arc<Sockets>,
    root: ActorRef<()>,
    connections: Arc<OnceLock<ActorRef<()>>>,
}

impl Realtime {
    /// Starts the actor tree over `store`, with the in-process broker.
    pub async fn start(store: Arc<dyn Store>, config: RealtimeConfig) -> Result<Self, ChatError> {
        let blocks = Arc::new(BlockIndex::from_pairs(store.all_blocks().await?));
        let sockets = Arc::new(Sockets::default());
        let broker: Arc<dyn Broker> =
            Arc::new(LocalBroker::new(Arc::clone(&sockets), Arc::clone(&blocks)));
        let shared = Arc::new(Shared {
            writer: crate::writer::MessageWriter::spawn(Arc::clone(&store)),
            store,
            sockets: Arc::clone(&sockets),
            broker,
            blocks,
            rooms: Rooms {
                registry: Arc::default(),
                supervisor: Arc::default(),
                backlog: Arc::new(Backlog::new("room")),
            },
            presence: Presence::default(),
            config,
            connection_backlog: Backlog::new("connection"),
        });
        let connections = Arc::new(OnceLock::new());
        let root = RootSupervisor {
            shared: Arc::clone(&shared),
            connections: Arc::clone(&connections),
        };
        let (root, _handle) = Actor::spawn(None, root, ())
            .await
            .map_err(|e| ChatError::Unavailable(format!("actor tree did not start: {e}")))?;
        Ok(Self {
            shared,
            sockets,
            root,
            connections,
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
        &self.shared.rooms
    }

    /// Presence.
    pub fn presence(&self) -> &Presence {
        &self.shared.presence
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
        };
        let (actor, _handle) =
            Actor::spawn_linked(None, actor, Arc::clone(outbox), supervisor.get_cell())
                .await
                .map_err(|e| {
                    ChatError::Unavailable(format!("connection actor did not start: {e}"))
                })?;
        self.sockets
            .register(outbox, memberships.iter().map(|m| m.room.id));
        let rooms = match self.settle_memberships(outbox, &mut memberships).await {
            Ok(rooms) => rooms,
            Err(e) => {
                self.sockets.unregister(outbox);
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
            .shared
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
            self.sockets.unsubscribe_socket(outbox, m.room.id);
        }
        let joined: Vec<RoomId> = now
            .keys()
            .filter(|r| !before.contains(r))
            .copied()
            .collect();
        if !joined.is_empty() {
            for &room in &joined {
                self.sockets.subscribe_socket(outbox, room);
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
        self.shared.connection_backlog.add(1);
        actor.cast(ConnectionMsg::Frame(frame)).map_err(|_| {
            self.shared.connection_backlog.add(-1);
            ChatError::Unavailable("connection actor stopped".to_owned())
        })
    }

    /// Forgets a closed socket.
    pub fn disconnect(&self, outbox: &Outbox, actor: &ActorRef<ConnectionMsg>) {
        self.sockets.unregister(outbox);
        actor.stop(Some("socket closed".to_owned()));
        if let Err(e) = self
            .shared
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
        let room = self
            .shared
            .store
            .create_room(NewRoom {
                id: RoomId::new(),
                name,
                topic,
                visibility,
                owner,
                created_at: Utc::now(),
            })
            .await?;
        self.shared.broker.subscribe_user(owner, room.id);
        self.tell_joined(owner, room.id);
        self.publish_to_users(
            vec![owner],
            &ServerFrame::MemberJoined {
                room_id: room.id,
                user_id: owner,
                role: Some(RoomRole::Owner.to_string()),
            },
        );
        Ok(room)
    }

    /// The direct room between `me` and `other`, created on first use.
    /// Refused when either blocked the other.
    pub async fn open_direct(&self, me: UserId, other: UserId) -> Result<Room, ChatError> {
        if me == other {
            return Err(ChatError::Forbidden(
                "you cannot open a direct room with yourself",
            ));
        }
        if self.shared.store.user_by_id(other).await?.is_none() {
            return Err(ChatError::NotFound("user"));
        }
        if self.shared.blocks.either(me, other) {
            return Err(ChatError::Forbidden("you cannot message this user"));
        }
        let (room, created) = self
            .shared
            .store
            .get_or_create_direct_room(RoomId::new(), me, other, Utc::now())
            .await?;
        if created {
            for user in [me, other] {
                self.shared.broker.subscribe_user(user, room.id);
                self.tell_joined(user, room.id);
            }
            for user in [me, other] {
                self.publish_to_users(
                    vec![me, other],
                    &ServerFrame::MemberJoined {
                        room_id: room.id,
                        user_id: user,
                        role: Some(RoomRole::Member.to_string()),
                    },
                );
            }
        }
        Ok(room)
    }

    fn tell_joined(&self, user: UserId, room: RoomId) {
        if let Err(e) = self.shared.presence.route(user, PresenceMsg::Joined(room)) {
            tracing::debug!(%user, error = %e, "presence not told of a new room");
        }
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
        self.shared.broker.publish(Target::All, delivery(&frame));
    }

    fn publish_to_users(&self, users: Vec<UserId>, frame: &ServerFrame) {
        self.shared
            .broker
            .publish(Target::Users(users), delivery(frame));
    }

    /// Asks a room for its state and the caller's role in it.
    pub async fn room_snapshot(
        &self,
        room: RoomId,
        user: UserId,
    ) -> Result<(Room, Option<RoomRole>), ChatError> {
        self.shared
            .rooms
            .ask(room, |reply| RoomMsg::Snapshot { user, reply })
            .await
    }

    /// Makes a room actor panic (tests of supervision only).
    #[cfg(feature = "fault-injection")]
    pub fn crash_room(&self, room: RoomId) {
        self.shared.rooms.tell_if_active(room, RoomMsg::Crash);
    }

    /// Graceful stop: every socket gets 1001, then the actor tree stops.
    pub async fn shutdown(&self) {
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

fn delivery(frame: &ServerFrame) -> Delivery {
    Delivery::frame(frame)
}

fn ready_room(m: &Membership) -> ReadyRoom {
    ReadyRoom {
        id: m.room.id,
        name: m.room.name.clone(),
        last_seq: m.room.last_seq,
        unread_count: m.unread_count,
    }
}
