//! Rooms: created with their owner's membership, direct rooms once per
//! pair, the public directory, a user's rooms with unread counts, renames
//! and deletion (members, invites and messages go with the room).

use chrono::{DateTime, Utc};
use parley_actors::domain::{RoomId, UserId};
use parley_actors::store::{Membership, NewRoom, Room, RoomPatch, StoreResult};

use crate::storage::rows::{MembershipRow, RoomRow, dm_key, name_pattern, parse_col, to_ms};

use super::{Fetch, Run, SqlStore, begin, commit};

impl SqlStore {
    /// Inserts a room and its owner's membership, in one transaction.
    pub(super) async fn create_room(&self, new: NewRoom) -> StoreResult<Room> {
        let at = to_ms(new.created_at);
        let mut tx = begin(&self.pool).await?;
        let row = sqlx::query_as::<_, RoomRow>(concat!(
            "insert into rooms (id, name, topic, visibility, created_by, created_at, \
               updated_at) \
             values ($1, $2, $3, $4, $5, $6, $6) \
             returning ",
            room_columns!()
        ))
        .bind(new.id.to_string())
        .bind(new.name.as_str())
        .bind(new.topic.as_ref().map(|t| t.as_str()))
        .bind(new.visibility.as_str())
        .bind(new.owner.to_string())
        .bind(at)
        .one(&mut *tx)
        .await?;
        sqlx::query(
            "insert into room_members (room_id, user_id, role, joined_at) \
             values ($1, $2, 'owner', $3)",
        )
        .bind(new.id.to_string())
        .bind(new.owner.to_string())
        .bind(at)
        .run(&mut *tx)
        .await?;
        commit(tx).await?;
        row.into_room()
    }

    /// The direct room between `a` and `b` (either order), created with id
    /// `id` and both as members (role `member`) when missing. `true` when
    /// created now.
    pub(super) async fn get_or_create_direct_room(
        &self,
        id: RoomId,
        a: UserId,
        b: UserId,
        at: DateTime<Utc>,
    ) -> StoreResult<(Room, bool)> {
        let key = dm_key(a, b);
        let at = to_ms(at);
        // The insert comes first so the transaction writes from
        // the start. Of two concurrent calls, the second waits on
        // the unique dm_key and then inserts nothing.
        let mut tx = begin(&self.pool).await?;
        let inserted = sqlx::query_as::<_, RoomRow>(concat!(
            "insert into rooms (id, name, topic, visibility, created_by, dm_key, \
               created_at, updated_at) \
             values ($1, '', null, 'direct', $2, $3, $4, $4) \
             on conflict (dm_key) do nothing \
             returning ",
            room_columns!()
        ))
        .bind(id.to_string())
        .bind(a.to_string())
        .bind(&key)
        .bind(at)
        .optional(&mut *tx)
        .await?;
        if let Some(row) = inserted {
            sqlx::query(
                "insert into room_members (room_id, user_id, role, joined_at) \
                 values ($1, $2, 'member', $4), ($1, $3, 'member', $4) \
                 on conflict (room_id, user_id) do nothing",
            )
            .bind(id.to_string())
            .bind(a.to_string())
            .bind(b.to_string())
            .bind(at)
            .run(&mut *tx)
            .await?;
            commit(tx).await?;
            return Ok((row.into_room()?, true));
        }
        let row = sqlx::query_as::<_, RoomRow>(concat!(
            "select ",
            room_columns!(),
            " from rooms where dm_key = $1"
        ))
        .bind(&key)
        .one(&mut *tx)
        .await?;
        commit(tx).await?;
        Ok((row.into_room()?, false))
    }

    /// A room by id.
    pub(super) async fn room_by_id(&self, id: RoomId) -> StoreResult<Option<Room>> {
        sqlx::query_as::<_, RoomRow>(concat!(
            "select ",
            room_columns!(),
            " from rooms where id = $1"
        ))
        .bind(id.to_string())
        .optional_into(&self.pool, RoomRow::into_room)
        .await
    }

    /// Public rooms whose name starts with or contains `q`
    /// (case-insensitive), newest first, after the cursor room.
    pub(super) async fn list_public_rooms(
        &self,
        q: Option<&str>,
        after: Option<RoomId>,
        limit: u32,
    ) -> StoreResult<Vec<Room>> {
        // Newest first is id order (UUIDv7); the page starts
        // strictly after the cursor id.
        sqlx::query_as::<_, RoomRow>(concat!(
            "select ",
            room_columns!(),
            " from rooms \
             where visibility = 'public' \
               and ($1 is null or lower(name) like $1 escape '\\') \
               and ($2 is null or id < $2) \
             order by id desc \
             limit $3"
        ))
        .bind(name_pattern(q))
        .bind(after.map(|id| id.to_string()))
        .bind(i64::from(limit))
        .all_into(&self.pool, RoomRow::into_room)
        .await
    }

    /// Every room the user is a member of, with role and unread count.
    pub(super) async fn list_memberships(&self, user_id: UserId) -> StoreResult<Vec<Membership>> {
        // Each room with its unread messages counted among its
        // newest UNREAD_WINDOW only, so the cost stays bounded
        // however far behind a member is. Messages with no
        // author (deleted account) count; `b.blocked_id = null`
        // never matches.
        sqlx::query_as::<_, MembershipRow>(
            "select r.id, r.name, r.topic, r.visibility, r.created_by, r.created_at, \
               r.updated_at, r.last_seq, rm.role, rm.last_read_seq, \
               (select count(*) from messages m \
                where m.room_id = rm.room_id \
                  and m.seq > case when rm.last_read_seq > r.last_seq - $2 \
                                   then rm.last_read_seq \
                                   else r.last_seq - $2 end \
                  and not m.deleted \
                  and (m.author_id is null or m.author_id <> rm.user_id) \
                  and not exists (select 1 from blocks b \
                                  where b.blocker_id = rm.user_id \
                                    and b.blocked_id = m.author_id)) as unread_count \
             from room_members rm \
             join rooms r on r.id = rm.room_id \
             where rm.user_id = $1 \
             order by r.id",
        )
        .bind(user_id.to_string())
        .bind(parley_actors::store::UNREAD_WINDOW)
        .all_into(&self.pool, MembershipRow::into_membership)
        .await
    }

    /// The last seq of every room the user is a member of: a cheap second
    /// look after a socket subscribed (see `Realtime::connect`).
    pub(super) async fn member_last_seqs(
        &self,
        user_id: UserId,
    ) -> StoreResult<Vec<(RoomId, i64)>> {
        let rows = sqlx::query_as::<_, (String, i64)>(
            "select r.id, r.last_seq from room_members rm \
             join rooms r on r.id = rm.room_id \
             where rm.user_id = $1",
        )
        .bind(user_id.to_string())
        .all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|(id, last_seq)| Ok((parse_col("rooms.id", &id)?, last_seq)))
            .collect()
    }

    /// Applies a patch; `None` when the room does not exist.
    pub(super) async fn update_room(
        &self,
        id: RoomId,
        patch: RoomPatch,
        at: DateTime<Utc>,
    ) -> StoreResult<Option<Room>> {
        // `coalesce` keeps the name for a `None`; `$3` says
        // whether the topic changes at all (it may become null).
        let topic = patch.topic.as_ref().map(|t| t.as_ref().map(|t| t.as_str()));
        sqlx::query_as::<_, RoomRow>(concat!(
            "update rooms set name = coalesce($2, name), \
               topic = case when $3 then $4 else topic end, \
               updated_at = $5 \
             where id = $1 \
             returning ",
            room_columns!()
        ))
        .bind(id.to_string())
        .bind(patch.name.as_ref().map(|n| n.as_str()))
        .bind(topic.is_some())
        .bind(topic.flatten())
        .bind(to_ms(at))
        .optional_into(&self.pool, RoomRow::into_room)
        .await
    }

    /// Deletes a room with its members, invites, messages and reactions.
    pub(super) async fn delete_room(&self, id: RoomId) -> StoreResult<bool> {
        // Members, bans, invites and messages go by cascade, and
        // reactions with the messages.
        sqlx::query("delete from rooms where id = $1")
            .bind(id.to_string())
            .changed(&self.pool)
            .await
    }
}
