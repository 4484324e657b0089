//! Message search: the part both databases share. The full-text query
//! itself is each backend's own `search_rows` (FTS5 in `sqlite.rs`,
//! `tsvector` in `postgres.rs`).

use parley_actors::domain::{RoomId, UserId};
use parley_actors::store::{Message, StoreResult};

use super::SqlStore;

impl SqlStore {
    /// Full-text search over the rooms `user_id` is a member of (or just
    /// `room_id`, if they are a member of it), best match first; deleted
    /// messages and messages by users they blocked are left out.
    pub(super) async fn search_messages(
        &self,
        user_id: UserId,
        query: &str,
        room_id: Option<RoomId>,
        limit: u32,
    ) -> StoreResult<Vec<Message>> {
        if query.trim().is_empty() || limit == 0 {
            return Ok(Vec::new());
        }
        let user_id = user_id.to_string();
        let room_id = room_id.map(|id| id.to_string());
        let rows = self
            .search_rows(&user_id, query, room_id.as_deref(), i64::from(limit))
            .await?;
        self.with_reactions(rows, Some(&user_id)).await
    }
}
