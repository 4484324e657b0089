//! Rooms: one actor per active room, the single writer of that room's
//! realtime state, and the typed handle every caller speaks to it through.
//!
//! - `actor`: the actor, its state and its dispatch;
//! - `messages`: send (group commit), edit, delete, react, typing, read;
//! - `membership`: join, invite, accept, leave;
//! - `moderation`: kick, ban, roles, room settings, deletion;
//! - `resume`: the replay of a socket's gap after a reconnect;
//! - `registry`: the room supervisor and the lookup of live rooms;
//! - `create`: new rooms and direct rooms (no actor until first use).
//!
//! Callers never build a `RoomMsg` (it is private to this module): [`Rooms::room`] gives a
//! [`RoomHandle`] whose methods do.

mod actor;
mod create;
mod membership;
mod messages;
mod moderation;
mod registry;
mod resume;

use std::sync::Arc;

use ractor::RpcReplyPort;

use crate::domain::{
    ConnectionId, Emoji, InviteId, MessageBody, MessageId, RoomId, RoomRole, UserId,
};
use crate::error::ChatError;
use crate::sockets::Outbox;
use crate::store::{Invite, Message, Room, RoomPatch};

pub use registry::Rooms;
pub(crate) use registry::start_supervisor;
pub use resume::Resumed;

/// Reply port for room requests.
type Reply<T> = RpcReplyPort<Result<T, ChatError>>;

/// What a room actor does.
#[derive(Debug)]
enum RoomMsg {
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

/// A typed handle on one room's actor: each method is one request, asked
/// and awaited (an actor that had stopped is started again first).
#[derive(Debug, Clone, Copy)]
pub struct RoomHandle<'a> {
    rooms: &'a Rooms,
    id: RoomId,
}

impl<'a> RoomHandle<'a> {
    pub(crate) fn new(rooms: &'a Rooms, id: RoomId) -> Self {
        Self { rooms, id }
    }

    /// The room this handle speaks to.
    pub fn id(&self) -> RoomId {
        self.id
    }

    /// Stores and publishes a message by `author`; answers once it is
    /// stored. A retried `client_id` answers the stored message again.
    pub async fn send(
        &self,
        author: UserId,
        body: MessageBody,
        reply_to: Option<MessageId>,
        client_id: Option<String>,
    ) -> Result<Message, ChatError> {
        self.rooms
            .ask(self.id, |reply| RoomMsg::Send {
                author,
                body: body.clone(),
                reply_to,
                client_id: client_id.clone(),
                reply,
            })
            .await
    }

    /// Edits `user`'s own message.
    pub async fn edit(
        &self,
        user: UserId,
        message_id: MessageId,
        body: MessageBody,
    ) -> Result<Message, ChatError> {
        self.rooms
            .ask(self.id, |reply| RoomMsg::Edit {
                user,
                message_id,
                body: body.clone(),
                reply,
            })
            .await
    }

    /// Deletes a message (its author, or a room admin+).
    pub async fn delete(&self, user: UserId, message_id: MessageId) -> Result<Message, ChatError> {
        self.rooms
            .ask(self.id, |reply| RoomMsg::Delete {
                user,
                message_id,
                reply,
            })
            .await
    }

    /// Adds (`add`) or removes `user`'s reaction; whether anything changed.
    pub async fn react(
        &self,
        user: UserId,
        message_id: MessageId,
        emoji: Emoji,
        add: bool,
    ) -> Result<bool, ChatError> {
        self.rooms
            .ask(self.id, |reply| RoomMsg::React {
                user,
                message_id,
                emoji: emoji.clone(),
                add,
                reply,
            })
            .await
    }

    /// `user` is typing (coalesced, not stored).
    pub async fn typing(&self, user: UserId) -> Result<(), ChatError> {
        self.rooms
            .ask(self.id, |reply| RoomMsg::Typing { user, reply })
            .await
    }

    /// Moves `user`'s read marker (never backwards); the marker now. `conn`
    /// is the socket that asked, which is not told of its own receipt.
    pub async fn read(
        &self,
        user: UserId,
        seq: i64,
        conn: Option<ConnectionId>,
    ) -> Result<i64, ChatError> {
        self.rooms
            .ask(self.id, |reply| RoomMsg::Read {
                user,
                seq,
                conn,
                reply,
            })
            .await
    }

    /// `user` joins this public room; their role in it.
    pub async fn join(&self, user: UserId) -> Result<RoomRole, ChatError> {
        self.rooms
            .ask(self.id, |reply| RoomMsg::Join { user, reply })
            .await
    }

    /// `user` accepts an invite to this room; their role in it.
    pub async fn accept_invite(
        &self,
        user: UserId,
        invite_id: InviteId,
    ) -> Result<RoomRole, ChatError> {
        self.rooms
            .ask(self.id, |reply| RoomMsg::AcceptInvite {
                user,
                invite_id,
                reply,
            })
            .await
    }

    /// `inviter` invites `invitee`.
    pub async fn invite(&self, inviter: UserId, invitee: UserId) -> Result<Invite, ChatError> {
        self.rooms
            .ask(self.id, |reply| RoomMsg::Invite {
                inviter,
                invitee,
                reply,
            })
            .await
    }

    /// `user` leaves the room.
    pub async fn leave(&self, user: UserId) -> Result<(), ChatError> {
        self.rooms
            .ask(self.id, |reply| RoomMsg::Leave { user, reply })
            .await
    }

    /// `actor` removes `target` (admin+ over lower roles).
    pub async fn kick(&self, actor: UserId, target: UserId) -> Result<(), ChatError> {
        self.moderate(actor, target, false).await
    }

    /// `actor` bans `target`, a member or not (admin+ over lower roles).
    pub async fn ban(&self, actor: UserId, target: UserId) -> Result<(), ChatError> {
        self.moderate(actor, target, true).await
    }

    async fn moderate(&self, actor: UserId, target: UserId, ban: bool) -> Result<(), ChatError> {
        self.rooms
            .ask(self.id, |reply| RoomMsg::Kick {
                actor,
                target,
                ban,
                reply,
            })
            .await
    }

    /// `actor` lifts `target`'s ban.
    pub async fn unban(&self, actor: UserId, target: UserId) -> Result<(), ChatError> {
        self.rooms
            .ask(self.id, |reply| RoomMsg::Unban {
                actor,
                target,
                reply,
            })
            .await
    }

    /// The owner sets `target`'s role (admin or member).
    pub async fn set_role(
        &self,
        actor: UserId,
        target: UserId,
        role: RoomRole,
    ) -> Result<(), ChatError> {
        self.rooms
            .ask(self.id, |reply| RoomMsg::SetRole {
                actor,
                target,
                role,
                reply,
            })
            .await
    }

    /// An admin+ renames or re-topics the room; the room now.
    pub async fn update(&self, actor: UserId, patch: RoomPatch) -> Result<Room, ChatError> {
        self.rooms
            .ask(self.id, |reply| RoomMsg::Update {
                actor,
                patch: patch.clone(),
                reply,
            })
            .await
    }

    /// The owner deletes the room; its actor stops.
    pub async fn delete_room(&self, actor: UserId) -> Result<(), ChatError> {
        self.rooms
            .ask(self.id, |reply| RoomMsg::DeleteRoom { actor, reply })
            .await
    }

    /// The room as its actor knows it, with `user`'s role in it.
    pub async fn snapshot(&self, user: UserId) -> Result<(Room, Option<RoomRole>), ChatError> {
        self.rooms
            .ask(self.id, |reply| RoomMsg::Snapshot { user, reply })
            .await
    }

    /// The last step of a resume (see the `resume` module).
    async fn catch_up(
        &self,
        viewer: UserId,
        after_seq: i64,
        outbox: &Arc<Outbox>,
    ) -> Result<i64, ChatError> {
        self.rooms
            .ask(self.id, |reply| RoomMsg::CatchUp {
                viewer,
                after_seq,
                outbox: Arc::clone(outbox),
                reply,
            })
            .await
    }
}
