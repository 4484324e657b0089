//! The room supervisor and registry: spawns one [`RoomActor`] per active room on first
//! use, and forgets it when it stops (idle, deleted) or fails (its state is
//! reloaded from the store by the next one). A failing room never takes the
//! supervisor or other rooms down.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;
use ractor::rpc::CallResult;
use ractor::{Actor, ActorId, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};

use super::actor::RoomActor;
use super::{RoomHandle, RoomMsg};
use crate::backlog::Backlog;
use crate::domain::RoomId;
use crate::error::ChatError;
use crate::presence::Presence;
use crate::shared::Shared;
use crate::telemetry;

/// How long a caller waits for a room's answer.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// Live room actors by room (a lookup registry; the supervisor writes it).
type RoomRegistry = Arc<DashMap<RoomId, ActorRef<RoomMsg>>>;

/// What the room supervisor does.
#[derive(Debug)]
enum RoomsMsg {
    /// The room's actor, spawned if needed.
    Get {
        room_id: RoomId,
        reply: RpcReplyPort<Result<ActorRef<RoomMsg>, ChatError>>,
    },
}

/// The room supervisor.
#[derive(Debug)]
struct RoomSupervisor {
    rooms: Rooms,
}

/// Starts the room supervisor behind `rooms`, linked to `parent`; it
/// registers itself in `rooms` as it starts.
pub(crate) async fn start_supervisor(
    rooms: Rooms,
    parent: ractor::ActorCell,
) -> Result<(), ractor::SpawnErr> {
    Actor::spawn_linked(None, RoomSupervisor { rooms }, (), parent).await?;
    Ok(())
}

/// Which room each child actor serves.
#[derive(Debug, Default)]
struct RoomSupervisorState {
    children: HashMap<ActorId, RoomId>,
}

impl Actor for RoomSupervisor {
    type Msg = RoomsMsg;
    type State = RoomSupervisorState;
    type Arguments = ();

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        _args: (),
    ) -> Result<Self::State, ActorProcessingErr> {
        if self.rooms.supervisor.set(myself).is_err() {
            return Err("room supervisor started twice".into());
        }
        Ok(RoomSupervisorState::default())
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match message {
            RoomsMsg::Get { room_id, reply } => {
                let result = self.get_or_spawn(&myself, state, room_id).await;
                if reply.send(result).is_err() {
                    tracing::debug!(%room_id, "room lookup answered after the caller left");
                }
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        _myself: ActorRef<Self::Msg>,
        event: SupervisionEvent,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match event {
            SupervisionEvent::ActorTerminated(cell, _, reason) => {
                if let Some(room) = state.children.remove(&cell.get_id()) {
                    self.rooms
                        .registry
                        .remove_if(&room, |_, r| r.get_id() == cell.get_id());
                    tracing::debug!(%room, ?reason, "room actor stopped");
                }
            }
            SupervisionEvent::ActorFailed(cell, error) => {
                if let Some(room) = state.children.remove(&cell.get_id()) {
                    self.rooms
                        .registry
                        .remove_if(&room, |_, r| r.get_id() == cell.get_id());
                    metrics::counter!(telemetry::ACTOR_FAILURES, "actor" => "room").increment(1);
                    tracing::error!(%room, %error, "room actor failed; it restarts from the store on next use");
                }
            }
            _ => {}
        }
        metrics::gauge!(telemetry::ROOMS_ACTIVE).set(self.rooms.registry.len() as f64);
        Ok(())
    }
}

impl RoomSupervisor {
    async fn get_or_spawn(
        &self,
        myself: &ActorRef<RoomsMsg>,
        state: &mut RoomSupervisorState,
        room_id: RoomId,
    ) -> Result<ActorRef<RoomMsg>, ChatError> {
        if let Some(existing) = self.rooms.registry.get(&room_id) {
            return Ok(existing.clone());
        }
        let actor = RoomActor {
            shared: Arc::clone(&self.rooms.shared),
            presence: self.rooms.presence.clone(),
        };
        match Actor::spawn_linked(None, actor, room_id, myself.get_cell()).await {
            Ok((room, _handle)) => {
                state.children.insert(room.get_id(), room_id);
                self.rooms.registry.insert(room_id, room.clone());
                metrics::gauge!(telemetry::ROOMS_ACTIVE).set(self.rooms.registry.len() as f64);
                Ok(room)
            }
            Err(e) => {
                // pre_start fails when the room does not exist.
                tracing::debug!(%room_id, error = %e, "room actor did not start");
                Err(ChatError::NotFound("room"))
            }
        }
    }
}

/// How callers reach rooms: [`Rooms::room`] gives a typed handle. Cheap
/// to clone.
#[derive(Debug, Clone)]
pub struct Rooms {
    pub(super) shared: Arc<Shared>,
    /// Room actors tell users' presence actors of joins.
    pub(super) presence: Presence,
    registry: RoomRegistry,
    /// Requests sent to room actors and not yet answered.
    backlog: Arc<Backlog>,
    /// Set once the supervisor has started.
    supervisor: Arc<std::sync::OnceLock<ActorRef<RoomsMsg>>>,
}

impl Rooms {
    /// Rooms over `shared`, reachable once a [`RoomSupervisor`] built
    /// from them has started.
    pub(crate) fn new(shared: Arc<Shared>, presence: Presence) -> Self {
        Self {
            shared,
            presence,
            registry: Arc::default(),
            backlog: Arc::new(Backlog::new("room")),
            supervisor: Arc::default(),
        }
    }

    /// A handle on one room (its actor is started on the first request).
    pub fn room(&self, id: RoomId) -> RoomHandle<'_> {
        RoomHandle::new(self, id)
    }

    /// The room's actor, spawning it when needed.
    async fn get(&self, room_id: RoomId) -> Result<ActorRef<RoomMsg>, ChatError> {
        if let Some(existing) = self.registry.get(&room_id) {
            return Ok(existing.clone());
        }
        let supervisor = self
            .supervisor
            .get()
            .ok_or_else(|| ChatError::Unavailable("realtime core not started".to_owned()))?;
        match supervisor
            .call(|reply| RoomsMsg::Get { room_id, reply }, Some(CALL_TIMEOUT))
            .await?
        {
            CallResult::Success(result) => result,
            CallResult::Timeout => Err(ChatError::Unavailable(
                "room supervisor timed out".to_owned(),
            )),
            CallResult::SenderError => {
                Err(ChatError::Unavailable("room supervisor failed".to_owned()))
            }
        }
    }

    /// Asks a room and waits for its answer. A room actor that had already
    /// stopped (idle, or failed) is replaced and asked again; one that fails
    /// while handling the request is not retried (the request may have been
    /// stored), and the caller gets `Unavailable`.
    pub(super) async fn ask<T: Send + 'static>(
        &self,
        room_id: RoomId,
        build: impl Fn(super::Reply<T>) -> RoomMsg,
    ) -> Result<T, ChatError> {
        for _attempt in 0..3 {
            let actor = self.get(room_id).await?;
            self.backlog.add(1);
            let answer = actor.call(&build, Some(CALL_TIMEOUT)).await;
            self.backlog.add(-1);
            match answer {
                Ok(CallResult::Success(result)) => return result,
                Ok(CallResult::Timeout) => {
                    return Err(ChatError::Unavailable("room timed out".to_owned()));
                }
                Ok(CallResult::SenderError) => {
                    return Err(ChatError::Unavailable(
                        "room failed while handling the request".to_owned(),
                    ));
                }
                Err(_not_delivered) => {
                    // The actor stopped before it got the request: forget it
                    // and try a fresh one.
                    self.registry
                        .remove_if(&room_id, |_, r| r.get_id() == actor.get_id());
                    tokio::task::yield_now().await;
                }
            }
        }
        Err(ChatError::Unavailable("room is restarting".to_owned()))
    }

    /// Makes a live room actor panic (tests of supervision only); does
    /// nothing when the room is not active.
    #[cfg(feature = "fault-injection")]
    pub fn crash(&self, room_id: RoomId) {
        if let Some(actor) = self.registry.get(&room_id)
            && actor.cast(RoomMsg::Crash).is_err()
        {
            tracing::debug!(%room_id, "room stopped before the crash reached it");
        }
    }

    /// Active room actors.
    pub fn active(&self) -> usize {
        self.registry.len()
    }
}
