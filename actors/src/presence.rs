//! Presence: one actor per online user, aggregating all of that user's
//! connections. Online while any connection is open (`away`/`dnd` as set,
//! `invisible` shown as offline), offline a grace period after the last one
//! closes, so a reconnect does not flap. Changes go to the users who share a
//! room with them and have not blocked them (nor been blocked by them).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use dashmap::DashMap;
use ractor::{Actor, ActorId, ActorProcessingErr, ActorRef, SupervisionEvent};

use crate::broker::Target;
use crate::domain::{ConnectionId, PresenceStatus, RoomId, UserId};
use crate::protocol::{ServerFrame, wire_time};
use crate::shared::Shared;
use crate::sockets::Delivery;
use crate::telemetry;

/// What others see of a user, for lookups (member lists).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shown {
    /// The status shown (`invisible` shows as offline).
    pub status: PresenceStatus,
    /// When the user was last seen online; `None` when never (here).
    pub last_seen_at: Option<DateTime<Utc>>,
}

/// Shown presence by user (lookup registry; written by presence actors).
pub(crate) type PresenceBoard = Arc<DashMap<UserId, Shown>>;

/// What a presence actor does.
#[derive(Debug)]
pub(crate) enum PresenceMsg {
    /// A connection of this user is ready; it receives these rooms.
    Connected(ConnectionId, Vec<RoomId>),
    /// The user is now in this room too.
    Joined(RoomId),
    /// A connection of this user closed.
    Disconnected(ConnectionId),
    /// The user chose a status.
    Set(PresenceStatus),
    /// The grace period after the last connection closed has passed.
    GraceOver(u64),
}

/// One user's presence.
#[derive(Debug)]
pub(crate) struct PresenceActor {
    shared: Arc<Shared>,
    board: PresenceBoard,
}

/// Its state.
#[derive(Debug)]
pub(crate) struct PresenceState {
    user: UserId,
    connections: HashSet<ConnectionId>,
    /// The user's rooms, as their connections were told at connect: the
    /// audience of their presence.
    rooms: HashSet<RoomId>,
    chosen: PresenceStatus,
    shown: PresenceStatus,
    /// Bumped on every disconnect, so a stale grace timer does nothing.
    epoch: u64,
}

impl Actor for PresenceActor {
    type Msg = PresenceMsg;
    type State = PresenceState;
    type Arguments = UserId;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        user: UserId,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(PresenceState {
            user,
            connections: HashSet::new(),
            rooms: HashSet::new(),
            chosen: PresenceStatus::Online,
            shown: PresenceStatus::Offline,
            epoch: 0,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            PresenceMsg::Connected(conn, rooms) => {
                state.connections.insert(conn);
                state.rooms.extend(rooms);
                state.epoch += 1;
                self.show(state, visible(state.chosen));
            }
            PresenceMsg::Joined(room) => {
                state.rooms.insert(room);
            }
            PresenceMsg::Disconnected(conn) => {
                state.connections.remove(&conn);
                if state.connections.is_empty() {
                    state.epoch += 1;
                    let epoch = state.epoch;
                    myself.send_after(self.shared.config.presence_grace, move || {
                        PresenceMsg::GraceOver(epoch)
                    });
                }
            }
            PresenceMsg::Set(status) => {
                // Offline is not something one chooses while connected.
                if status != PresenceStatus::Offline {
                    state.chosen = status;
                    if !state.connections.is_empty() {
                        self.show(state, visible(status));
                    }
                }
            }
            PresenceMsg::GraceOver(epoch) => {
                if epoch == state.epoch && state.connections.is_empty() {
                    self.show(state, PresenceStatus::Offline);
                    self.board.remove(&state.user);
                    myself.stop(Some("offline".to_owned()));
                }
            }
        }
        Ok(())
    }
}

/// What others see for a chosen status.
fn visible(chosen: PresenceStatus) -> PresenceStatus {
    match chosen {
        PresenceStatus::Invisible => PresenceStatus::Offline,
        other => other,
    }
}

impl PresenceActor {
    fn show(&self, state: &mut PresenceState, status: PresenceStatus) {
        let now = Utc::now();
        self.board.insert(
            state.user,
            Shown {
                status,
                last_seen_at: Some(now),
            },
        );
        if status == state.shown {
            return;
        }
        state.shown = status;
        let frame = ServerFrame::Presence {
            user_id: state.user,
            status,
            last_seen_at: Some(wire_time(now)),
        };
        metrics::counter!(telemetry::WS_EVENTS, "direction" => "out", "type" => "presence")
            .increment(1);
        // Everyone online in a room with the user, once each; not across a
        // block either way; not in rooms too large for pushed presence.
        self.shared.broker.publish(
            Target::RoomsUnion {
                rooms: state.rooms.iter().copied().collect(),
                max_room: self.shared.config.presence_max_room,
            },
            Delivery {
                author: Some(state.user),
                except_user: Some(state.user),
                mutual: true,
                ..Delivery::frame(&frame)
            },
        );
    }
}

/// What the presence supervisor does.
#[derive(Debug)]
pub(crate) enum PresenceSupervisorMsg {
    /// Route a presence message to the user's actor, spawning it if needed.
    Route(UserId, PresenceMsg),
}

/// Spawns and supervises presence actors.
#[derive(Debug)]
pub(crate) struct PresenceSupervisor {
    shared: Arc<Shared>,
    presence: Presence,
}

impl PresenceSupervisor {
    /// The supervisor behind `presence` (it registers itself there when it
    /// starts).
    pub(crate) fn new(shared: Arc<Shared>, presence: Presence) -> Self {
        Self { shared, presence }
    }
}

/// Live presence actors.
#[derive(Debug, Default)]
pub(crate) struct PresenceSupervisorState {
    actors: HashMap<UserId, ActorRef<PresenceMsg>>,
    users: HashMap<ActorId, UserId>,
}

impl Actor for PresenceSupervisor {
    type Msg = PresenceSupervisorMsg;
    type State = PresenceSupervisorState;
    type Arguments = ();

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        _args: (),
    ) -> Result<Self::State, ActorProcessingErr> {
        if self.presence.supervisor.set(myself).is_err() {
            return Err("presence supervisor started twice".into());
        }
        Ok(PresenceSupervisorState::default())
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let PresenceSupervisorMsg::Route(user, message) = message;
        let message = match state.actors.get(&user) {
            Some(actor) => match actor.cast(message) {
                Ok(()) => return Ok(()),
                // The actor stopped (went offline) after we last looked.
                Err(ractor::MessagingErr::SendErr(back)) => {
                    state.actors.remove(&user);
                    back
                }
                Err(e) => {
                    tracing::warn!(%user, error = %e, "presence message not delivered");
                    return Ok(());
                }
            },
            None => message,
        };
        // A disconnect or timer for a user without an actor has nothing to do.
        let message @ (PresenceMsg::Connected(..) | PresenceMsg::Set(_)) = message else {
            return Ok(());
        };
        let actor = PresenceActor {
            shared: Arc::clone(&self.shared),
            board: Arc::clone(&self.presence.board),
        };
        let (actor, _handle) = Actor::spawn_linked(None, actor, user, myself.get_cell()).await?;
        state.users.insert(actor.get_id(), user);
        if actor.cast(message).is_err() {
            tracing::warn!(%user, "new presence actor stopped at once");
        }
        state.actors.insert(user, actor);
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        _myself: ActorRef<Self::Msg>,
        event: SupervisionEvent,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let (cell, failed) = match event {
            SupervisionEvent::ActorTerminated(cell, _, _) => (cell, false),
            SupervisionEvent::ActorFailed(cell, error) => {
                tracing::error!(%error, "presence actor failed");
                (cell, true)
            }
            _ => return Ok(()),
        };
        if failed {
            metrics::counter!(telemetry::ACTOR_FAILURES, "actor" => "presence").increment(1);
        }
        if let Some(user) = state.users.remove(&cell.get_id())
            && state
                .actors
                .get(&user)
                .is_some_and(|a| a.get_id() == cell.get_id())
        {
            state.actors.remove(&user);
            if failed {
                self.presence.board.remove(&user);
            }
        }
        Ok(())
    }
}

/// How callers reach presence actors.
#[derive(Debug, Clone, Default)]
pub struct Presence {
    supervisor: Arc<std::sync::OnceLock<ActorRef<PresenceSupervisorMsg>>>,
    board: PresenceBoard,
}

impl Presence {
    /// Hands a message to the user's presence actor.
    pub(crate) fn route(&self, user: UserId, message: PresenceMsg) -> Result<(), crate::ChatError> {
        self.supervisor
            .get()
            .ok_or_else(|| crate::ChatError::Unavailable("presence not started".to_owned()))?
            .cast(PresenceSupervisorMsg::Route(user, message))
            .map_err(|_| crate::ChatError::Unavailable("presence".to_owned()))
    }

    /// What others see of a user (offline when unknown).
    pub fn shown(&self, user: UserId) -> Shown {
        self.board.get(&user).map_or(
            Shown {
                status: PresenceStatus::Offline,
                last_seen_at: None,
            },
            |s| *s,
        )
    }
}
