//! Messages: the group commit that stores them (gapless per-room seqs,
//! idempotent client ids, multi-row inserts in chunks of
//! [`INSERT_CHUNK`]), the history, edits and tombstones.
//!
//! Message seqs come from `rooms.last_seq`: storing messages increments it
//! first, in the same transaction. That update takes the room's row lock
//! (PostgreSQL) or the database write lock (SQLite) before anything is
//! read, so concurrent senders queue up and each sees the previous one's
//! seq: no gaps, no duplicates. Sends go through `self.writer` (SQLite's
//! dedicated writer connection; PostgreSQL's pool).

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, Utc};
use parley_actors::domain::{MessageBody, MessageId, RoomId, UserId};
use parley_actors::store::{Created, HistoryQuery, Message, NewMessage, StoreError, StoreResult};

use crate::storage::batch::{
    INSERT_CHUNK, PreparedMessages, Written, insert_messages_sql, values_sql,
};
use crate::storage::rows::{MessageRow, to_ms};

use super::{Db, Fetch, Run, SqlStore, begin, commit, rollback};

impl SqlStore {
    /// [`ChatStore::create_message`](parley_actors::store::ChatStore::create_message) for several messages of one room in one
    /// transaction (group commit): they get consecutive seqs in the order
    /// given, and the answer has one entry per message, in that order. A
    /// `client_id` repeated within the batch is stored once; the later
    /// entries get `Existing`.
    pub(super) async fn create_messages(
        &self,
        batch: Vec<NewMessage>,
    ) -> StoreResult<Vec<Created<Message>>> {
        let mut prepared = Self::prepare_messages(batch)?;
        // A few rounds at most: a round ends early only when
        // one of these client ids is already stored (a retried
        // send, or a concurrent writer on another node); the
        // next round stores the rest.
        for _ in 0..4 {
            if prepared.fresh().is_empty() {
                break;
            }
            let mut tx = begin(&self.writer).await?;
            let written = Self::write_groups(&mut tx, &[&prepared]).await?.pop();
            match written.unwrap_or(Written::Rows(Vec::new())) {
                Written::Rows(rows) => {
                    commit(tx).await?;
                    prepared.stored(rows)?;
                    break;
                }
                Written::Raced(raced) => {
                    rollback(tx).await?;
                    self.found_raced(&mut prepared, raced).await?;
                }
            }
        }
        prepared.finish()
    }

    /// [`ChatStore::create_messages`](parley_actors::store::ChatStore::create_messages) for several rooms at once, in as few
    /// transactions as the store can (group commit across rooms): one
    /// answer per group, in order. A group that cannot be stored fails
    /// alone.
    pub(super) async fn create_message_groups(
        &self,
        groups: Vec<Vec<NewMessage>>,
    ) -> Vec<StoreResult<Vec<Created<Message>>>> {
        if groups.len() <= 1 {
            let mut out = Vec::new();
            for group in groups {
                out.push(self.create_messages(group).await);
            }
            return out;
        }
        // One transaction for every group; if any part of it
        // fails (or races another writer), each group is stored
        // on its own instead, so one room's trouble is only
        // that room's.
        let mut prepared = Vec::with_capacity(groups.len());
        for group in groups {
            prepared.push(Self::prepare_messages(group));
        }
        let together: StoreResult<Option<Vec<Vec<MessageRow>>>> = async {
            let ready: Vec<&PreparedMessages> =
                prepared.iter().filter_map(|p| p.as_ref().ok()).collect();
            let mut tx = begin(&self.writer).await?;
            let mut written = Self::write_groups(&mut tx, &ready).await?.into_iter();
            let mut all = Vec::with_capacity(prepared.len());
            for p in &prepared {
                if p.is_err() {
                    all.push(Vec::new());
                    continue;
                }
                let Some(Written::Rows(rows)) = written.next() else {
                    rollback(tx).await?;
                    return Ok(None);
                };
                all.push(rows);
            }
            commit(tx).await?;
            Ok(Some(all))
        }
        .await;
        match together {
            Ok(Some(all)) => prepared
                .into_iter()
                .zip(all)
                .map(|(p, rows)| {
                    let mut p = p?;
                    if !p.fresh().is_empty() {
                        p.stored(rows)?;
                    }
                    p.finish()
                })
                .collect(),
            Ok(None) | Err(_) => {
                // Prepared again on its own: a race may have
                // answered some of it since.
                let mut out = Vec::with_capacity(prepared.len());
                for p in prepared {
                    out.push(match p {
                        Ok(p) => self.create_messages(p.batch).await,
                        Err(e) => Err(e),
                    });
                }
                out
            }
        }
    }

    /// The first step of storing messages: marks client ids
    /// repeated within the batch. Retried sends (a client id
    /// already stored) are found by the insert itself, which
    /// skips them ([`Written::Raced`]); the common case thus
    /// costs no lookup.
    fn prepare_messages(batch: Vec<NewMessage>) -> StoreResult<PreparedMessages> {
        let mut prepared = PreparedMessages::new(batch)?;
        prepared.mark_duplicates();
        Ok(prepared)
    }

    /// Stores the fresh messages of several rooms inside `tx` in
    /// three statements whatever their number: one update takes
    /// every room's seqs, inserts write the messages (in chunks
    /// of [`INSERT_CHUNK`]), one update moves each author's read
    /// marker. Per group: the rows written, or (storing nothing;
    /// the caller rolls back) which client ids were already
    /// stored.
    async fn write_groups(
        tx: &mut sqlx::Transaction<'static, Db>,
        groups: &[&PreparedMessages],
    ) -> StoreResult<Vec<Written>> {
        let fresh: Vec<Vec<usize>> = groups.iter().map(|p| p.fresh()).collect();
        // Each room once, with its count summed over its groups.
        let mut counts: Vec<(&str, i64)> = Vec::new();
        let mut slot: HashMap<&str, usize> = HashMap::new();
        for (p, f) in groups.iter().zip(&fresh) {
            if f.is_empty() {
                continue;
            }
            let n = i64::try_from(f.len())
                .map_err(|_| StoreError::Other("batch too large".to_owned()))?;
            let at = *slot.entry(p.room.as_str()).or_insert_with(|| {
                counts.push((p.room.as_str(), 0));
                counts.len() - 1
            });
            counts[at].1 += n;
        }
        if counts.is_empty() {
            return Ok(groups.iter().map(|_| Written::Rows(Vec::new())).collect());
        }
        // Writing first takes the rooms' row locks (PostgreSQL)
        // or the write lock (SQLite): writers queue here.
        let sql = format!(
            "update rooms set last_seq = last_seq + v.column2 \
             from (values {}) as v where rooms.id = v.column1 \
             returning id, last_seq",
            values_sql(counts.len(), 2)
        );
        let mut update = sqlx::query_as::<_, (String, i64)>(sqlx::AssertSqlSafe(sql))
            .persistent(counts.len() <= 4);
        for &(room, n) in &counts {
            update = update.bind(room).bind(n);
        }
        let lasts: HashMap<String, i64> = update.all(&mut **tx).await?.into_iter().collect();
        let mut next: HashMap<&str, i64> = HashMap::new();
        for &(room, n) in &counts {
            let Some(last) = lasts.get(room) else {
                return Err(StoreError::Other(format!("no room with id {room}")));
            };
            next.insert(room, last - n + 1);
        }
        // Seqs in group order within each room.
        let mut planned: Vec<(&NewMessage, &str, i64)> = Vec::new();
        let mut read_up_to: HashMap<(&str, UserId), i64> = HashMap::new();
        for (p, f) in groups.iter().zip(&fresh) {
            let room = p.room.as_str();
            for &i in f {
                let Some(seq) = next.get_mut(room) else {
                    return Err(StoreError::Other(format!("no room with id {room}")));
                };
                let new = &p.batch[i];
                planned.push((new, room, *seq));
                read_up_to.insert((room, new.author_id), *seq);
                *seq += 1;
            }
        }
        let mut rows: Vec<MessageRow> = Vec::with_capacity(planned.len());
        for chunk in planned.chunks(INSERT_CHUNK) {
            let sql = insert_messages_sql(chunk.len());
            let mut insert = sqlx::query_as::<_, MessageRow>(sqlx::AssertSqlSafe(sql))
                .persistent(chunk.len() <= 4);
            for &(new, room, seq) in chunk {
                insert = insert
                    .bind(new.id.to_string())
                    .bind(room)
                    .bind(seq)
                    .bind(new.author_id.to_string())
                    .bind(new.body.as_str())
                    .bind(new.reply_to.map(|id| id.to_string()))
                    .bind(new.client_id.as_deref())
                    .bind(to_ms(new.created_at));
            }
            rows.extend(insert.all(&mut **tx).await?);
        }
        let mut by_id: HashMap<String, MessageRow> =
            rows.into_iter().map(|row| (row.id.clone(), row)).collect();
        if by_id.len() < planned.len() {
            // Some client ids were already stored (a retried
            // send, or another writer meanwhile): the caller
            // rolls back and answers those with what is stored.
            let written: HashSet<&str> = by_id.keys().map(String::as_str).collect();
            return Ok(groups
                .iter()
                .zip(&fresh)
                .map(|(p, f)| {
                    let raced: Vec<usize> = f
                        .iter()
                        .copied()
                        .filter(|&i| !written.contains(p.batch[i].id.to_string().as_str()))
                        .collect();
                    if raced.is_empty() {
                        Written::Rows(Vec::new())
                    } else {
                        Written::Raced(raced)
                    }
                })
                .collect());
        }
        // Each author has read what they wrote (no-op for a
        // non-member); only ever moves a marker forward.
        let markers: Vec<((&str, UserId), i64)> = read_up_to.into_iter().collect();
        let sql = format!(
            "update room_members set last_read_seq = v.column3 \
             from (values {}) as v \
             where room_members.room_id = v.column1 \
               and room_members.user_id = v.column2 \
               and room_members.last_read_seq < v.column3",
            values_sql(markers.len(), 3)
        );
        let mut update = sqlx::query(sqlx::AssertSqlSafe(sql)).persistent(markers.len() <= 4);
        for ((room, author), seq) in markers {
            update = update.bind(room).bind(author.to_string()).bind(seq);
        }
        update.run(&mut **tx).await?;
        let mut out = Vec::with_capacity(groups.len());
        for (p, f) in groups.iter().zip(&fresh) {
            let mut mine = Vec::with_capacity(f.len());
            for &i in f {
                let id = p.batch[i].id.to_string();
                let row = by_id.remove(&id).ok_or_else(|| {
                    StoreError::Other("a stored message was not returned".to_owned())
                })?;
                mine.push(row);
            }
            out.push(Written::Rows(mine));
        }
        Ok(out)
    }

    /// After a race: the messages another writer stored.
    async fn found_raced(
        &self,
        prepared: &mut PreparedMessages,
        raced: Vec<usize>,
    ) -> StoreResult<()> {
        for i in raced {
            let new = &prepared.batch[i];
            let author = new.author_id.to_string();
            let client_id = new.client_id.as_deref().unwrap_or_default();
            let row = self
                .message_by_client_id(&prepared.room, &author, client_id)
                .await?
                .ok_or_else(|| StoreError::Other("raced message went missing".to_owned()))?;
            prepared.out[i] = Some(Created::Existing(self.one_with_reactions(row).await?));
        }
        Ok(())
    }

    /// A message by id.
    pub(super) async fn message_by_id(&self, id: MessageId) -> StoreResult<Option<Message>> {
        let row = sqlx::query_as::<_, MessageRow>(concat!(
            "select ",
            message_columns!(),
            " from messages where id = $1"
        ))
        .bind(id.to_string())
        .optional(&self.pool)
        .await?;
        match row {
            Some(row) => Ok(Some(self.one_with_reactions(row).await?)),
            None => Ok(None),
        }
    }

    /// The message an author already sent in a room under a
    /// client id.
    async fn message_by_client_id(
        &self,
        room_id: &str,
        author_id: &str,
        client_id: &str,
    ) -> StoreResult<Option<MessageRow>> {
        sqlx::query_as::<_, MessageRow>(concat!(
            "select ",
            message_columns!(),
            " from messages \
             where room_id = $1 and author_id = $2 and client_id = $3"
        ))
        .bind(room_id)
        .bind(author_id)
        .bind(client_id)
        .optional(&self.pool)
        .await
    }

    /// A page of history: newest first, or oldest first when `after_seq`
    /// is given. Deleted messages are included (as tombstones).
    pub(super) async fn list_messages(
        &self,
        room_id: RoomId,
        query: HistoryQuery,
    ) -> StoreResult<Vec<Message>> {
        // Both bounds are always bound (open ends as the extreme
        // values), so the (room_id, seq) index serves the range
        // and the order. Blocked authors are filtered before the
        // limit applies.
        let sql = if query.after_seq.is_some() {
            concat!(
                "select ",
                m_message_columns!(),
                " from messages m \
                 where m.room_id = $1 and m.seq < $2 and m.seq > $3 \
                   and ($4 is null or not exists ( \
                     select 1 from blocks b \
                     where b.blocker_id = $4 and b.blocked_id = m.author_id)) \
                 order by m.seq \
                 limit $5"
            )
        } else {
            concat!(
                "select ",
                m_message_columns!(),
                " from messages m \
                 where m.room_id = $1 and m.seq < $2 and m.seq > $3 \
                   and ($4 is null or not exists ( \
                     select 1 from blocks b \
                     where b.blocker_id = $4 and b.blocked_id = m.author_id)) \
                 order by m.seq desc \
                 limit $5"
            )
        };
        let viewer = query.viewer.map(|id| id.to_string());
        let rows = sqlx::query_as::<_, MessageRow>(sql)
            .bind(room_id.to_string())
            .bind(query.before_seq.unwrap_or(i64::MAX))
            .bind(query.after_seq.unwrap_or(i64::MIN))
            .bind(viewer.as_deref())
            .bind(i64::from(query.limit))
            .all(&self.pool)
            .await?;
        self.with_reactions(rows, viewer.as_deref()).await
    }

    /// Replaces a body and sets `edited_at`; `None` when missing or deleted.
    pub(super) async fn update_message_body(
        &self,
        id: MessageId,
        body: MessageBody,
        at: DateTime<Utc>,
    ) -> StoreResult<Option<Message>> {
        let row = sqlx::query_as::<_, MessageRow>(concat!(
            "update messages set body = $2, edited_at = $3 \
             where id = $1 and not deleted \
             returning ",
            message_columns!()
        ))
        .bind(id.to_string())
        .bind(body.as_str())
        .bind(to_ms(at))
        .optional(&self.pool)
        .await?;
        match row {
            Some(row) => Ok(Some(self.one_with_reactions(row).await?)),
            None => Ok(None),
        }
    }

    /// Soft-deletes: the body is erased, reactions removed, `deleted` set;
    /// the seq stays. `None` when missing or already deleted.
    pub(super) async fn delete_message(
        &self,
        id: MessageId,
        _at: DateTime<Utc>,
    ) -> StoreResult<Option<Message>> {
        // A tombstone: the seq stays so history has no holes.
        // `edited_at` is left alone (it records edits, and there
        // is no deleted_at column).
        let mut tx = begin(&self.pool).await?;
        let row = sqlx::query_as::<_, MessageRow>(concat!(
            "update messages set body = '', deleted = true \
             where id = $1 and not deleted \
             returning ",
            message_columns!()
        ))
        .bind(id.to_string())
        .optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        sqlx::query("delete from reactions where message_id = $1")
            .bind(id.to_string())
            .run(&mut *tx)
            .await?;
        commit(tx).await?;
        Ok(Some(row.into_message(BTreeMap::new())?))
    }
}
