//! The room supervisor: spawns one [`RoomActor`] per active room on first
//! use, and forgets it when it stops (idle, deleted) or fails (its state is
//! reloaded from the store by the next one). A failing room never takes the
//! supervisor or other rooms down.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;
use ractor::rpc::CallResult;
use ractor::{Actor, ActorId, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};

use crate::domain::RoomId;
use crate::error::ChatError;
use crate::realtime::Shared;
use crate::room::{Reply, RoomActor, RoomMsg};
use crate::telemetry;

/// How long a caller waits for a room's answer.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// Live room actors by room (a lookup registry; the supervisor writes it).
pub type RoomRegistry = Arc<DashMap<RoomId, ActorRef<RoomMsg>>>;

/// What the room supervisor does.
#[derive(Debug)]
pub enum RoomsMsg {
    /// The room's actor, spawned if needed.
    Get {
        room_id: RoomId,
        reply: RpcReplyPort<Result<ActorRef<RoomMsg>, ChatError>>,
    },
}

/// The room supervisor.
#[derive(Debug)]
pub struct RoomSupervisor {
    pub(crate) shared: Arc<Shared>,
    pub(crate) registry: RoomRegistry,
}

/// Which room each child actor serves.
#[derive(Debug, Default)]
pub struct RoomSupervisorState {
    children: HashMap<ActorId, RoomId>,
}

impl Actor for RoomSupervisor {
    type Msg = RoomsMsg;
    type State = RoomSupervisorState;
    type Arguments = ();

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        _args: (),
    ) -> Result<Self::State, ActorProcessingErr> {
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
                    self.registry
                        .remove_if(&room, |_, r| r.get_id() == cell.get_id());
                    tracing::debug!(%room, ?reason, "room actor stopped");
                }
            }
            SupervisionEvent::ActorFailed(cell, error) => {
                if let Some(room) = state.children.remove(&cell.get_id()) {
                    self.registry
                        .remove_if(&room, |_, r| r.get_id() == cell.get_id());
                    metrics::counter!(telemetry::ACTOR_FAILURES, "actor" => "room").increment(1);
                    tracing::error!(%room, %error, "room actor failed; it restarts from the store on next use");
                }
            }
            _ => {}
        }
        metrics::gauge!(telemetry::ROOMS_ACTIVE).set(self.registry.len() as f64);
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
        if let Some(existing) = self.registry.get(&room_id) {
            return Ok(existing.clone());
        }
        let actor = RoomActor {
            shared: Arc::clone(&self.shared),
        };
        match Actor::spawn_linked(None, actor, room_id, myself.get_cell()).await {
            Ok((room, _handle)) => {
                state.children.insert(room.get_id(), room_id);
                self.registry.insert(room_id, room.clone());
                metrics::gauge!(telemetry::ROOMS_ACTIVE).set(self.registry.len() as f64);
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

/// How callers reach rooms.
#[derive(Debug, Clone)]
pub struct Rooms {
    pub(crate) registry: RoomRegistry,
    /// Requests sent to room actors and not yet answered.
    pub(crate) backlog: Arc<crate::realtime::Backlog>,
    /// Set once the supervisor has started.
    pub(crate) supervisor: Arc<std::sync::OnceLock<ActorRef<RoomsMsg>>>,
}

impl Rooms {
    /// The room's actor, spawning it when needed.
    pub async fn get(&self, room_id: RoomId) -> Result<ActorRef<RoomMsg>, ChatError> {
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
    pub async fn ask<T: Send + 'static>(
        &self,
        room_id: RoomId,
        build: impl Fn(Reply<T>) -> RoomMsg,
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

    /// Tells a live room actor something without waiting; does nothing when
    /// the room is not active.
    pub fn tell_if_active(&self, room_id: RoomId, message: RoomMsg) {
        if let Some(actor) = self.registry.get(&room_id)
            && actor.cast(message).is_err()
        {
            tracing::debug!(%room_id, "room stopped before a notice reached it");
        }
    }

    /// Active room actors.
    pub fn active(&self) -> usize {
        self.registry.len()
    }
}
