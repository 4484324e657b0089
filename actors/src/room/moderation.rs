//! Moderation and room settings: kick, ban and unban, roles, rename and
//! re-topic, and deleting the room.

use chrono::Utc;

use super::actor::{RoomActor, RoomState};
use crate::domain::{RoomRole, UserId, Visibility};
use crate::error::ChatError;
use crate::protocol::{RoomView, ServerFrame};
use crate::store::{Room, RoomPatch};

impl RoomActor {
    pub(super) fn moderate(
        state: &RoomState,
        actor: UserId,
        target: UserId,
    ) -> Result<(), ChatError> {
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

    pub(super) async fn kick(
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

    pub(super) async fn unban(
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

    pub(super) async fn set_role(
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

    pub(super) async fn update(
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

    pub(super) async fn delete_room(
        &self,
        state: &mut RoomState,
        actor: UserId,
    ) -> Result<(), ChatError> {
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
}
