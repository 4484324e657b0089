//! One actor per WebSocket: turns the client's frames into requests to room
//! and presence actors, and answers each with an `ack` or an `error` on the
//! socket's own queue.
//!
//! The socket's reader task parses and rate-limits frames before they reach
//! this actor, so its mailbox grows only as fast as the limit allows; its
//! writer task drains the [`Outbox`].

use std::collections::BTreeMap;
use std::sync::Arc;

use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort, SupervisionEvent};

use crate::backlog::Backlog;
use crate::domain::{Emoji, MessageBody, MessageId, RoomId, UserId};
use crate::error::ChatError;
use crate::presence::{Presence, PresenceMsg};
use crate::protocol::{ClientFrame, MessageView, ServerFrame};
use crate::room::{Resumed, Rooms};
use crate::shared::Shared;
use crate::sockets::Outbox;
use crate::telemetry;

/// What a connection actor handles.
#[derive(Debug)]
pub enum ConnectionMsg {
    /// A parsed frame from the client.
    Frame(ClientFrame),
    /// Answered once every frame handed over before it has been handled
    /// (and its answer queued): a socket that is to close waits for it, so
    /// the sends it took in are answered before the close frame.
    Settle(RpcReplyPort<()>),
}

/// The connection actor.
#[derive(Debug)]
pub(crate) struct ConnectionActor {
    pub(crate) shared: Arc<Shared>,
    pub(crate) rooms: Rooms,
    pub(crate) presence: Presence,
    /// Frames handed to connection actors and not yet handled.
    pub(crate) backlog: Arc<Backlog>,
}

/// Its state: the socket and who is on it.
#[derive(Debug)]
pub(crate) struct ConnectionState {
    outbox: Arc<Outbox>,
    user: UserId,
}

impl Actor for ConnectionActor {
    type Msg = ConnectionMsg;
    type State = ConnectionState;
    type Arguments = Arc<Outbox>;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        outbox: Arc<Outbox>,
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(ConnectionState {
            user: outbox.user_id,
            outbox,
        })
    }

    async fn handle(
        &self,
        _myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        let frame = match message {
            ConnectionMsg::Frame(frame) => frame,
            ConnectionMsg::Settle(reply) => {
                if reply.send(()).is_err() {
                    tracing::debug!("the socket stopped waiting to settle");
                }
                return Ok(());
            }
        };
        self.backlog.add(-1);
        // A closing socket can be answered no more: what it still sent is
        // not acted on (a send is not stored without its ack).
        if state.outbox.is_closing() {
            return Ok(());
        }
        let reference = frame.reference().map(str::to_owned);
        // Boxed: inline, the largest of its states (store reads, asks)
        // would be kept in every connection actor's task for its life.
        let reply = match Box::pin(self.dispatch(state, frame)).await {
            Ok(Some(frame)) => frame,
            Ok(None) => return Ok(()),
            Err(e) => ServerFrame::error(reference.as_deref(), e.code(), e.to_string()),
        };
        send(state, &reply);
        Ok(())
    }
}

/// Queues a frame for this socket only.
fn send(state: &ConnectionState, frame: &ServerFrame) {
    metrics::counter!(telemetry::WS_EVENTS, "direction" => "out", "type" => frame.kind())
        .increment(1);
    state.outbox.push(frame.to_bytes(), frame.is_ephemeral());
}

fn ack(reference: Option<String>) -> Option<ServerFrame> {
    Some(ServerFrame::Ack {
        reference,
        message: None,
    })
}

fn body(raw: &str, max_chars: usize) -> Result<MessageBody, ChatError> {
    MessageBody::parse_max(raw, max_chars).map_err(|e| ChatError::invalid("body", e))
}

fn emoji(raw: &str) -> Result<Emoji, ChatError> {
    Emoji::parse(raw).map_err(|e| ChatError::invalid("emoji", e))
}

impl ConnectionActor {
    async fn dispatch(
        &self,
        state: &mut ConnectionState,
        frame: ClientFrame,
    ) -> Result<Option<ServerFrame>, ChatError> {
        let rooms = &self.rooms;
        let user = state.user;
        match frame {
            ClientFrame::Auth { .. } => {
                Err(ChatError::Conflict("this socket is already authenticated"))
            }
            ClientFrame::Ping { reference } => Ok(Some(ServerFrame::Pong { reference })),
            ClientFrame::MessageSend {
                room_id,
                body: text,
                reply_to,
                client_id,
                reference,
            } => {
                let body = body(&text, self.shared.config.max_body_chars)?;
                let message = rooms
                    .room(room_id)
                    .send(user, body, reply_to, client_id)
                    .await?;
                Ok(Some(ServerFrame::Ack {
                    reference,
                    message: Some(MessageView::from(&message)),
                }))
            }
            ClientFrame::MessageEdit {
                room_id,
                message_id,
                body: text,
                reference,
            } => {
                let body = body(&text, self.shared.config.max_body_chars)?;
                let message = rooms.room(room_id).edit(user, message_id, body).await?;
                Ok(Some(ServerFrame::Ack {
                    reference,
                    message: Some(MessageView::from(&message)),
                }))
            }
            ClientFrame::MessageDelete {
                room_id,
                message_id,
                reference,
            } => {
                rooms.room(room_id).delete(user, message_id).await?;
                Ok(ack(reference))
            }
            ClientFrame::ReactionAdd {
                room_id,
                message_id,
                emoji,
                reference,
            } => {
                self.react(user, room_id, message_id, &emoji, true, reference)
                    .await
            }
            ClientFrame::ReactionRemove {
                room_id,
                message_id,
                emoji,
                reference,
            } => {
                self.react(user, room_id, message_id, &emoji, false, reference)
                    .await
            }
            ClientFrame::Typing { room_id, reference } => {
                // Cheap local check first: typing is the most frequent frame.
                if !state.outbox.in_room(room_id) {
                    return Err(ChatError::NotMember);
                }
                rooms.room(room_id).typing(user).await?;
                // Typing is fire-and-forget unless the client asked for an answer.
                Ok(reference.is_some().then_some(ServerFrame::Ack {
                    reference,
                    message: None,
                }))
            }
            ClientFrame::Read {
                room_id,
                seq,
                reference,
            } => {
                let conn = Some(state.outbox.id);
                rooms.room(room_id).read(user, seq, conn).await?;
                Ok(ack(reference))
            }
            ClientFrame::PresenceSet { status, reference } => {
                self.presence.route(user, PresenceMsg::Set(status))?;
                Ok(ack(reference))
            }
            ClientFrame::Resume {
                rooms: wanted,
                reference,
            } => {
                let mut resumed = BTreeMap::new();
                for (room_id, last_seq) in wanted {
                    if !state.outbox.in_room(room_id) {
                        send(
                            state,
                            &ServerFrame::error(
                                None,
                                "not_member",
                                format!("not a member of room {room_id}"),
                            ),
                        );
                        continue;
                    }
                    let room = rooms.room(room_id);
                    match room.resume(user, &state.outbox, last_seq).await? {
                        Resumed::CaughtUp(last_seq) => {
                            resumed.insert(room_id, last_seq);
                        }
                        Resumed::ResyncRequired => {}
                    }
                }
                Ok(Some(ServerFrame::Resumed {
                    reference,
                    rooms: resumed,
                }))
            }
        }
    }

    async fn react(
        &self,
        user: UserId,
        room_id: RoomId,
        message_id: MessageId,
        raw: &str,
        add: bool,
        reference: Option<String>,
    ) -> Result<Option<ServerFrame>, ChatError> {
        let emoji = emoji(raw)?;
        self.rooms
            .room(room_id)
            .react(user, message_id, emoji, add)
            .await?;
        Ok(ack(reference))
    }
}

/// Supervises connection actors; a failing one is logged and its socket
/// closed by its own task, nothing else is touched.
#[derive(Debug)]
pub(crate) struct ConnectionSupervisor;

impl Actor for ConnectionSupervisor {
    type Msg = ();
    type State = ();
    type Arguments = ();

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        _args: (),
    ) -> Result<Self::State, ActorProcessingErr> {
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        _myself: ActorRef<Self::Msg>,
        event: SupervisionEvent,
        _state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        if let SupervisionEvent::ActorFailed(_, error) = event {
            metrics::counter!(telemetry::ACTOR_FAILURES, "actor" => "connection").increment(1);
            tracing::error!(%error, "connection actor failed");
        }
        Ok(())
    }
}
