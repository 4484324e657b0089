//! Reactions: added and removed one at a time, counted per message and
//! emoji when messages are read (without the reactions of users the reader
//! blocked).

use chrono::{DateTime, Utc};
use parley_actors::domain::{Emoji, MessageId, UserId};
use parley_actors::store::{Message, StoreError, StoreResult};

use crate::storage::batch::{attach_reactions, reactions_sql};
use crate::storage::rows::{MessageRow, to_ms};

use super::{Fetch, Run, SqlStore};

impl SqlStore {
    /// Adds a reaction; `false` when this user already reacted so.
    pub(super) async fn add_reaction(
        &self,
        message_id: MessageId,
        user_id: UserId,
        emoji: &Emoji,
        at: DateTime<Utc>,
    ) -> StoreResult<bool> {
        // Deleted messages take no reactions, also when the
        // delete races this insert. (SQLite needs the `where` to
        // parse `insert … select … on conflict`.)
        sqlx::query(
            "insert into reactions (message_id, user_id, emoji, created_at) \
             select $1, $2, $3, $4 \
             where exists (select 1 from messages where id = $1 and not deleted) \
             on conflict (message_id, user_id, emoji) do nothing",
        )
        .bind(message_id.to_string())
        .bind(user_id.to_string())
        .bind(emoji.as_str())
        .bind(to_ms(at))
        .changed(&self.pool)
        .await
    }

    /// Adds reaction counts to message rows with one query. With a
    /// viewer, reactions by users they blocked are not counted.
    pub(super) async fn with_reactions(
        &self,
        rows: Vec<MessageRow>,
        viewer: Option<&str>,
    ) -> StoreResult<Vec<Message>> {
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let sql = reactions_sql(rows.len());
        // One statement per list length: not worth a place in
        // the prepared-statement cache.
        let mut query = sqlx::query_as::<_, (String, String, i64)>(sqlx::AssertSqlSafe(sql))
            .persistent(false)
            .bind(viewer);
        for row in &rows {
            query = query.bind(row.id.as_str());
        }
        let counts = query.all(&self.pool).await?;
        attach_reactions(rows, counts)
    }

    /// [`Self::with_reactions`] for one row.
    pub(super) async fn one_with_reactions(&self, row: MessageRow) -> StoreResult<Message> {
        self.with_reactions(vec![row], None)
            .await?
            .pop()
            .ok_or_else(|| StoreError::Other("message row went missing".to_owned()))
    }

    /// Removes a reaction; `false` when there was none.
    pub(super) async fn remove_reaction(
        &self,
        message_id: MessageId,
        user_id: UserId,
        emoji: &Emoji,
    ) -> StoreResult<bool> {
        sqlx::query(
            "delete from reactions \
             where message_id = $1 and user_id = $2 and emoji = $3",
        )
        .bind(message_id.to_string())
        .bind(user_id.to_string())
        .bind(emoji.as_str())
        .changed(&self.pool)
        .await
    }
}
