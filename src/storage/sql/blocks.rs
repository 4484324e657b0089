//! Blocks between users: created, listed, loaded at start, lifted.

use chrono::{DateTime, Utc};
use parley_actors::domain::UserId;
use parley_actors::store::{Block, StoreResult};

use crate::storage::rows::{BlockRow, parse_col, to_ms};

use super::{Fetch, Run, SqlStore};

impl SqlStore {
    /// `blocker` blocks `blocked`; `false` when already so.
    pub(super) async fn create_block(
        &self,
        blocker_id: UserId,
        blocked_id: UserId,
        at: DateTime<Utc>,
    ) -> StoreResult<bool> {
        sqlx::query(
            "insert into blocks (blocker_id, blocked_id, created_at) \
             values ($1, $2, $3) \
             on conflict (blocker_id, blocked_id) do nothing",
        )
        .bind(blocker_id.to_string())
        .bind(blocked_id.to_string())
        .bind(to_ms(at))
        .changed(&self.pool)
        .await
    }

    /// Whom `blocker` blocked, newest first.
    pub(super) async fn list_blocks(&self, blocker_id: UserId) -> StoreResult<Vec<Block>> {
        sqlx::query_as::<_, BlockRow>(
            "select blocker_id, blocked_id, created_at from blocks \
             where blocker_id = $1 \
             order by created_at desc, blocked_id desc",
        )
        .bind(blocker_id.to_string())
        .all_into(&self.pool, BlockRow::into_block)
        .await
    }

    /// Every block, to build the in-memory view at start.
    pub(super) async fn all_blocks(&self) -> StoreResult<Vec<(UserId, UserId)>> {
        let rows: Vec<(String, String)> =
            sqlx::query_as("select blocker_id, blocked_id from blocks")
                .all(&self.pool)
                .await?;
        rows.iter()
            .map(|(blocker, blocked)| {
                Ok((
                    parse_col("blocks.blocker_id", blocker)?,
                    parse_col("blocks.blocked_id", blocked)?,
                ))
            })
            .collect()
    }

    /// Lifts a block; `false` when there was none.
    pub(super) async fn delete_block(
        &self,
        blocker_id: UserId,
        blocked_id: UserId,
    ) -> StoreResult<bool> {
        sqlx::query("delete from blocks where blocker_id = $1 and blocked_id = $2")
            .bind(blocker_id.to_string())
            .bind(blocked_id.to_string())
            .changed(&self.pool)
            .await
    }
}
