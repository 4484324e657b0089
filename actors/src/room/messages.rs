//! A room's messages: send (checked at once, stored by group commit),
//! edit, delete, reactions, typing and read markers.

use std::time::Instant;

use chrono::Utc;
use ractor::ActorRef;

use super::actor::{MAX_BATCH, RoomActor, RoomState, answer};
use super::{Reply, RoomMsg};
use crate::broker::Target;
use crate::domain::{ConnectionId, Emoji, MessageBody, MessageId, UserId};
use crate::error::ChatError;
use crate::protocol::{MessageView, ServerFrame};
use crate::store::{Created, Message, NewMessage};
use crate::telemetry;

impl RoomActor {
    /// Checks a send and queues it for the next flush (the first pending
    /// send casts the flush; a full batch is stored at once).
    #[allow(clippy::too_many_arguments)] // one request's fields, passed through
    pub(super) async fn send(
        &self,
        myself: &ActorRef<RoomMsg>,
        state: &mut RoomState,
        author: UserId,
        body: MessageBody,
        reply_to: Option<MessageId>,
        client_id: Option<String>,
        reply: Reply<Message>,
    ) {
        if let Err(e) = self
            .check_send(state, author, reply_to, client_id.as_deref())
            .await
        {
            answer(reply, Err(e));
            return;
        }
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

    pub(super) async fn check_send(
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
    pub(super) async fn flush(&self, state: &mut RoomState) {
        if state.pending.is_empty() {
            return;
        }
        let (batch, replies): (Vec<NewMessage>, Vec<Reply<Message>>) =
            std::mem::take(&mut state.pending).into_iter().unzip();
        metrics::histogram!(telemetry::SEND_BATCH).record(batch.len() as f64);
        match self.shared.group_commit.create_messages(batch).await {
            Ok(created) => {
                for (created, reply) in created.into_iter().zip(replies) {
                    match created {
                        Created::New(message) => {
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
                        Created::Existing(message) => answer(reply, Ok(message)),
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

    pub(super) async fn edit(
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

    pub(super) async fn delete(
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

    pub(super) async fn react(
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
        // Reactions are kept per message; a bounded set of distinct emoji
        // keeps every message's reaction map (and each view of it) small.
        // Adding to an emoji already there is always allowed. The room
        // actor handles one reaction at a time, so the check holds.
        if add
            && !message.reactions.contains_key(emoji.as_str())
            && message.reactions.len() >= self.shared.config.max_reactions_per_message
        {
            return Err(ChatError::Conflict(
                "this message has as many distinct reactions as allowed",
            ));
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

    pub(super) fn typing(&self, state: &mut RoomState, user: UserId) -> Result<(), ChatError> {
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
            Target::Room(state.room.id),
            &frame,
            Some(user),
            Some(user),
            None,
        );
        Ok(())
    }

    pub(super) async fn read(
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
}
