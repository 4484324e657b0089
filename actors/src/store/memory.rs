//! An in-memory [`Store`] for tests of the actors: no database, every call
//! answers at once, so an actor test takes milliseconds.
//!
//! It keeps what the actor core reads and writes (users, rooms, members,
//! bans, invites, messages, reactions, read markers, blocks) with the
//! semantics the trait documents. The account records the core never
//! touches (login failures, sessions, refresh tokens, the audit log) are
//! not kept: those methods answer [`StoreError::Other`], so a test that
//! strays there fails loudly instead of passing on made-up data.
//!
//! Built only for tests (`cfg(test)` or the `test-util` feature): it is a
//! test double, and the server never needs it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{
    Block, ChatStore, Created, HistoryQuery, Invite, Member, Membership, Message, NewInvite,
    NewMessage, NewRoom, Report, Room, RoomPatch, StoreError, StoreResult, UNREAD_WINDOW, User,
};
use crate::domain::{
    Emoji, InviteId, InviteStatus, MessageBody, MessageId, RoomId, RoomRole, UserId, Visibility,
};
use crate::settings::UserSettings;

mod accounts;

/// Everything, behind one lock (tests are small; contention is not a concern).
#[derive(Debug, Default)]
struct Data {
    users: HashMap<UserId, User>,
    rooms: HashMap<RoomId, Room>,
    /// Direct rooms by their two users, smaller id first.
    direct: HashMap<(UserId, UserId), RoomId>,
    members: HashMap<RoomId, BTreeMap<UserId, Member>>,
    bans: HashSet<(RoomId, UserId)>,
    invites: HashMap<InviteId, Invite>,
    messages: HashMap<MessageId, Message>,
    /// Message ids per room, by seq.
    by_seq: HashMap<RoomId, BTreeMap<i64, MessageId>>,
    /// Reactions: message → emoji → users.
    reactions: HashMap<MessageId, BTreeMap<String, HashSet<UserId>>>,
    blocks: BTreeMap<(UserId, UserId), DateTime<Utc>>,
    settings: HashMap<UserId, UserSettings>,
    reports: Vec<Report>,
}

/// The in-memory store. Cheap to create; share it as `Arc<dyn Store>`.
#[derive(Debug, Default)]
pub struct MemoryStore {
    data: Mutex<Data>,
    /// Makes the next `message_by_id` panic (a room actor failing mid-request).
    panic_next_lookup: AtomicBool,
}

fn unkept(what: &str) -> StoreError {
    StoreError::Other(format!("the in-memory store keeps no {what}"))
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn data(&self) -> MutexGuard<'_, Data> {
        self.data.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Makes the next [`ChatStore::message_by_id`] panic, so that the actor
    /// calling it fails (tests of supervision).
    pub fn panic_on_next_lookup(&self) {
        self.panic_next_lookup.store(true, Ordering::SeqCst);
    }

    /// Stores `n` messages by `author` in `room` at once (a backlog for
    /// resume tests); returns the last seq.
    pub fn seed_messages(&self, room: RoomId, author: UserId, n: usize) -> i64 {
        let mut data = self.data();
        let mut last = 0;
        for i in 0..n {
            let body = MessageBody::parse(&format!("seed {i}")).expect("a valid body");
            let new = NewMessage {
                id: MessageId::new(),
                room_id: room,
                author_id: author,
                body,
                reply_to: None,
                client_id: None,
                created_at: Utc::now(),
            };
            if let Ok(Created::New(m)) = data.insert_message(new) {
                last = m.seq;
            }
        }
        last
    }
}

impl Data {
    fn insert_message(&mut self, new: NewMessage) -> StoreResult<Created<Message>> {
        let room = self
            .rooms
            .get_mut(&new.room_id)
            .ok_or_else(|| StoreError::Other("no such room".to_owned()))?;
        if let Some(cid) = &new.client_id {
            let earlier = self.by_seq.get(&new.room_id).and_then(|seqs| {
                seqs.values().map(|id| &self.messages[id]).find(|m| {
                    m.author_id == Some(new.author_id) && m.client_id.as_deref() == Some(cid)
                })
            });
            if let Some(m) = earlier {
                return Ok(Created::Existing(m.clone()));
            }
        }
        room.last_seq += 1;
        let message = Message {
            id: new.id,
            room_id: new.room_id,
            seq: room.last_seq,
            author_id: Some(new.author_id),
            body: new.body.as_str().to_owned(),
            reply_to: new.reply_to,
            client_id: new.client_id,
            created_at: new.created_at,
            edited_at: None,
            deleted: false,
            reactions: BTreeMap::new(),
        };
        self.by_seq
            .entry(new.room_id)
            .or_default()
            .insert(message.seq, message.id);
        self.messages.insert(message.id, message.clone());
        if let Some(member) = self
            .members
            .get_mut(&new.room_id)
            .and_then(|m| m.get_mut(&new.author_id))
        {
            member.last_read_seq = member.last_read_seq.max(message.seq);
        }
        Ok(Created::New(message))
    }

    /// A message as `viewer` sees it (reactions by users they blocked not
    /// counted).
    fn view(&self, message: &Message, viewer: Option<UserId>) -> Message {
        let mut out = message.clone();
        if let Some(reactions) = self.reactions.get(&message.id) {
            for (emoji, users) in reactions {
                let n = users
                    .iter()
                    .filter(|u| viewer.is_none_or(|v| !self.blocks.contains_key(&(v, **u))))
                    .count();
                if n > 0 {
                    out.reactions.insert(emoji.clone(), n as i64);
                }
            }
        }
        out
    }

    fn membership(&self, room: &Room, member: &Member) -> Membership {
        let unread = (room.last_seq - member.last_read_seq).clamp(0, UNREAD_WINDOW);
        Membership {
            room: room.clone(),
            role: member.role,
            last_read_seq: member.last_read_seq,
            unread_count: unread,
        }
    }

    fn add_member(
        &mut self,
        room: RoomId,
        user: UserId,
        role: RoomRole,
        at: DateTime<Utc>,
    ) -> bool {
        let members = self.members.entry(room).or_default();
        if members.contains_key(&user) {
            return false;
        }
        members.insert(
            user,
            Member {
                room_id: room,
                user_id: user,
                role,
                joined_at: at,
                last_read_seq: 0,
            },
        );
        true
    }
}

#[async_trait]
impl ChatStore for MemoryStore {
    async fn create_room(&self, new: NewRoom) -> StoreResult<Room> {
        let room = Room {
            id: new.id,
            name: new.name.as_str().to_owned(),
            topic: new.topic.map(|t| t.as_str().to_owned()),
            visibility: new.visibility,
            created_by: Some(new.owner),
            created_at: new.created_at,
            updated_at: new.created_at,
            last_seq: 0,
        };
        let mut data = self.data();
        data.rooms.insert(room.id, room.clone());
        data.add_member(room.id, new.owner, RoomRole::Owner, new.created_at);
        Ok(room)
    }

    async fn get_or_create_direct_room(
        &self,
        id: RoomId,
        a: UserId,
        b: UserId,
        at: DateTime<Utc>,
    ) -> StoreResult<(Room, bool)> {
        let key = if a.as_uuid() < b.as_uuid() {
            (a, b)
        } else {
            (b, a)
        };
        let mut data = self.data();
        if let Some(room) = data.direct.get(&key).and_then(|r| data.rooms.get(r)) {
            return Ok((room.clone(), false));
        }
        let room = Room {
            id,
            name: "direct".to_owned(),
            topic: None,
            visibility: Visibility::Direct,
            created_by: Some(a),
            created_at: at,
            updated_at: at,
            last_seq: 0,
        };
        data.rooms.insert(id, room.clone());
        data.direct.insert(key, id);
        data.add_member(id, a, RoomRole::Member, at);
        data.add_member(id, b, RoomRole::Member, at);
        Ok((room, true))
    }

    async fn room_by_id(&self, id: RoomId) -> StoreResult<Option<Room>> {
        Ok(self.data().rooms.get(&id).cloned())
    }

    async fn list_public_rooms(
        &self,
        q: Option<&str>,
        after: Option<RoomId>,
        limit: u32,
    ) -> StoreResult<Vec<Room>> {
        let data = self.data();
        let q = q.map(str::to_lowercase);
        let mut rooms: Vec<Room> = data
            .rooms
            .values()
            .filter(|r| r.visibility == Visibility::Public)
            .filter(|r| q.as_ref().is_none_or(|q| r.name.to_lowercase().contains(q)))
            .cloned()
            .collect();
        rooms.sort_by_key(|r| std::cmp::Reverse((r.created_at, r.id.as_uuid())));
        if let Some(after) = after
            && let Some(pos) = rooms.iter().position(|r| r.id == after)
        {
            rooms.drain(..=pos);
        }
        rooms.truncate(limit as usize);
        Ok(rooms)
    }

    async fn list_memberships(&self, user_id: UserId) -> StoreResult<Vec<Membership>> {
        let data = self.data();
        Ok(data
            .members
            .iter()
            .filter_map(|(room, members)| {
                let member = members.get(&user_id)?;
                Some(data.membership(data.rooms.get(room)?, member))
            })
            .collect())
    }

    async fn member_last_seqs(&self, user_id: UserId) -> StoreResult<Vec<(RoomId, i64)>> {
        let data = self.data();
        Ok(data
            .members
            .iter()
            .filter(|(_, members)| members.contains_key(&user_id))
            .filter_map(|(room, _)| Some((*room, data.rooms.get(room)?.last_seq)))
            .collect())
    }

    async fn update_room(
        &self,
        id: RoomId,
        patch: RoomPatch,
        at: DateTime<Utc>,
    ) -> StoreResult<Option<Room>> {
        let mut data = self.data();
        let Some(room) = data.rooms.get_mut(&id) else {
            return Ok(None);
        };
        if let Some(name) = patch.name {
            room.name = name.as_str().to_owned();
        }
        if let Some(topic) = patch.topic {
            room.topic = topic.map(|t| t.as_str().to_owned());
        }
        room.updated_at = at;
        Ok(Some(room.clone()))
    }

    async fn delete_room(&self, id: RoomId) -> StoreResult<bool> {
        let mut data = self.data();
        data.members.remove(&id);
        data.direct.retain(|_, r| *r != id);
        if let Some(seqs) = data.by_seq.remove(&id) {
            for message in seqs.values() {
                data.messages.remove(message);
                data.reactions.remove(message);
            }
        }
        Ok(data.rooms.remove(&id).is_some())
    }

    async fn add_member(
        &self,
        room_id: RoomId,
        user_id: UserId,
        role: RoomRole,
        at: DateTime<Utc>,
    ) -> StoreResult<bool> {
        Ok(self.data().add_member(room_id, user_id, role, at))
    }

    async fn member(&self, room_id: RoomId, user_id: UserId) -> StoreResult<Option<Member>> {
        Ok(self
            .data()
            .members
            .get(&room_id)
            .and_then(|m| m.get(&user_id))
            .cloned())
    }

    async fn list_members(&self, room_id: RoomId) -> StoreResult<Vec<Member>> {
        Ok(self
            .data()
            .members
            .get(&room_id)
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default())
    }

    async fn users_sharing_rooms(&self, user_id: UserId) -> StoreResult<Vec<UserId>> {
        let data = self.data();
        let mut users: HashSet<UserId> = HashSet::new();
        for members in data.members.values() {
            if members.contains_key(&user_id) {
                users.extend(members.keys().filter(|u| **u != user_id));
            }
        }
        Ok(users.into_iter().collect())
    }

    async fn update_member_role(
        &self,
        room_id: RoomId,
        user_id: UserId,
        role: RoomRole,
    ) -> StoreResult<bool> {
        let mut data = self.data();
        match data
            .members
            .get_mut(&room_id)
            .and_then(|m| m.get_mut(&user_id))
        {
            Some(member) => {
                member.role = role;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    async fn set_read_marker(
        &self,
        room_id: RoomId,
        user_id: UserId,
        seq: i64,
    ) -> StoreResult<Option<i64>> {
        let mut data = self.data();
        let last_seq = data.rooms.get(&room_id).map_or(0, |r| r.last_seq);
        Ok(data
            .members
            .get_mut(&room_id)
            .and_then(|m| m.get_mut(&user_id))
            .map(|member| {
                member.last_read_seq = member.last_read_seq.max(seq.min(last_seq));
                member.last_read_seq
            }))
    }

    async fn remove_member(&self, room_id: RoomId, user_id: UserId) -> StoreResult<bool> {
        Ok(self
            .data()
            .members
            .get_mut(&room_id)
            .is_some_and(|m| m.remove(&user_id).is_some()))
    }

    async fn ban_member(
        &self,
        room_id: RoomId,
        user_id: UserId,
        _banned_by: UserId,
        _at: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let mut data = self.data();
        if let Some(members) = data.members.get_mut(&room_id) {
            members.remove(&user_id);
        }
        Ok(data.bans.insert((room_id, user_id)))
    }

    async fn is_banned(&self, room_id: RoomId, user_id: UserId) -> StoreResult<bool> {
        Ok(self.data().bans.contains(&(room_id, user_id)))
    }

    async fn unban_member(&self, room_id: RoomId, user_id: UserId) -> StoreResult<bool> {
        Ok(self.data().bans.remove(&(room_id, user_id)))
    }

    async fn create_invite(&self, new: NewInvite) -> StoreResult<Invite> {
        let mut data = self.data();
        let pending = data.invites.values().any(|i| {
            i.room_id == new.room_id
                && i.invitee_id == new.invitee_id
                && i.status == InviteStatus::Pending
        });
        if pending {
            return Err(StoreError::Conflict { field: "invite" });
        }
        let invite = Invite {
            id: new.id,
            room_id: new.room_id,
            inviter_id: new.inviter_id,
            invitee_id: new.invitee_id,
            status: InviteStatus::Pending,
            created_at: new.created_at,
            responded_at: None,
        };
        data.invites.insert(invite.id, invite.clone());
        Ok(invite)
    }

    async fn invite_by_id(&self, id: InviteId) -> StoreResult<Option<Invite>> {
        Ok(self.data().invites.get(&id).cloned())
    }

    async fn list_pending_invites(&self, invitee_id: UserId) -> StoreResult<Vec<Invite>> {
        Ok(self
            .data()
            .invites
            .values()
            .filter(|i| i.invitee_id == invitee_id && i.status == InviteStatus::Pending)
            .cloned()
            .collect())
    }

    async fn respond_invite(
        &self,
        id: InviteId,
        status: InviteStatus,
        at: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let mut data = self.data();
        match data.invites.get_mut(&id) {
            Some(invite) if invite.status == InviteStatus::Pending => {
                invite.status = status;
                invite.responded_at = Some(at);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn create_messages(&self, batch: Vec<NewMessage>) -> StoreResult<Vec<Created<Message>>> {
        let mut data = self.data();
        batch.into_iter().map(|m| data.insert_message(m)).collect()
    }

    async fn message_by_id(&self, id: MessageId) -> StoreResult<Option<Message>> {
        if self.panic_next_lookup.swap(false, Ordering::SeqCst) {
            panic!("in-memory store: a lookup fails on purpose");
        }
        let data = self.data();
        Ok(data.messages.get(&id).map(|m| data.view(m, None)))
    }

    async fn list_messages(
        &self,
        room_id: RoomId,
        query: HistoryQuery,
    ) -> StoreResult<Vec<Message>> {
        let data = self.data();
        let Some(seqs) = data.by_seq.get(&room_id) else {
            return Ok(Vec::new());
        };
        let low = query.after_seq.map_or(i64::MIN, |s| s.saturating_add(1));
        let high = query.before_seq.map_or(i64::MAX, |s| s.saturating_sub(1));
        if low > high {
            return Ok(Vec::new());
        }
        let visible = |id: &MessageId| {
            let m = &data.messages[id];
            let hidden = query.viewer.is_some_and(|v| {
                m.author_id
                    .is_some_and(|a| data.blocks.contains_key(&(v, a)))
            });
            (!hidden).then(|| data.view(m, query.viewer))
        };
        let range = seqs.range(low..=high).map(|(_, id)| id);
        let page: Vec<Message> = if query.after_seq.is_some() {
            range
                .filter_map(visible)
                .take(query.limit as usize)
                .collect()
        } else {
            range
                .rev()
                .filter_map(visible)
                .take(query.limit as usize)
                .collect()
        };
        Ok(page)
    }

    async fn search_messages(
        &self,
        user_id: UserId,
        query: &str,
        room_id: Option<RoomId>,
        limit: u32,
    ) -> StoreResult<Vec<Message>> {
        let data = self.data();
        let query = query.to_lowercase();
        let mut found: Vec<Message> = data
            .messages
            .values()
            .filter(|m| room_id.is_none_or(|r| m.room_id == r))
            .filter(|m| {
                data.members
                    .get(&m.room_id)
                    .is_some_and(|members| members.contains_key(&user_id))
            })
            .filter(|m| !m.deleted && m.body.to_lowercase().contains(&query))
            .map(|m| data.view(m, Some(user_id)))
            .collect();
        found.sort_by_key(|m| std::cmp::Reverse(m.created_at));
        found.truncate(limit as usize);
        Ok(found)
    }

    async fn update_message_body(
        &self,
        id: MessageId,
        body: MessageBody,
        at: DateTime<Utc>,
    ) -> StoreResult<Option<Message>> {
        let mut data = self.data();
        let Some(message) = data.messages.get_mut(&id).filter(|m| !m.deleted) else {
            return Ok(None);
        };
        message.body = body.as_str().to_owned();
        message.edited_at = Some(at);
        let message = message.clone();
        Ok(Some(data.view(&message, None)))
    }

    async fn add_reaction(
        &self,
        message_id: MessageId,
        user_id: UserId,
        emoji: &Emoji,
        _at: DateTime<Utc>,
    ) -> StoreResult<bool> {
        Ok(self
            .data()
            .reactions
            .entry(message_id)
            .or_default()
            .entry(emoji.as_str().to_owned())
            .or_default()
            .insert(user_id))
    }

    async fn remove_reaction(
        &self,
        message_id: MessageId,
        user_id: UserId,
        emoji: &Emoji,
    ) -> StoreResult<bool> {
        Ok(self
            .data()
            .reactions
            .get_mut(&message_id)
            .and_then(|r| r.get_mut(emoji.as_str()))
            .is_some_and(|users| users.remove(&user_id)))
    }

    async fn delete_message(
        &self,
        id: MessageId,
        _at: DateTime<Utc>,
    ) -> StoreResult<Option<Message>> {
        let mut data = self.data();
        let Some(message) = data.messages.get_mut(&id).filter(|m| !m.deleted) else {
            return Ok(None);
        };
        message.deleted = true;
        message.body = String::new();
        let message = message.clone();
        data.reactions.remove(&id);
        Ok(Some(message))
    }

    async fn create_block(
        &self,
        blocker_id: UserId,
        blocked_id: UserId,
        at: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let mut data = self.data();
        if data.blocks.contains_key(&(blocker_id, blocked_id)) {
            return Ok(false);
        }
        data.blocks.insert((blocker_id, blocked_id), at);
        Ok(true)
    }

    async fn list_blocks(&self, blocker_id: UserId) -> StoreResult<Vec<Block>> {
        Ok(self
            .data()
            .blocks
            .iter()
            .filter(|((blocker, _), _)| *blocker == blocker_id)
            .map(|(&(blocker_id, blocked_id), &created_at)| Block {
                blocker_id,
                blocked_id,
                created_at,
            })
            .collect())
    }

    async fn all_blocks(&self) -> StoreResult<Vec<(UserId, UserId)>> {
        Ok(self.data().blocks.keys().copied().collect())
    }

    async fn delete_block(&self, blocker_id: UserId, blocked_id: UserId) -> StoreResult<bool> {
        Ok(self
            .data()
            .blocks
            .remove(&(blocker_id, blocked_id))
            .is_some())
    }
}
