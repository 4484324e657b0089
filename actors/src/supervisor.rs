//! The root of the actor tree:
//!
//! ```text
//! RootSupervisor
//! ├── RoomSupervisor ──────── RoomActor (one per active room)
//! ├── PresenceSupervisor ──── PresenceActor (one per online user)
//! └── ConnectionSupervisor ── ConnectionActor (one per socket)
//! ```
//!
//! Each supervisor keeps its children's failures to itself (a failed room
//! is reloaded from the store on next use); the root only logs a
//! supervisor that stops, and stopping the root stops the tree.

use std::sync::{Arc, OnceLock};

use ractor::{Actor, ActorProcessingErr, ActorRef, SupervisionEvent};

use crate::connection::ConnectionSupervisor;
use crate::presence::{Presence, PresenceSupervisor};
use crate::room::{self, Rooms};
use crate::shared::Shared;

/// The root supervisor: starts the three supervisors below it, linked.
#[derive(Debug)]
pub(crate) struct RootSupervisor {
    pub(crate) shared: Arc<Shared>,
    pub(crate) rooms: Rooms,
    pub(crate) presence: Presence,
    /// Set to the connection supervisor once it has started.
    pub(crate) connections: Arc<OnceLock<ActorRef<()>>>,
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
        room::start_supervisor(self.rooms.clone(), myself.get_cell()).await?;
        let presence = PresenceSupervisor::new(Arc::clone(&self.shared), self.presence.clone());
        Actor::spawn_linked(None, presence, (), myself.get_cell()).await?;
        let (connections, _) =
            Actor::spawn_linked(None, ConnectionSupervisor, (), myself.get_cell()).await?;
        if self.connections.set(connections).is_err() {
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
