//! One actor per WebSocket: turns the client's frames into requests to room
//! and presence actors, and answers each with an `ack` or an `error` on the
//! socket's own queue.
//!
//! The socket's reader task parses and rate-limits frames before they reach
//! this actor, so its mailbox grows only as fast as the limit allows; its
//! writer task drains the [`Outbox`].

use std::collections::BTreeMap;
use std::sync::Arc;

use ractor::{Actor, ActorProcessingErr, ActorRef, SupervisionEvent};

use crate::domain::{Emoji, MessageBody, RoomId, UserId};
use crate::error::ChatError;
use crate::presence::PresenceMsg;
use crate::protocol::{ClientFrame, MessageView, ServerFrame};
use crate::realtime::Shared;
use crate::room::RoomMsg;
use crate::sockets::{Outbox, Pushed};
use crate::store::HistoryQuery;

/// How long a resume waits for a client to make room in its queue.
const REPLAY_PATIENCE: std::time::Duration = std::time::Duration::from_secs(10);
use crate::telemetry;

/// What a connection actor handles.
#[derive(Debug)]
pub enum ConnectionMsg {
    /// A parsed frame from the client.
    Frame(ClientFrame),
}

/// The connection actor.
#[derive(Debug)]
pub struct ConnectionActor {
    pub(crate) shared: Arc<Shared>,
}

/// Its state: the socket and who is on it.
#[derive(Debug)]
pub struct ConnectionState {
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
        let ConnectionMsg::Frame(frame) = message;
        self.shared.connection_backlog.add(-1);
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
        let rooms = &self.shared.rooms;
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
                    .ask(room_id, |reply| RoomMsg::Send {
                        author: user,
                        body: body.clone(),
                        reply_to,
                        client_id: client_id.clone(),
                        reply,
                    })
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
                let message = rooms
                    .ask(room_id, |reply| RoomMsg::Edit {
                        user,
                        message_id,
                        body: body.clone(),
                        reply,
                    })
                    .await?;
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
                rooms
                    .ask(room_id, |reply| RoomMsg::Delete {
                        user,
                        message_id,
                        reply,
                    })
                    .await?;
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
                rooms
                    .ask(room_id, |reply| RoomMsg::Typing { user, reply })
                    .await?;
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
                rooms
                    .ask(room_id, |reply| RoomMsg::Read {
                        user,
                        seq,
                        conn,
                        reply,
                    })
                    .await?;
                Ok(ack(reference))
            }
            ClientFrame::PresenceSet { status, reference } => {
                self.shared.presence.route(user, PresenceMsg::Set(status))?;
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
                    if let Some(last_seq) = self.resume_room(state, room_id, last_seq).await? {
                        resumed.insert(room_id, last_seq);
                    }
                }
                Ok(Some(ServerFrame::Resumed {
                    reference,
                    rooms: resumed,
                }))
            }
        }
    }

    /// Replays one room's gap: the bulk straight from the store, waiting for
    /// the socket's queue to drain (so a long gap never overruns it and the
    /// room never waits for this socket), with live delivery of the room to
    /// this socket paused; then the room actor queues what arrived meanwhile
    /// and resumes live delivery in one step. `None` when the gap is too
    /// large (`resync_required` sent instead).
    async fn resume_room(
        &self,
        state: &ConnectionState,
        room_id: RoomId,
        after_seq: i64,
    ) -> Result<Option<i64>, ChatError> {
        let store = &self.shared.store;
        let room = store
            .room_by_id(room_id)
            .await?
            .ok_or(ChatError::NotFound("room"))?;
        if room.last_seq - after_seq > i64::from(self.shared.config.resume_max_gap) {
            send(
                state,
                &ServerFrame::ResyncRequired {
                    room_id,
                    last_seq: room.last_seq,
                },
            );
            return Ok(None);
        }
        let sockets = &self.shared.sockets;
        sockets.unsubscribe_socket(&state.outbox, room_id);
        let replayed = self.replay_bulk(state, room_id, after_seq.max(0)).await;
        let caught_up = match replayed {
            Ok(cursor) => {
                let outbox = Arc::clone(&state.outbox);
                let user = state.user;
                self.shared
                    .rooms
                    .ask(room_id, |reply| RoomMsg::CatchUp {
                        viewer: user,
                        after_seq: cursor,
                        outbox: Arc::clone(&outbox),
                        reply,
                    })
                    .await
            }
            Err(e) => Err(e),
        };
        if caught_up.is_err() && !state.outbox.is_closing() {
            // Never leave a socket deaf to one of its rooms.
            sockets.subscribe_socket(&state.outbox, room_id);
        }
        caught_up.map(Some)
    }

    /// Queues every stored message after `cursor`; returns the last seq queued.
    async fn replay_bulk(
        &self,
        state: &ConnectionState,
        room_id: RoomId,
        mut cursor: i64,
    ) -> Result<i64, ChatError> {
        const PAGE: u32 = 200;
        loop {
            let page = self
                .shared
                .store
                .list_messages(
                    room_id,
                    HistoryQuery {
                        before_seq: None,
                        after_seq: Some(cursor),
                        limit: PAGE,
                        viewer: Some(state.user),
                    },
                )
                .await?;
            for message in &page {
                let frame = ServerFrame::MessageCreated {
                    room_id,
                    message: MessageView::from(message),
                };
                if state
                    .outbox
                    .push_waiting(frame.to_bytes(), REPLAY_PATIENCE)
                    .await
                    != Pushed::Queued
                {
                    return Err(ChatError::Unavailable(
                        "socket closed during resume".to_owned(),
                    ));
                }
                cursor = message.seq;
            }
            if page.len() < PAGE as usize {
                return Ok(cursor);
            }
        }
    }

    async fn react(
        &self,
        user: UserId,
        room_id: crate::domain::RoomId,
        message_id: crate::domain::MessageId,
        raw: &str,
        add: bool,
        reference: Option<String>,
    ) -> Result<Option<ServerFrame>, ChatError> {
        let emoji = emoji(raw)?;
        self.shared
            .rooms
            .ask(room_id, |reply| RoomMsg::React {
                user,
                message_id,
                emoji: emoji.clone(),
                add,
                reply,
            })
            .await?;
        Ok(ack(reference))
    }
}

/// Supervises connection actors; a failing one is logged and its socket
/// closed by its own task, nothing else is touched.
#[derive(Debug)]
pub struct ConnectionSupervisor;

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
