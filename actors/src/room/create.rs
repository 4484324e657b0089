//! New rooms: created in the store and announced to their first members;
//! the room's actor starts on its first request.

use chrono::Utc;

use super::Rooms;
use crate::broker::Target;
use crate::domain::{RoomId, RoomName, RoomRole, RoomTopic, UserId, Visibility};
use crate::error::ChatError;
use crate::presence::PresenceMsg;
use crate::protocol::ServerFrame;
use crate::sockets::Delivery;
use crate::store::{NewRoom, Room};

impl Rooms {
    /// Creates a room owned by `owner`; the owner's sockets receive it at once.
    pub async fn create(
        &self,
        owner: UserId,
        name: RoomName,
        topic: Option<RoomTopic>,
        visibility: Visibility,
    ) -> Result<Room, ChatError> {
        let room = self
            .shared
            .store
            .create_room(NewRoom {
                id: RoomId::new(),
                name,
                topic,
                visibility,
                owner,
                created_at: Utc::now(),
            })
            .await?;
        self.shared.broker.subscribe_user(owner, room.id);
        self.tell_joined(owner, room.id);
        self.publish_to_users(
            vec![owner],
            &ServerFrame::MemberJoined {
                room_id: room.id,
                user_id: owner,
                role: Some(RoomRole::Owner.to_string()),
            },
        );
        Ok(room)
    }

    /// The direct room between `me` and `other`, created on first use.
    /// Refused when either blocked the other.
    pub async fn open_direct(&self, me: UserId, other: UserId) -> Result<Room, ChatError> {
        if me == other {
            return Err(ChatError::Forbidden(
                "you cannot open a direct room with yourself",
            ));
        }
        if self.shared.store.user_by_id(other).await?.is_none() {
            return Err(ChatError::NotFound("user"));
        }
        if self.shared.blocks.either(me, other) {
            return Err(ChatError::Forbidden("you cannot message this user"));
        }
        let (room, created) = self
            .shared
            .store
            .get_or_create_direct_room(RoomId::new(), me, other, Utc::now())
            .await?;
        if created {
            for user in [me, other] {
                self.shared.broker.subscribe_user(user, room.id);
                self.tell_joined(user, room.id);
            }
            for user in [me, other] {
                self.publish_to_users(
                    vec![me, other],
                    &ServerFrame::MemberJoined {
                        room_id: room.id,
                        user_id: user,
                        role: Some(RoomRole::Member.to_string()),
                    },
                );
            }
        }
        Ok(room)
    }

    fn tell_joined(&self, user: UserId, room: RoomId) {
        if let Err(e) = self.presence.route(user, PresenceMsg::Joined(room)) {
            tracing::debug!(%user, error = %e, "presence not told of a new room");
        }
    }

    fn publish_to_users(&self, users: Vec<UserId>, frame: &ServerFrame) {
        self.shared
            .broker
            .publish(Target::Users(users), Delivery::frame(frame));
    }
}
