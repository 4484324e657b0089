//! Presence: one actor per online user, aggregating all of that user's
//! connections. Online while any connection is open (`away`/`dnd` as set,
//! `invisible` shown as offline), offline a grace period after the last one
//! closes, so a reconnect does not flap. Changes go to the users who share a
//! room with them and have not blocked them (nor been blocked by them).
//!
//! A user whose `show_presence` setting is off looks offline to everyone
//! else (no last-seen time either); their own sockets are told their real
//! status instead, and lookups by the user themself show it.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use dashmap::DashMap;
use ractor::{Actor, ActorId, ActorProcessingErr, ActorRef, SupervisionEvent};

use crate::broker::Target;
use crate::domain::{ConnectionId, PresenceStatus, RoomId, UserId};
use crate::protocol::{ServerFrame, wire_time};
use crate::settings::PrivacyIndex;
use crate::shared::Shared;
use crate::sockets::Delivery;
use crate::telemetry;

/// A user's presence, for lookups (member lists, profiles).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shown {
    /// The status shown (`invisible` shows as offline).
    pub status: PresenceStatus,
    /// When the user was last seen online; `None` when never (here).
    pub last_seen_at: Option<DateTime<Utc>>,
}

/// Presence by user, before `show_presence` is applied (lookup registry;
/// written by presence actors).
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
    /// The user's privacy settings changed: show the status again under them.
    PrivacyChanged,
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
    /// What others were last told.
    shown: PresenceStatus,
    /// What the user's own sockets were last told while hidden (`None`:
    /// not hidden, they follow nothing).
    told_self: Option<PresenceStatus>,
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
            told_self: None,
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
            PresenceMsg::PrivacyChanged => {
                if !state.connections.is_empty() {
                    self.show(state, visible(state.chosen));
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
        let hidden = !self.shared.privacy.get(state.user).show_presence;
        if hidden {
            self.tell_self(state, status, now);
        } else {
            state.told_self = None;
        }
        let to_others = if hidden {
            PresenceStatus::Offline
        } else {
            status
        };
        if to_others == state.shown {
            return;
        }
        state.shown = to_others;
        let frame = ServerFrame::Presence {
            user_id: state.user,
            status: to_others,
            last_seen_at: (!hidden).then(|| wire_time(now)),
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

    /// While hidden, the user's own sockets still learn their real status
    /// (others are told `offline`).
    fn tell_self(&self, state: &mut PresenceState, status: PresenceStatus, now: DateTime<Utc>) {
        if state.told_self == Some(status) {
            return;
        }
        state.told_self = Some(status);
        let frame = ServerFrame::Presence {
            user_id: state.user,
            status,
            last_seen_at: Some(wire_time(now)),
        };
        self.shared
            .broker
            .publish(Target::Users(vec![state.user]), Delivery::frame(&frame));
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
#[derive(Debug, Clone)]
pub struct Presence {
    supervisor: Arc<std::sync::OnceLock<ActorRef<PresenceSupervisorMsg>>>,
    board: PresenceBoard,
    privacy: Arc<PrivacyIndex>,
}

impl Presence {
    /// Presence over the privacy view (its supervisor registers itself
    /// when it starts).
    pub(crate) fn new(privacy: Arc<PrivacyIndex>) -> Self {
        Self {
            supervisor: Arc::default(),
            board: PresenceBoard::default(),
            privacy,
        }
    }

    /// Hands a message to the user's presence actor.
    pub(crate) fn route(&self, user: UserId, message: PresenceMsg) -> Result<(), crate::ChatError> {
        self.supervisor
            .get()
            .ok_or_else(|| crate::ChatError::Unavailable("presence not started".to_owned()))?
            .cast(PresenceSupervisorMsg::Route(user, message))
            .map_err(|_| crate::ChatError::Unavailable("presence".to_owned()))
    }

    /// What others see of a user (offline when unknown, or when the user
    /// turned `show_presence` off).
    pub fn shown(&self, user: UserId) -> Shown {
        if !self.privacy.get(user).show_presence {
            return OFFLINE;
        }
        self.real(user)
    }

    /// What `viewer` sees of `user`: the real status for the user themself,
    /// [`Self::shown`] for anyone else.
    pub fn shown_to(&self, viewer: UserId, user: UserId) -> Shown {
        if viewer == user {
            self.real(user)
        } else {
            self.shown(user)
        }
    }

    fn real(&self, user: UserId) -> Shown {
        self.board.get(&user).map_or(OFFLINE, |s| *s)
    }
}

/// A user nobody sees online.
const OFFLINE: Shown = Shown {
    status: PresenceStatus::Offline,
    last_seen_at: None,
};
