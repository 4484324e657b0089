//! Who is in a room: joining a public room, invites and their
//! acceptance, leaving. Every change subscribes or unsubscribes the user's
//! sockets through the broker.

use chrono::Utc;

use super::actor::{RoomActor, RoomState};
use crate::broker::Target;
use crate::domain::{InviteId, InviteStatus, RoomRole, UserId, Visibility};
use crate::error::ChatError;
use crate::protocol::{InviteView, ServerFrame};
use crate::store::{Invite, NewInvite, StoreError};

impl RoomActor {
    /// Refuses a new member once the room has `max_room_members` (the
    /// members map is kept in the actor, so one join at a time is checked).
    fn has_room(&self, state: &RoomState) -> Result<(), ChatError> {
        if state.members.len() >= self.shared.config.max_room_members {
            return Err(ChatError::Conflict(
                "the room has as many members as allowed",
            ));
        }
        Ok(())
    }

    pub(super) async fn admit(
        &self,
        state: &mut RoomState,
        user: UserId,
        role: RoomRole,
    ) -> Result<RoomRole, ChatError> {
        if let Some(existing) = state.members.get(&user) {
            return Ok(*existing);
        }
        self.has_room(state)?;
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

    pub(super) async fn join(
        &self,
        state: &mut RoomState,
        user: UserId,
    ) -> Result<RoomRole, ChatError> {
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

    pub(super) async fn accept_invite(
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
        // Checked before the invite is marked accepted.
        if !state.members.contains_key(&user) {
            self.has_room(state)?;
        }
        if !store
            .respond_invite(invite_id, InviteStatus::Accepted, Utc::now())
            .await?
        {
            return Err(ChatError::NotFound("invite"));
        }
        self.admit(state, user, RoomRole::Member).await
    }

    pub(super) async fn invite(
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
                StoreError::Conflict { .. } => ChatError::Conflict("an invite is already pending"),
                other => other.into(),
            })?;
        let frame = ServerFrame::Invite {
            invite: InviteView::new(&invite, Some(state.room.name.clone())),
        };
        self.publish_to(
            Target::Users(vec![invitee]),
            &frame,
            Some(inviter),
            None,
            None,
        );
        Ok(invite)
    }

    pub(super) async fn remove(&self, state: &mut RoomState, user: UserId, reason: &str) {
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

    pub(super) async fn leave(&self, state: &mut RoomState, user: UserId) -> Result<(), ChatError> {
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
}
