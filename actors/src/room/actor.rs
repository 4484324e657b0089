//! The room actor: its state, loaded from the store when it starts, and
//! its dispatch. It checks membership and roles, stores every change
//! before it answers, and publishes each event once through the broker.
//! The work of each request is in the sibling modules `messages`,
//! `membership`, `moderation` and `resume`.
//!
//! Seqs are assigned by the store inside the insert transaction, so a room
//! actor that fails and is started again (state reloaded from the store)
//! never reuses or skips a seq, and a message is acknowledged only after it
//! is stored.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use ractor::{Actor, ActorProcessingErr, ActorRef};

use super::{Reply, RoomMsg};
use crate::broker::Target;
use crate::domain::{ConnectionId, MessageId, RoomId, RoomRole, UserId};
use crate::error::ChatError;
use crate::presence::{Presence, PresenceMsg};
use crate::protocol::ServerFrame;
use crate::shared::Shared;
use crate::sockets::Delivery;
use crate::store::{Message, NewMessage, Room};
use crate::telemetry;

/// The room actor (configuration only; state is in [`RoomState`]).
#[derive(Debug)]
pub(super) struct RoomActor {
    pub(super) shared: Arc<Shared>,
    /// A join tells the user's presence actor of its new audience.
    pub(super) presence: Presence,
}

/// A room actor's state, reloaded from the store when it starts.
#[derive(Debug)]
pub(super) struct RoomState {
    pub(super) room: Room,
    pub(super) members: HashMap<UserId, RoomRole>,
    pub(super) last_typing: HashMap<UserId, Instant>,
    pub(super) last_active: Instant,
    /// Sends checked and waiting for the next [`RoomMsg::Flush`].
    pub(super) pending: Vec<(NewMessage, Reply<Message>)>,
}

/// The most sends stored in one transaction.
pub(super) const MAX_BATCH: usize = 64;
impl Actor for RoomActor {
    type Msg = RoomMsg;
    type State = RoomState;
    type Arguments = RoomId;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        room_id: RoomId,
    ) -> Result<Self::State, ActorProcessingErr> {
        let store = &self.shared.store;
        let room = store
            .room_by_id(room_id)
            .await?
            .ok_or_else(|| ActorProcessingErr::from(format!("room {room_id} not found")))?;
        let members = store
            .list_members(room_id)
            .await?
            .into_iter()
            .map(|m| (m.user_id, m.role))
            .collect();
        myself.send_interval(self.shared.config.room_tick, || RoomMsg::Tick);
        Ok(RoomState {
            room,
            members,
            last_typing: HashMap::new(),
            last_active: Instant::now(),
            pending: Vec::new(),
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        message: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        if !matches!(message, RoomMsg::Tick) {
            state.last_active = Instant::now();
        }
        // Sends are checked now and stored together at the next `Flush`;
        // anything else first stores what is pending, so every message is
        // handled in the order it arrived.
        if !matches!(message, RoomMsg::Send { .. }) {
            self.flush(state).await;
        }
        match message {
            RoomMsg::Send {
                author,
                body,
                reply_to,
                client_id,
                reply,
            } => {
                self.send(&myself, state, author, body, reply_to, client_id, reply)
                    .await;
            }
            RoomMsg::Flush => {}
            RoomMsg::Edit {
                user,
                message_id,
                body,
                reply,
            } => answer(reply, self.edit(state, user, message_id, body).await),
            RoomMsg::Delete {
                user,
                message_id,
                reply,
            } => answer(reply, self.delete(state, user, message_id).await),
            RoomMsg::React {
                user,
                message_id,
                emoji,
                add,
                reply,
            } => answer(reply, self.react(state, user, message_id, emoji, add).await),
            RoomMsg::Typing { user, reply } => answer(reply, self.typing(state, user)),
            RoomMsg::Read {
                user,
                seq,
                conn,
                reply,
            } => answer(reply, self.read(state, user, seq, conn).await),
            RoomMsg::Join { user, reply } => answer(reply, self.join(state, user).await),
            RoomMsg::AcceptInvite {
                user,
                invite_id,
                reply,
            } => answer(reply, self.accept_invite(state, user, invite_id).await),
            RoomMsg::Invite {
                inviter,
                invitee,
                reply,
            } => answer(reply, self.invite(state, inviter, invitee).await),
            RoomMsg::Leave { user, reply } => answer(reply, self.leave(state, user).await),
            RoomMsg::Kick {
                actor,
                target,
                ban,
                reply,
            } => answer(reply, self.kick(state, actor, target, ban).await),
            RoomMsg::Unban {
                actor,
                target,
                reply,
            } => answer(reply, self.unban(state, actor, target).await),
            RoomMsg::SetRole {
                actor,
                target,
                role,
                reply,
            } => answer(reply, self.set_role(state, actor, target, role).await),
            RoomMsg::Update {
                actor,
                patch,
                reply,
            } => answer(reply, self.update(state, actor, patch).await),
            RoomMsg::DeleteRoom { actor, reply } => {
                let result = self.delete_room(state, actor).await;
                let deleted = result.is_ok();
                answer(reply, result);
                if deleted {
                    myself.stop(Some("room deleted".to_owned()));
                }
            }
            RoomMsg::CatchUp {
                viewer,
                after_seq,
                outbox,
                reply,
            } => answer(
                reply,
                self.catch_up(state, viewer, after_seq, &outbox).await,
            ),
            RoomMsg::Snapshot { user, reply } => {
                let role = state.members.get(&user).copied();
                answer(reply, Ok((state.room.clone(), role)));
            }
            RoomMsg::Tick => {
                if state.last_active.elapsed() >= self.shared.config.room_idle {
                    myself.stop(Some("idle".to_owned()));
                }
            }
            #[cfg(feature = "fault-injection")]
            RoomMsg::Crash => panic!("fault injection: room {} crashes", state.room.id),
        }
        Ok(())
    }
}

/// Sends a reply; the caller may have given up (timeout), which is fine.
pub(super) fn answer<T>(reply: Reply<T>, result: Result<T, ChatError>) {
    if reply.send(result).is_err() {
        tracing::debug!("room reply dropped: the caller went away");
    }
}

impl RoomActor {
    /// Publishes a frame to the room's sockets.
    pub(super) fn publish(
        &self,
        state: &RoomState,
        frame: &ServerFrame,
        author: Option<UserId>,
        except_conn: Option<ConnectionId>,
    ) {
        self.publish_to(
            Target::Room(state.room.id),
            frame,
            author,
            None,
            except_conn,
        );
    }

    /// Publishes a frame to `target`.
    pub(super) fn publish_to(
        &self,
        target: Target,
        frame: &ServerFrame,
        author: Option<UserId>,
        except_user: Option<UserId>,
        except_conn: Option<ConnectionId>,
    ) {
        metrics::counter!(telemetry::WS_EVENTS, "direction" => "out", "type" => frame.kind())
            .increment(1);
        self.shared.broker.publish(
            target,
            Delivery {
                author,
                except_user,
                except_conn,
                ..Delivery::frame(frame)
            },
        );
    }

    /// Presence of a user who is online now also goes to this room.
    pub(super) fn tell_presence(&self, user: UserId, room: RoomId) {
        if let Err(e) = self.presence.route(user, PresenceMsg::Joined(room)) {
            tracing::debug!(%user, error = %e, "presence not told of a join");
        }
    }

    /// The member's role, or `NotMember`.
    pub(super) fn role(state: &RoomState, user: UserId) -> Result<RoomRole, ChatError> {
        state
            .members
            .get(&user)
            .copied()
            .ok_or(ChatError::NotMember)
    }

    /// A message of this room (a message of another room is "not found").
    pub(super) async fn message_in_room(
        &self,
        state: &RoomState,
        id: MessageId,
    ) -> Result<Message, ChatError> {
        match self.shared.store.message_by_id(id).await? {
            Some(m) if m.room_id == state.room.id => Ok(m),
            _ => Err(ChatError::NotFound("message")),
        }
    }
}
