//! Room members (`room_members`): joining, roles, read markers, leaving,
//! and bans (`room_bans`), which also remove the member.

use chrono::{DateTime, Utc};
use parley_actors::domain::{RoomId, RoomRole, UserId};
use parley_actors::store::{Member, StoreResult};

use crate::storage::rows::{MemberRow, parse_col, to_ms};

use super::{Fetch, Run, SqlStore, begin, commit};

impl SqlStore {
    /// Adds a member; `false` when already a member (role unchanged).
    pub(super) async fn add_member(
        &self,
        room_id: RoomId,
        user_id: UserId,
        role: RoomRole,
        at: DateTime<Utc>,
    ) -> StoreResult<bool> {
        sqlx::query(
            "insert into room_members (room_id, user_id, role, joined_at) \
             values ($1, $2, $3, $4) \
             on conflict (room_id, user_id) do nothing",
        )
        .bind(room_id.to_string())
        .bind(user_id.to_string())
        .bind(role.as_str())
        .bind(to_ms(at))
        .changed(&self.pool)
        .await
    }

    /// One membership.
    pub(super) async fn member(
        &self,
        room_id: RoomId,
        user_id: UserId,
    ) -> StoreResult<Option<Member>> {
        sqlx::query_as::<_, MemberRow>(concat!(
            "select ",
            member_columns!(),
            " from room_members \
             where room_id = $1 and user_id = $2"
        ))
        .bind(room_id.to_string())
        .bind(user_id.to_string())
        .optional_into(&self.pool, MemberRow::into_member)
        .await
    }

    /// Every member of a room, oldest first.
    pub(super) async fn list_members(&self, room_id: RoomId) -> StoreResult<Vec<Member>> {
        sqlx::query_as::<_, MemberRow>(concat!(
            "select ",
            member_columns!(),
            " from room_members \
             where room_id = $1 \
             order by joined_at, user_id"
        ))
        .bind(room_id.to_string())
        .all_into(&self.pool, MemberRow::into_member)
        .await
    }

    /// Users who share at least one room with `user_id` (not including them).
    pub(super) async fn users_sharing_rooms(&self, user_id: UserId) -> StoreResult<Vec<UserId>> {
        let rows: Vec<(String,)> = sqlx::query_as(
            "select distinct other.user_id \
             from room_members me \
             join room_members other on other.room_id = me.room_id \
               and other.user_id <> me.user_id \
             where me.user_id = $1 \
             order by other.user_id",
        )
        .bind(user_id.to_string())
        .all(&self.pool)
        .await?;
        rows.iter()
            .map(|(id,)| parse_col("room_members.user_id", id))
            .collect()
    }

    /// Sets a member's role; `false` when not a member.
    pub(super) async fn update_member_role(
        &self,
        room_id: RoomId,
        user_id: UserId,
        role: RoomRole,
    ) -> StoreResult<bool> {
        sqlx::query("update room_members set role = $3 where room_id = $1 and user_id = $2")
            .bind(room_id.to_string())
            .bind(user_id.to_string())
            .bind(role.as_str())
            .changed(&self.pool)
            .await
    }

    /// Moves the read marker forward to `seq` (never back, never past the
    /// room's last seq). Returns the marker now stored, `None` when not a
    /// member.
    pub(super) async fn set_read_marker(
        &self,
        room_id: RoomId,
        user_id: UserId,
        seq: i64,
    ) -> StoreResult<Option<i64>> {
        // max(old, min(seq, last_seq)), spelled with `case`
        // (SQLite has no `greatest`/`least`), in one statement so
        // concurrent calls cannot move the marker back.
        let row: Option<(i64,)> = sqlx::query_as(
            "update room_members set last_read_seq = \
               case when (case when $3 < r.last_seq then $3 else r.last_seq end) \
                         > room_members.last_read_seq \
                    then (case when $3 < r.last_seq then $3 else r.last_seq end) \
                    else room_members.last_read_seq end \
             from rooms r \
             where r.id = room_members.room_id \
               and room_members.room_id = $1 and room_members.user_id = $2 \
             returning room_members.last_read_seq",
        )
        .bind(room_id.to_string())
        .bind(user_id.to_string())
        .bind(seq)
        .optional(&self.pool)
        .await?;
        Ok(row.map(|(seq,)| seq))
    }

    /// Removes a member; `false` when not a member.
    pub(super) async fn remove_member(
        &self,
        room_id: RoomId,
        user_id: UserId,
    ) -> StoreResult<bool> {
        sqlx::query("delete from room_members where room_id = $1 and user_id = $2")
            .bind(room_id.to_string())
            .bind(user_id.to_string())
            .changed(&self.pool)
            .await
    }

    /// Bans a user from a room (removing the membership); `false` when
    /// already banned.
    pub(super) async fn ban_member(
        &self,
        room_id: RoomId,
        user_id: UserId,
        banned_by: UserId,
        at: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let mut tx = begin(&self.pool).await?;
        sqlx::query("delete from room_members where room_id = $1 and user_id = $2")
            .bind(room_id.to_string())
            .bind(user_id.to_string())
            .run(&mut *tx)
            .await?;
        let done = sqlx::query(
            "insert into room_bans (room_id, user_id, banned_by, created_at) \
             values ($1, $2, $3, $4) \
             on conflict (room_id, user_id) do nothing",
        )
        .bind(room_id.to_string())
        .bind(user_id.to_string())
        .bind(banned_by.to_string())
        .bind(to_ms(at))
        .run(&mut *tx)
        .await?;
        commit(tx).await?;
        Ok(done > 0)
    }

    /// Whether the user is banned from the room.
    pub(super) async fn is_banned(&self, room_id: RoomId, user_id: UserId) -> StoreResult<bool> {
        let row: Option<(i32,)> =
            sqlx::query_as("select 1 from room_bans where room_id = $1 and user_id = $2")
                .bind(room_id.to_string())
                .bind(user_id.to_string())
                .optional(&self.pool)
                .await?;
        Ok(row.is_some())
    }

    /// Lifts a ban; `false` when there was none.
    pub(super) async fn unban_member(&self, room_id: RoomId, user_id: UserId) -> StoreResult<bool> {
        sqlx::query("delete from room_bans where room_id = $1 and user_id = $2")
            .bind(room_id.to_string())
            .bind(user_id.to_string())
            .changed(&self.pool)
            .await
    }
}
