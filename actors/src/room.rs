//! One actor per active room: the single writer of that room's realtime
//! state. It checks membership and roles, stores every change before it
//! answers, and publishes each event once through the broker.
//!
//! Seqs are assigned by the store inside the insert transaction, so a room
//! actor that fails and is started again (state reloaded from the store)
//! never reuses or skips a seq, and a message is acknowledged only after it
//! is stored.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use chrono::Utc;
use ractor::{Actor, ActorProcessingErr, ActorRef, RpcReplyPort};

use crate::domain::{
    ConnectionId, Emoji, InviteId, InviteStatus, MessageBody, MessageId, RoomId, RoomRole, UserId,
    Visibility,
};
use crate::error::ChatError;
use crate::protocol::{InviteView, MessageView, RoomView, ServerFrame};
use crate::realtime::Shared;
use crate::sockets::{Delivery, Outbox, Pushed};
use crate::store::{HistoryQuery, Invite, Message, NewInvite, NewMessage, Room, RoomPatch};
use crate::telemetry;

/// Reply port for room requests.
pub type Reply<T> = RpcReplyPort<Result<T, ChatError>>;

/// What a room actor does.
#[derive(Debug)]
pub enum RoomMsg {
    /// Store and publish a message.
    Send {
        author: UserId,
        body: MessageBody,
        reply_to: Option<MessageId>,
        client_id: Option<String>,
        reply: Reply<Message>,
    },
    /// Edit my message.
    Edit {
        user: UserId,
        message_id: MessageId,
        body: MessageBody,
        reply: Reply<Message>,
    },
    /// Delete a message (author, or admin+).
    Delete {
        user: UserId,
        message_id: MessageId,
        reply: Reply<Message>,
    },
    /// Add (`add`) or remove a reaction.
    React {
        user: UserId,
        message_id: MessageId,
        emoji: Emoji,
        add: bool,
        reply: Reply<bool>,
    },
    /// A member is typing (not stored; coalesced).
    Typing { user: UserId, reply: Reply<()> },
    /// Move a member's read marker; `conn` is the socket that asked.
    Read {
        user: UserId,
        seq: i64,
        conn: Option<ConnectionId>,
        reply: Reply<i64>,
    },
    /// Join a public room.
    Join {
        user: UserId,
        reply: Reply<RoomRole>,
    },
    /// Accept an invite to this room.
    AcceptInvite {
        user: UserId,
        invite_id: InviteId,
        reply: Reply<RoomRole>,
    },
    /// Add a member without checks (the other side of a new DM).
    AddMember {
        user: UserId,
        role: RoomRole,
        reply: Reply<()>,
    },
    /// Invite a user.
    Invite {
        inviter: UserId,
        invitee: UserId,
        reply: Reply<Invite>,
    },
    /// Leave the room.
    Leave { user: UserId, reply: Reply<()> },
    /// Kick (or ban) a member.
    Kick {
        actor: UserId,
        target: UserId,
        ban: bool,
        reply: Reply<()>,
    },
    /// Lift a ban.
    Unban {
        actor: UserId,
        target: UserId,
        reply: Reply<()>,
    },
    /// Set a member's role (owner only).
    SetRole {
        actor: UserId,
        target: UserId,
        role: RoomRole,
        reply: Reply<()>,
    },
    /// Rename or re-topic the room (admin+).
    Update {
        actor: UserId,
        patch: RoomPatch,
        reply: Reply<Room>,
    },
    /// Delete the room (owner).
    DeleteRoom { actor: UserId, reply: Reply<()> },
    /// The end of a resume: queue the messages after `after_seq` (the few
    /// stored since the bulk of the gap was replayed) and subscribe the
    /// socket to the room again, in one step, so nothing is missed or doubled.
    CatchUp {
        viewer: UserId,
        after_seq: i64,
        outbox: Arc<Outbox>,
        reply: Reply<i64>,
    },
    /// The room as the actor knows it, with the caller's role.
    Snapshot {
        user: UserId,
        reply: Reply<(Room, Option<RoomRole>)>,
    },
    /// Store the sends accepted so far in one transaction, then answer
    /// and publish them (group commit; the actor casts it to itself).
    Flush,
    /// Periodic check for idleness.
    Tick,
    /// Fail on purpose (tests only).
    #[cfg(feature = "fault-injection")]
    Crash,
}

/// The room actor (configuration only; state is in [`RoomState`]).
#[derive(Debug)]
pub struct RoomActor {
    pub(crate) shared: Arc<Shared>,
}

/// A room actor's state, reloaded from the store when it starts.
#[derive(Debug)]
pub struct RoomState {
    room: Room,
    members: HashMap<UserId, RoomRole>,
    last_typing: HashMap<UserId, Instant>,
    last_active: Instant,
    /// Sends checked and waiting for the next [`RoomMsg::Flush`].
    pending: Vec<(NewMessage, Reply<Message>)>,
}

/// The most sends stored in one transaction.
const MAX_BATCH: usize = 64;

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
            } => match self
                .check_send(state, author, reply_to, client_id.as_deref())
                .await
            {
                Err(e) => answer(reply, Err(e)),
                Ok(()) => {
                    if state.pending.is_empty()
                        && let Err(e) = myself.cast(RoomMsg::Flush)
                    {
                        tracing::debug!(error = %e, "room flush not queued");
                    }
                    state.pending.push((
                        NewMessage {
                            id: MessageId::new(),
                            room_id: state.room.id,
                            author_id: author,
                            body,
                            reply_to,
                            client_id,
                            created_at: Utc::now(),
                        },
                        reply,
                    ));
                    if state.pending.len() >= MAX_BATCH {
                        self.flush(state).await;
                    }
                }
            },
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
            RoomMsg::AddMember { user, role, reply } => {
                answer(reply, self.add_member(state, user, role).await);
            }
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
fn answer<T>(reply: Reply<T>, result: Result<T, ChatError>) {
    if reply.send(result).is_err() {
        tracing::debug!("room reply dropped: the caller went away");
    }
}

impl RoomActor {
    fn publish(
        &self,
        state: &RoomState,
        frame: &ServerFrame,
        author: Option<UserId>,
        except_conn: Option<ConnectionId>,
    ) {
        self.publish_to(
            crate::broker::Target::Room(state.room.id),
            frame,
            author,
            None,
            except_conn,
        );
    }

    fn publish_to(
        &self,
        target: crate::broker::Target,
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
    fn tell_presence(&self, user: UserId, room: RoomId) {
        if let Err(e) = self
            .shared
            .presence
            .route(user, crate::presence::PresenceMsg::Joined(room))
        {
            tracing::debug!(%user, error = %e, "presence not told of a join");
        }
    }

    fn role(state: &RoomState, user: UserId) -> Result<RoomRole, ChatError> {
        state
            .members
            .get(&user)
            .copied()
            .ok_or(ChatError::NotMember)
    }

    async fn message_in_room(
        &self,
        state: &RoomState,
        id: MessageId,
    ) -> Result<Message, ChatError> {
        match self.shared.store.message_by_id(id).await? {
            Some(m) if m.room_id == state.room.id => Ok(m),
            _ => Err(ChatError::NotFound("message")),
        }
    }

    /// What can be checked of a send before it is stored.
    async fn check_send(
        &self,
        state: &RoomState,
        author: UserId,
        reply_to: Option<MessageId>,
        client_id: Option<&str>,
    ) -> Result<(), ChatError> {
        Self::role(state, author)?;
        if let Some(cid) = client_id
            && (cid.is_empty() || cid.chars().count() > 64)
        {
            return Err(ChatError::Invalid {
                field: "client_id",
                code: "invalid_client_id",
                message: "client_id must be 1–64 characters".to_owned(),
            });
        }
        if let Some(id) = reply_to {
            self.message_in_room(state, id).await?;
        }
        Ok(())
    }

    /// Stores the pending sends in one transaction, then answers each and
    /// publishes the new ones, in order. A failed store fails them all
    /// (nothing was stored: the transaction is all or nothing).
    async fn flush(&self, state: &mut RoomState) {
        if state.pending.is_empty() {
            return;
        }
        let (batch, replies): (Vec<NewMessage>, Vec<Reply<Message>>) =
            std::mem::take(&mut state.pending).into_iter().unzip();
        metrics::histogram!(telemetry::SEND_BATCH).record(batch.len() as f64);
        match self.shared.writer.create_messages(batch).await {
            Ok(created) => {
                for (created, reply) in created.into_iter().zip(replies) {
                    match created {
                        crate::store::Created::New(message) => {
                            metrics::counter!(telemetry::MESSAGES_STORED).increment(1);
                            state.room.last_seq = state.room.last_seq.max(message.seq);
                            let frame = ServerFrame::MessageCreated {
                                room_id: state.room.id,
                                message: MessageView::from(&message),
                            };
                            self.publish(state, &frame, message.author_id, None);
                            answer(reply, Ok(message));
                        }
                        // A retried send: acknowledged again, not published twice.
                        crate::store::Created::Existing(message) => answer(reply, Ok(message)),
                    }
                }
            }
            Err(e) => {
                let e = ChatError::from(e);
                tracing::warn!(room = %state.room.id, error = %e, "storing a batch of messages failed");
                for reply in replies {
                    answer(reply, Err(e.clone()));
                }
            }
        }
    }

    async fn edit(
        &self,
        state: &mut RoomState,
        user: UserId,
        message_id: MessageId,
        body: MessageBody,
    ) -> Result<Message, ChatError> {
        Self::role(state, user)?;
        let message = self.message_in_room(state, message_id).await?;
        if message.author_id != Some(user) {
            return Err(ChatError::Forbidden("only the author may edit a message"));
        }
        if message.deleted {
            return Err(ChatError::NotFound("message"));
        }
        let updated = self
            .shared
            .store
            .update_message_body(message_id, body, Utc::now())
            .await?
            .ok_or(ChatError::NotFound("message"))?;
        let frame = ServerFrame::MessageUpdated {
            room_id: state.room.id,
            message: MessageView::from(&updated),
        };
        self.publish(state, &frame, Some(user), None);
        Ok(updated)
    }

    async fn delete(
        &self,
        state: &mut RoomState,
        user: UserId,
        message_id: MessageId,
    ) -> Result<Message, ChatError> {
        let role = Self::role(state, user)?;
        let message = self.message_in_room(state, message_id).await?;
        if message.author_id != Some(user) && !role.is_admin() {
            return Err(ChatError::Forbidden(
                "only the author or a room admin may delete a message",
            ));
        }
        let deleted = self
            .shared
            .store
            .delete_message(message_id, Utc::now())
            .await?
            .ok_or(ChatError::NotFound("message"))?;
        let frame = ServerFrame::MessageDeleted {
            room_id: state.room.id,
            message_id,
            seq: deleted.seq,
        };
        self.publish(state, &frame, message.author_id, None);
        Ok(deleted)
    }

    async fn react(
        &self,
        state: &mut RoomState,
        user: UserId,
        message_id: MessageId,
        emoji: Emoji,
        add: bool,
    ) -> Result<bool, ChatError> {
        Self::role(state, user)?;
        let message = self.message_in_room(state, message_id).await?;
        if message.deleted {
            return Err(ChatError::NotFound("message"));
        }
        let store = &self.shared.store;
        let changed = if add {
            store
                .add_reaction(message_id, user, &emoji, Utc::now())
                .await?
        } else {
            store.remove_reaction(message_id, user, &emoji).await?
        };
        if changed {
            let (room_id, emoji) = (state.room.id, emoji.as_str().to_owned());
            let frame = if add {
                ServerFrame::ReactionAdded {
                    room_id,
                    message_id,
                    emoji,
                    user_id: user,
                }
            } else {
                ServerFrame::ReactionRemoved {
                    room_id,
                    message_id,
                    emoji,
                    user_id: user,
                }
            };
            self.publish(state, &frame, Some(user), None);
        }
        Ok(changed)
    }

    fn typing(&self, state: &mut RoomState, user: UserId) -> Result<(), ChatError> {
        Self::role(state, user)?;
        let now = Instant::now();
        let coalesce = self.shared.config.typing_coalesce;
        if state
            .last_typing
            .get(&user)
            .is_some_and(|at| now.duration_since(*at) < coalesce)
        {
            return Ok(());
        }
        state.last_typing.insert(user, now);
        let frame = ServerFrame::Typing {
            room_id: state.room.id,
            user_id: user,
            expires_in_ms: u64::try_from(self.shared.config.typing_ttl.as_millis())
                .unwrap_or(u64::MAX),
        };
        self.publish_to(
            crate::broker::Target::Room(state.room.id),
            &frame,
            Some(user),
            Some(user),
            None,
        );
        Ok(())
    }

    async fn read(
        &self,
        state: &mut RoomState,
        user: UserId,
        seq: i64,
        conn: Option<ConnectionId>,
    ) -> Result<i64, ChatError> {
        Self::role(state, user)?;
        if seq < 0 {
            return Err(ChatError::Invalid {
                field: "seq",
                code: "out_of_range",
                message: "seq must not be negative".to_owned(),
            });
        }
        let marker = self
            .shared
            .store
            .set_read_marker(state.room.id, user, seq)
            .await?
            .ok_or(ChatError::NotMember)?;
        let frame = ServerFrame::Read {
            room_id: state.room.id,
            user_id: user,
            seq: marker,
        };
        // My other devices and, as receipts, the other members.
        self.publish(state, &frame, Some(user), conn);
        Ok(marker)
    }

    async fn admit(
        &self,
        state: &mut RoomState,
        user: UserId,
        role: RoomRole,
    ) -> Result<RoomRole, ChatError> {
        if let Some(existing) = state.members.get(&user) {
            return Ok(*existing);
        }
        self.shared
            .store
            .add_member(state.room.id, user, role, Utc::now())
            .await?;
        state.members.insert(user, role);
        self.shared.broker.subscribe_user(user, state.room.id);
        self.tell_presence(user, state.room.id);
        let frame = ServerFrame::MemberJoined {
            room_id: state.room.id,
            user_id: user,
            role: Some(role.to_string()),
        };
        self.publish(state, &frame, None, None);
        Ok(role)
    }

    async fn join(&self, state: &mut RoomState, user: UserId) -> Result<RoomRole, ChatError> {
        if let Some(role) = state.members.get(&user) {
            return Ok(*role);
        }
        if state.room.visibility != Visibility::Public {
            return Err(ChatError::NotFound("room"));
        }
        if self.shared.store.is_banned(state.room.id, user).await? {
            return Err(ChatError::Forbidden("you are banned from this room"));
        }
        self.admit(state, user, RoomRole::Member).await
    }

    async fn accept_invite(
        &self,
        state: &mut RoomState,
        user: UserId,
        invite_id: InviteId,
    ) -> Result<RoomRole, ChatError> {
        let store = &self.shared.store;
        match store.invite_by_id(invite_id).await? {
            Some(i)
                if i.invitee_id == user
                    && i.room_id == state.room.id
                    && i.status == InviteStatus::Pending => {}
            _ => return Err(ChatError::NotFound("invite")),
        }
        if store.is_banned(state.room.id, user).await? {
            return Err(ChatError::Forbidden("you are banned from this room"));
        }
        if !store
            .respond_invite(invite_id, InviteStatus::Accepted, Utc::now())
            .await?
        {
            return Err(ChatError::NotFound("invite"));
        }
        self.admit(state, user, RoomRole::Member).await
    }

    async fn add_member(
        &self,
        state: &mut RoomState,
        user: UserId,
        role: RoomRole,
    ) -> Result<(), ChatError> {
        self.admit(state, user, role).await.map(|_| ())
    }

    async fn invite(
        &self,
        state: &mut RoomState,
        inviter: UserId,
        invitee: UserId,
    ) -> Result<Invite, ChatError> {
        let role = Self::role(state, inviter)?;
        match state.room.visibility {
            Visibility::Direct => return Err(ChatError::Forbidden("direct rooms take no invites")),
            Visibility::Private if !role.is_admin() => {
                return Err(ChatError::Forbidden(
                    "only room admins may invite to a private room",
                ));
            }
            _ => {}
        }
        if inviter == invitee || state.members.contains_key(&invitee) {
            return Err(ChatError::Conflict("already a member"));
        }
        let store = &self.shared.store;
        // A user who blocked the inviter cannot be invited by them; say
        // "not found" so the block is not revealed.
        if self.shared.blocks.blocks(invitee, inviter) || store.user_by_id(invitee).await?.is_none()
        {
            return Err(ChatError::NotFound("user"));
        }
        if store.is_banned(state.room.id, invitee).await? {
            return Err(ChatError::Forbidden("that user is banned from this room"));
        }
        let invite = store
            .create_invite(NewInvite {
                id: InviteId::new(),
                room_id: state.room.id,
                inviter_id: inviter,
                invitee_id: invitee,
                created_at: Utc::now(),
            })
            .await
            .map_err(|e| match e {
                crate::store::StoreError::Conflict { .. } => {
                    ChatError::Conflict("an invite is already pending")
                }
                other => other.into(),
            })?;
        let frame = ServerFrame::Invite {
            invite: InviteView::new(&invite, Some(state.room.name.clone())),
        };
        self.publish_to(
            crate::broker::Target::Users(vec![invitee]),
            &frame,
            Some(inviter),
            None,
            None,
        );
        Ok(invite)
    }

    async fn remove(&self, state: &mut RoomState, user: UserId, reason: &str) {
        state.members.remove(&user);
        state.last_typing.remove(&user);
        let frame = ServerFrame::MemberLeft {
            room_id: state.room.id,
            user_id: user,
            reason: Some(reason.to_owned()),
        };
        // Published before unsubscribing, so the one who left hears it too.
        self.publish(state, &frame, None, None);
        self.shared.broker.unsubscribe_user(user, state.room.id);
    }

    async fn leave(&self, state: &mut RoomState, user: UserId) -> Result<(), ChatError> {
        let role = Self::role(state, user)?;
        if role == RoomRole::Owner && state.room.visibility != Visibility::Direct {
            return Err(ChatError::Forbidden(
                "the owner cannot leave; delete the room or hand ownership over first",
            ));
        }
        self.shared.store.remove_member(state.room.id, user).await?;
        self.remove(state, user, "left").await;
        Ok(())
    }

    fn moderate(state: &RoomState, actor: UserId, target: UserId) -> Result<(), ChatError> {
        let actor_role = Self::role(state, actor)?;
        if state.room.visibility == Visibility::Direct {
            return Err(ChatError::Forbidden("direct rooms have no moderation"));
        }
        if !actor_role.is_admin() {
            return Err(ChatError::Forbidden("only room admins may moderate"));
        }
        if actor == target {
            return Err(ChatError::Forbidden("you cannot moderate yourself"));
        }
        if let Some(target_role) = state.members.get(&target)
            && target_role.rank() >= actor_role.rank()
        {
            return Err(ChatError::Forbidden(
                "you may only moderate members below your role",
            ));
        }
        Ok(())
    }

    async fn kick(
        &self,
        state: &mut RoomState,
        actor: UserId,
        target: UserId,
        ban: bool,
    ) -> Result<(), ChatError> {
        Self::moderate(state, actor, target)?;
        let store = &self.shared.store;
        let was_member = state.members.contains_key(&target);
        if ban {
            if store.user_by_id(target).await?.is_none() {
                return Err(ChatError::NotFound("user"));
            }
            store
                .ban_member(state.room.id, target, actor, Utc::now())
                .await?;
        } else {
            if !was_member {
                return Err(ChatError::NotFound("member"));
            }
            store.remove_member(state.room.id, target).await?;
        }
        if was_member {
            self.remove(state, target, if ban { "banned" } else { "kicked" })
                .await;
        }
        Ok(())
    }

    async fn unban(
        &self,
        state: &mut RoomState,
        actor: UserId,
        target: UserId,
    ) -> Result<(), ChatError> {
        Self::moderate(state, actor, target)?;
        if self
            .shared
            .store
            .unban_member(state.room.id, target)
            .await?
        {
            Ok(())
        } else {
            Err(ChatError::NotFound("ban"))
        }
    }

    async fn set_role(
        &self,
        state: &mut RoomState,
        actor: UserId,
        target: UserId,
        role: RoomRole,
    ) -> Result<(), ChatError> {
        if Self::role(state, actor)? != RoomRole::Owner {
            return Err(ChatError::Forbidden("only the owner may change roles"));
        }
        if role == RoomRole::Owner {
            return Err(ChatError::Invalid {
                field: "role",
                code: "invalid_value",
                message: "role must be admin or member".to_owned(),
            });
        }
        if actor == target {
            return Err(ChatError::Forbidden("the owner's role cannot change"));
        }
        if !state.members.contains_key(&target) {
            return Err(ChatError::NotFound("member"));
        }
        self.shared
            .store
            .update_member_role(state.room.id, target, role)
            .await?;
        state.members.insert(target, role);
        let frame = ServerFrame::MemberUpdated {
            room_id: state.room.id,
            user_id: target,
            role: role.to_string(),
        };
        self.publish(state, &frame, None, None);
        Ok(())
    }

    async fn update(
        &self,
        state: &mut RoomState,
        actor: UserId,
        patch: RoomPatch,
    ) -> Result<Room, ChatError> {
        if !Self::role(state, actor)?.is_admin() || state.room.visibility == Visibility::Direct {
            return Err(ChatError::Forbidden("only room admins may change the room"));
        }
        let room = self
            .shared
            .store
            .update_room(state.room.id, patch, Utc::now())
            .await?
            .ok_or(ChatError::NotFound("room"))?;
        state.room = room.clone();
        let frame = ServerFrame::RoomUpdated {
            room_id: room.id,
            room: RoomView::from(&room),
        };
        self.publish(state, &frame, None, None);
        Ok(room)
    }

    async fn delete_room(&self, state: &mut RoomState, actor: UserId) -> Result<(), ChatError> {
        if Self::role(state, actor)? != RoomRole::Owner {
            return Err(ChatError::Forbidden("only the owner may delete the room"));
        }
        self.shared.store.delete_room(state.room.id).await?;
        let frame = ServerFrame::RoomDeleted {
            room_id: state.room.id,
        };
        self.publish(state, &frame, None, None);
        self.shared.broker.drop_room(state.room.id);
        state.members.clear();
        Ok(())
    }

    async fn catch_up(
        &self,
        state: &mut RoomState,
        viewer: UserId,
        after_seq: i64,
        outbox: &Arc<Outbox>,
    ) -> Result<i64, ChatError> {
        Self::role(state, viewer)?;
        let last_seq = state.room.last_seq;
        let mut from = after_seq.max(0);
        while from < last_seq {
            let page = self
                .shared
                .store
                .list_messages(
                    state.room.id,
                    HistoryQuery {
                        before_seq: Some(last_seq + 1),
                        after_seq: Some(from),
                        limit: 200,
                        viewer: Some(viewer),
                    },
                )
                .await?;
            let Some(last) = page.last() else { break };
            from = last.seq;
            for message in &page {
                let frame = ServerFrame::MessageCreated {
                    room_id: state.room.id,
                    message: MessageView::from(message),
                };
                if outbox.push(frame.to_bytes(), false) != Pushed::Queued {
                    return Err(ChatError::Unavailable(
                        "socket closed during resume".to_owned(),
                    ));
                }
            }
        }
        self.shared.sockets.subscribe_socket(outbox, state.room.id);
        Ok(last_seq)
    }
}
