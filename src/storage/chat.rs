//! The chat half of the shared SQL: `impl_chat_store!` implements
//! [`ChatStore`](parley_actors::store::ChatStore) (rooms, members, invites,
//! messages, reactions, read markers, blocks) for a backend, the way
//! `impl_store!` in `storage/mod.rs` implements the account half.
//!
//! The statements follow the same rules: `$1, $2, …` placeholders and syntax
//! both databases know (`returning`, `on conflict … do nothing`,
//! `update … from`, `count(…)`, `case`). Full-text search is the exception:
//! SQLite has FTS5 and PostgreSQL has `tsvector`, so each backend provides an
//! inherent `search_rows` method that this macro calls.
//!
//! Message seqs come from `rooms.last_seq`: storing a message increments it
//! first, in the same transaction. That update takes the room's row lock
//! (PostgreSQL) or the database write lock (SQLite) before anything is read,
//! so concurrent senders queue up and each sees the previous one's seq — no
//! gaps, no duplicates.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap};

use parley_actors::domain::UserId;
use parley_actors::store::{
    Block, Created, Invite, Member, Membership, Message, NewMessage, Room, StoreError, StoreResult,
};

use super::{from_ms, from_ms_opt, parse_col};

/// The room columns [`RoomRow`] reads, for `select` and `returning`.
macro_rules! room_columns {
    () => {
        "id, name, topic, visibility, created_by, created_at, updated_at, last_seq"
    };
}

/// The member columns [`MemberRow`] reads.
macro_rules! member_columns {
    () => {
        "room_id, user_id, role, joined_at, last_read_seq"
    };
}

/// The invite columns [`InviteRow`] reads.
macro_rules! invite_columns {
    () => {
        "id, room_id, inviter_id, invitee_id, status, created_at, responded_at"
    };
}

/// The message columns [`MessageRow`] reads, without a table alias.
macro_rules! message_columns {
    () => {
        "id, room_id, seq, author_id, body, reply_to, client_id, created_at, edited_at, deleted"
    };
}

/// [`message_columns!`] for a query where `messages` is aliased `m`.
macro_rules! m_message_columns {
    () => {
        "m.id, m.room_id, m.seq, m.author_id, m.body, m.reply_to, m.client_id, m.created_at, \
         m.edited_at, m.deleted"
    };
}

/// A `rooms` row as both databases return it.
#[derive(Debug, sqlx::FromRow)]
pub(super) struct RoomRow {
    id: String,
    name: String,
    topic: Option<String>,
    visibility: String,
    created_by: Option<String>,
    created_at: i64,
    updated_at: i64,
    last_seq: i64,
}

impl RoomRow {
    pub(super) fn into_room(self) -> StoreResult<Room> {
        Ok(Room {
            id: parse_col("rooms.id", &self.id)?,
            name: self.name,
            topic: self.topic,
            visibility: parse_col("rooms.visibility", &self.visibility)?,
            created_by: self
                .created_by
                .as_deref()
                .map(|id| parse_col("rooms.created_by", id))
                .transpose()?,
            created_at: from_ms(self.created_at)?,
            updated_at: from_ms(self.updated_at)?,
            last_seq: self.last_seq,
        })
    }
}

/// A room joined with the caller's membership and unread count.
#[derive(Debug, sqlx::FromRow)]
pub(super) struct MembershipRow {
    #[sqlx(flatten)]
    room: RoomRow,
    role: String,
    last_read_seq: i64,
    unread_count: i64,
}

impl MembershipRow {
    pub(super) fn into_membership(self) -> StoreResult<Membership> {
        Ok(Membership {
            role: parse_col("room_members.role", &self.role)?,
            last_read_seq: self.last_read_seq,
            unread_count: self.unread_count,
            room: self.room.into_room()?,
        })
    }
}

/// A `room_members` row.
#[derive(Debug, sqlx::FromRow)]
pub(super) struct MemberRow {
    room_id: String,
    user_id: String,
    role: String,
    joined_at: i64,
    last_read_seq: i64,
}

impl MemberRow {
    pub(super) fn into_member(self) -> StoreResult<Member> {
        Ok(Member {
            room_id: parse_col("room_members.room_id", &self.room_id)?,
            user_id: parse_col("room_members.user_id", &self.user_id)?,
            role: parse_col("room_members.role", &self.role)?,
            joined_at: from_ms(self.joined_at)?,
            last_read_seq: self.last_read_seq,
        })
    }
}

/// An `invites` row.
#[derive(Debug, sqlx::FromRow)]
pub(super) struct InviteRow {
    id: String,
    room_id: String,
    inviter_id: String,
    invitee_id: String,
    status: String,
    created_at: i64,
    responded_at: Option<i64>,
}

impl InviteRow {
    pub(super) fn into_invite(self) -> StoreResult<Invite> {
        Ok(Invite {
            id: parse_col("invites.id", &self.id)?,
            room_id: parse_col("invites.room_id", &self.room_id)?,
            inviter_id: parse_col("invites.inviter_id", &self.inviter_id)?,
            invitee_id: parse_col("invites.invitee_id", &self.invitee_id)?,
            status: parse_col("invites.status", &self.status)?,
            created_at: from_ms(self.created_at)?,
            responded_at: from_ms_opt(self.responded_at)?,
        })
    }
}

/// A `messages` row, without its reactions.
#[derive(Debug, sqlx::FromRow)]
pub(super) struct MessageRow {
    pub(super) id: String,
    room_id: String,
    seq: i64,
    author_id: Option<String>,
    body: String,
    reply_to: Option<String>,
    client_id: Option<String>,
    created_at: i64,
    edited_at: Option<i64>,
    deleted: bool,
}

impl MessageRow {
    pub(super) fn into_message(self, reactions: BTreeMap<String, i64>) -> StoreResult<Message> {
        Ok(Message {
            id: parse_col("messages.id", &self.id)?,
            room_id: parse_col("messages.room_id", &self.room_id)?,
            seq: self.seq,
            author_id: self
                .author_id
                .as_deref()
                .map(|id| parse_col("messages.author_id", id))
                .transpose()?,
            body: self.body,
            reply_to: self
                .reply_to
                .as_deref()
                .map(|id| parse_col("messages.reply_to", id))
                .transpose()?,
            client_id: self.client_id,
            created_at: from_ms(self.created_at)?,
            edited_at: from_ms_opt(self.edited_at)?,
            deleted: self.deleted,
            reactions,
        })
    }
}

/// A `blocks` row.
#[derive(Debug, sqlx::FromRow)]
pub(super) struct BlockRow {
    blocker_id: String,
    blocked_id: String,
    created_at: i64,
}

impl BlockRow {
    pub(super) fn into_block(self) -> StoreResult<Block> {
        Ok(Block {
            blocker_id: parse_col("blocks.blocker_id", &self.blocker_id)?,
            blocked_id: parse_col("blocks.blocked_id", &self.blocked_id)?,
            created_at: from_ms(self.created_at)?,
        })
    }
}

/// Pairs message rows with `(message_id, emoji, count)` rows, keeping the
/// messages' order.
pub(super) fn attach_reactions(
    rows: Vec<MessageRow>,
    counts: Vec<(String, String, i64)>,
) -> StoreResult<Vec<Message>> {
    let mut by_message: BTreeMap<String, BTreeMap<String, i64>> = BTreeMap::new();
    for (message_id, emoji, count) in counts {
        by_message
            .entry(message_id)
            .or_default()
            .insert(emoji, count);
    }
    rows.into_iter()
        .map(|row| {
            let reactions = by_message.remove(&row.id).unwrap_or_default();
            row.into_message(reactions)
        })
        .collect()
}

/// The statement counting reactions for `n` messages (`$2 … $n+1`), leaving
/// out reactions by users the viewer (`$1`, may be null) blocked.
///
/// The list is built from numbers only, so the SQL holds no user input.
pub(super) fn reactions_sql(n: usize) -> String {
    let placeholders = (2..n + 2)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "select r.message_id, r.emoji, count(*) from reactions r \
         where r.message_id in ({placeholders}) \
           and ($1 is null or not exists ( \
             select 1 from blocks b where b.blocker_id = $1 and b.blocked_id = r.user_id)) \
         group by r.message_id, r.emoji"
    )
}

/// Messages of one room on their way into the store: the answer so far
/// for each (retried sends are answered before anything is written).
#[derive(Debug)]
pub(super) struct PreparedMessages {
    pub(super) room: String,
    pub(super) batch: Vec<NewMessage>,
    pub(super) out: Vec<Option<Created<Message>>>,
    /// For a client id repeated within the batch: its first use.
    duplicate_of: Vec<Option<usize>>,
}

/// What writing one room's messages in a transaction came to.
#[derive(Debug)]
pub(super) enum Written {
    Rows(Vec<MessageRow>),
    /// These client ids were already stored (a retried send, or another
    /// writer meanwhile); nothing was kept.
    Raced(Vec<usize>),
}

impl PreparedMessages {
    pub(super) fn new(batch: Vec<NewMessage>) -> StoreResult<Self> {
        let room_id = batch.first().map(|m| m.room_id);
        if batch.iter().any(|m| Some(m.room_id) != room_id) {
            return Err(StoreError::Other(
                "a batch of messages must be for one room".to_owned(),
            ));
        }
        Ok(Self {
            room: room_id.map(|r| r.to_string()).unwrap_or_default(),
            out: vec![None; batch.len()],
            duplicate_of: vec![None; batch.len()],
            batch,
        })
    }

    /// Marks later uses of a client id within the batch (not already
    /// answered) as duplicates of the first.
    pub(super) fn mark_duplicates(&mut self) {
        let mut first_of: HashMap<(UserId, &str), usize> = HashMap::new();
        for (i, new) in self.batch.iter().enumerate() {
            if let Some(client_id) = new.client_id.as_deref()
                && self.out[i].is_none()
            {
                match first_of.entry((new.author_id, client_id)) {
                    Entry::Occupied(e) => self.duplicate_of[i] = Some(*e.get()),
                    Entry::Vacant(e) => {
                        e.insert(i);
                    }
                }
            }
        }
    }

    /// The messages still to be written, in order.
    pub(super) fn fresh(&self) -> Vec<usize> {
        (0..self.batch.len())
            .filter(|&i| self.out[i].is_none() && self.duplicate_of[i].is_none())
            .collect()
    }

    /// The rows written for [`Self::fresh`] (RETURNING does not promise
    /// their order).
    pub(super) fn stored(&mut self, rows: Vec<MessageRow>) -> StoreResult<()> {
        let mut by_id: HashMap<String, MessageRow> =
            rows.into_iter().map(|row| (row.id.clone(), row)).collect();
        for i in self.fresh() {
            let row = by_id
                .remove(&self.batch[i].id.to_string())
                .ok_or_else(|| StoreError::Other("inserted message went missing".to_owned()))?;
            self.out[i] = Some(Created::New(row.into_message(BTreeMap::new())?));
        }
        Ok(())
    }

    /// One answer per message, in order.
    pub(super) fn finish(mut self) -> StoreResult<Vec<Created<Message>>> {
        for i in 0..self.batch.len() {
            if let Some(first) = self.duplicate_of[i] {
                let message = self.out[first].clone().map(Created::into_inner);
                self.out[i] = message.map(Created::Existing);
            }
        }
        self.out
            .into_iter()
            .map(|m| {
                m.ok_or_else(|| {
                    StoreError::Other("messages kept racing a concurrent writer".to_owned())
                })
            })
            .collect()
    }
}

/// `($1, $2), ($3, $4), …`: `rows` tuples of `cols` numbered placeholders,
/// for a `values` list (its columns are `column1`, `column2`, … in both
/// SQLite and PostgreSQL).
pub(super) fn values_sql(rows: usize, cols: usize) -> String {
    let mut sql = String::with_capacity(rows * cols * 5);
    for r in 0..rows {
        if r > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for c in 0..cols {
            if c > 0 {
                sql.push_str(", ");
            }
            sql.push('$');
            sql.push_str(&(r * cols + c + 1).to_string());
        }
        sql.push(')');
    }
    sql
}

/// `insert into messages` of `n` rows (8 placeholders each), skipping
/// client ids already stored, returning every column of what it wrote.
pub(super) fn insert_messages_sql(n: usize) -> String {
    format!(
        "insert into messages (id, room_id, seq, author_id, body, reply_to, client_id, \
           created_at) values {} \
         on conflict (room_id, author_id, client_id) do nothing returning {}",
        values_sql(n, 8),
        message_columns!()
    )
}

/// Rows per `insert into messages` statement when storing many at once.
pub(super) const INSERT_CHUNK: usize = 128;

/// The key that makes a direct room unique: both ids, smaller first.
pub(super) fn dm_key(a: UserId, b: UserId) -> String {
    let (a, b) = (a.to_string(), b.to_string());
    if a <= b {
        format!("{a}:{b}")
    } else {
        format!("{b}:{a}")
    }
}

/// A `like` pattern (escape character `\`) matching names that contain `q`,
/// lowercased like `lower(name)`. `None` when there is nothing to match.
///
/// SQLite's `lower` folds ASCII letters only, so there names with non-ASCII
/// capitals match only a query spelled with the same capitals lowercased by
/// Rust, i.e. not at all; PostgreSQL folds all of Unicode.
pub(super) fn name_pattern(q: Option<&str>) -> Option<String> {
    let q = q.map(str::trim).filter(|q| !q.is_empty())?;
    let mut pattern = String::with_capacity(q.len() + 2);
    pattern.push('%');
    for c in q.to_lowercase().chars() {
        if matches!(c, '\\' | '%' | '_') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    Some(pattern)
}

/// Implements [`ChatStore`](parley_actors::store::ChatStore) for a backend
/// type with a `pool: sqlx::Pool<_>` field and an inherent
///
/// ```ignore
/// async fn search_rows(&self, user_id: &str, query: &str, room_id: Option<&str>, limit: i64)
///     -> StoreResult<Vec<MessageRow>>
/// ```
///
/// Everything else runs unchanged on SQLite and PostgreSQL. Methods are in
/// the trait's order.
macro_rules! impl_chat_store {
    ($store:ty, $db:ty) => {
        // An anonymous const gives the `use`s below a scope of their own.
        const _: () = {
            use std::collections::BTreeMap;

            use chrono::{DateTime, Utc};
            use parley_actors::domain::{
                Emoji, InviteId, InviteStatus, MessageBody, MessageId, RoomId, RoomRole, UserId,
            };
            use parley_actors::store::{
                Block, ChatStore, Created, HistoryQuery, Invite, Member, Membership, Message,
                NewInvite, NewMessage, NewRoom, Room, RoomPatch, StoreError, StoreResult,
            };

            use $crate::storage::chat::{
                BlockRow, InviteRow, MemberRow, MembershipRow, MessageRow, RoomRow, Written,
            };
            use $crate::storage::{convert_all, db_err, parse_col, to_ms};

            impl $store {
                /// The first step of storing messages: marks client ids
                /// repeated within the batch. Retried sends (a client id
                /// already stored) are found by the insert itself, which
                /// skips them ([`Written::Raced`]); the common case thus
                /// costs no lookup.
                fn prepare_messages(
                    batch: Vec<NewMessage>,
                ) -> StoreResult<$crate::storage::chat::PreparedMessages> {
                    let mut prepared = $crate::storage::chat::PreparedMessages::new(batch)?;
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
                    tx: &mut sqlx::Transaction<'static, $db>,
                    groups: &[&$crate::storage::chat::PreparedMessages],
                ) -> StoreResult<Vec<$crate::storage::chat::Written>> {
                    use std::collections::{HashMap, HashSet};
                    use $crate::storage::chat::{INSERT_CHUNK, Written, values_sql};
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
                    let lasts: HashMap<String, i64> =
                        update.fetch_all(&mut **tx).await.map_err(db_err)?.into_iter().collect();
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
                        let sql = $crate::storage::chat::insert_messages_sql(chunk.len());
                        let mut insert =
                            sqlx::query_as::<_, MessageRow>(sqlx::AssertSqlSafe(sql))
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
                        rows.extend(insert.fetch_all(&mut **tx).await.map_err(db_err)?);
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
                                    .filter(|&i| {
                                        !written.contains(p.batch[i].id.to_string().as_str())
                                    })
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
                    update.execute(&mut **tx).await.map_err(db_err)?;
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
                    prepared: &mut $crate::storage::chat::PreparedMessages,
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

                /// Adds reaction counts to message rows with one query. With a
                /// viewer, reactions by users they blocked are not counted.
                async fn with_reactions(
                    &self,
                    rows: Vec<MessageRow>,
                    viewer: Option<&str>,
                ) -> StoreResult<Vec<Message>> {
                    if rows.is_empty() {
                        return Ok(Vec::new());
                    }
                    let sql = $crate::storage::chat::reactions_sql(rows.len());
                    // One statement per list length: not worth a place in
                    // the prepared-statement cache.
                    let mut query = sqlx::query_as::<_, (String, String, i64)>(
                        sqlx::AssertSqlSafe(sql),
                    )
                    .persistent(false)
                    .bind(viewer);
                    for row in &rows {
                        query = query.bind(row.id.as_str());
                    }
                    let counts = query.fetch_all(&self.pool).await.map_err(db_err)?;
                    $crate::storage::chat::attach_reactions(rows, counts)
                }

                /// [`Self::with_reactions`] for one row.
                async fn one_with_reactions(&self, row: MessageRow) -> StoreResult<Message> {
                    self.with_reactions(vec![row], None)
                        .await?
                        .pop()
                        .ok_or_else(|| StoreError::Other("message row went missing".to_owned()))
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
                        "select ", message_columns!(), " from messages \
                         where room_id = $1 and author_id = $2 and client_id = $3"
                    ))
                    .bind(room_id)
                    .bind(author_id)
                    .bind(client_id)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(db_err)
                }
            }

            #[async_trait::async_trait]
            impl ChatStore for $store {
                // ---- rooms ----------------------------------------------

                async fn create_room(&self, new: NewRoom) -> StoreResult<Room> {
                    let at = to_ms(new.created_at);
                    let mut tx = self.pool.begin().await.map_err(db_err)?;
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
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(db_err)?;
                    sqlx::query(
                        "insert into room_members (room_id, user_id, role, joined_at) \
                         values ($1, $2, 'owner', $3)",
                    )
                    .bind(new.id.to_string())
                    .bind(new.owner.to_string())
                    .bind(at)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_err)?;
                    tx.commit().await.map_err(db_err)?;
                    row.into_room()
                }

                async fn get_or_create_direct_room(
                    &self,
                    id: RoomId,
                    a: UserId,
                    b: UserId,
                    at: DateTime<Utc>,
                ) -> StoreResult<(Room, bool)> {
                    let key = $crate::storage::chat::dm_key(a, b);
                    let at = to_ms(at);
                    // The insert comes first so the transaction writes from
                    // the start. Of two concurrent calls, the second waits on
                    // the unique dm_key and then inserts nothing.
                    let mut tx = self.pool.begin().await.map_err(db_err)?;
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
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(db_err)?;
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
                        .execute(&mut *tx)
                        .await
                        .map_err(db_err)?;
                        tx.commit().await.map_err(db_err)?;
                        return Ok((row.into_room()?, true));
                    }
                    let row = sqlx::query_as::<_, RoomRow>(concat!(
                        "select ", room_columns!(), " from rooms where dm_key = $1"
                    ))
                    .bind(&key)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err(db_err)?;
                    tx.commit().await.map_err(db_err)?;
                    Ok((row.into_room()?, false))
                }

                async fn room_by_id(&self, id: RoomId) -> StoreResult<Option<Room>> {
                    sqlx::query_as::<_, RoomRow>(concat!(
                        "select ", room_columns!(), " from rooms where id = $1"
                    ))
                    .bind(id.to_string())
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(db_err)?
                    .map(RoomRow::into_room)
                    .transpose()
                }

                async fn list_public_rooms(
                    &self,
                    q: Option<&str>,
                    after: Option<RoomId>,
                    limit: u32,
                ) -> StoreResult<Vec<Room>> {
                    // Newest first is id order (UUIDv7); the page starts
                    // strictly after the cursor id.
                    let rows = sqlx::query_as::<_, RoomRow>(concat!(
                        "select ", room_columns!(), " from rooms \
                         where visibility = 'public' \
                           and ($1 is null or lower(name) like $1 escape '\\') \
                           and ($2 is null or id < $2) \
                         order by id desc \
                         limit $3"
                    ))
                    .bind($crate::storage::chat::name_pattern(q))
                    .bind(after.map(|id| id.to_string()))
                    .bind(i64::from(limit))
                    .fetch_all(&self.pool)
                    .await
                    .map_err(db_err)?;
                    convert_all(rows, RoomRow::into_room)
                }

                async fn list_memberships(&self, user_id: UserId) -> StoreResult<Vec<Membership>> {
                    // Each room with its unread messages counted among its
                    // newest UNREAD_WINDOW only, so the cost stays bounded
                    // however far behind a member is. Messages with no
                    // author (deleted account) count; `b.blocked_id = null`
                    // never matches.
                    let rows = sqlx::query_as::<_, MembershipRow>(
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
                    .fetch_all(&self.pool)
                    .await
                    .map_err(db_err)?;
                    convert_all(rows, MembershipRow::into_membership)
                }

                async fn member_last_seqs(
                    &self,
                    user_id: UserId,
                ) -> StoreResult<Vec<(RoomId, i64)>> {
                    let rows = sqlx::query_as::<_, (String, i64)>(
                        "select r.id, r.last_seq from room_members rm \
                         join rooms r on r.id = rm.room_id \
                         where rm.user_id = $1",
                    )
                    .bind(user_id.to_string())
                    .fetch_all(&self.pool)
                    .await
                    .map_err(db_err)?;
                    rows.into_iter()
                        .map(|(id, last_seq)| Ok((parse_col("rooms.id", &id)?, last_seq)))
                        .collect()
                }

                async fn update_room(
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
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(db_err)?
                    .map(RoomRow::into_room)
                    .transpose()
                }

                async fn delete_room(&self, id: RoomId) -> StoreResult<bool> {
                    // Members, bans, invites and messages go by cascade, and
                    // reactions with the messages.
                    let done = sqlx::query("delete from rooms where id = $1")
                        .bind(id.to_string())
                        .execute(&self.pool)
                        .await
                        .map_err(db_err)?;
                    Ok(done.rows_affected() > 0)
                }

                // ---- members --------------------------------------------

                async fn add_member(
                    &self,
                    room_id: RoomId,
                    user_id: UserId,
                    role: RoomRole,
                    at: DateTime<Utc>,
                ) -> StoreResult<bool> {
                    let done = sqlx::query(
                        "insert into room_members (room_id, user_id, role, joined_at) \
                         values ($1, $2, $3, $4) \
                         on conflict (room_id, user_id) do nothing",
                    )
                    .bind(room_id.to_string())
                    .bind(user_id.to_string())
                    .bind(role.as_str())
                    .bind(to_ms(at))
                    .execute(&self.pool)
                    .await
                    .map_err(db_err)?;
                    Ok(done.rows_affected() > 0)
                }

                async fn member(
                    &self,
                    room_id: RoomId,
                    user_id: UserId,
                ) -> StoreResult<Option<Member>> {
                    sqlx::query_as::<_, MemberRow>(concat!(
                        "select ", member_columns!(), " from room_members \
                         where room_id = $1 and user_id = $2"
                    ))
                    .bind(room_id.to_string())
                    .bind(user_id.to_string())
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(db_err)?
                    .map(MemberRow::into_member)
                    .transpose()
                }

                async fn list_members(&self, room_id: RoomId) -> StoreResult<Vec<Member>> {
                    let rows = sqlx::query_as::<_, MemberRow>(concat!(
                        "select ", member_columns!(), " from room_members \
                         where room_id = $1 \
                         order by joined_at, user_id"
                    ))
                    .bind(room_id.to_string())
                    .fetch_all(&self.pool)
                    .await
                    .map_err(db_err)?;
                    convert_all(rows, MemberRow::into_member)
                }

                async fn users_sharing_rooms(&self, user_id: UserId) -> StoreResult<Vec<UserId>> {
                    let rows: Vec<(String,)> = sqlx::query_as(
                        "select distinct other.user_id \
                         from room_members me \
                         join room_members other on other.room_id = me.room_id \
                           and other.user_id <> me.user_id \
                         where me.user_id = $1 \
                         order by other.user_id",
                    )
                    .bind(user_id.to_string())
                    .fetch_all(&self.pool)
                    .await
                    .map_err(db_err)?;
                    rows.iter()
                        .map(|(id,)| parse_col("room_members.user_id", id))
                        .collect()
                }

                async fn update_member_role(
                    &self,
                    room_id: RoomId,
                    user_id: UserId,
                    role: RoomRole,
                ) -> StoreResult<bool> {
                    let done = sqlx::query(
                        "update room_members set role = $3 where room_id = $1 and user_id = $2",
                    )
                    .bind(room_id.to_string())
                    .bind(user_id.to_string())
                    .bind(role.as_str())
                    .execute(&self.pool)
                    .await
                    .map_err(db_err)?;
                    Ok(done.rows_affected() > 0)
                }

                async fn set_read_marker(
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
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(db_err)?;
                    Ok(row.map(|(seq,)| seq))
                }

                async fn remove_member(&self, room_id: RoomId, user_id: UserId) -> StoreResult<bool> {
                    let done =
                        sqlx::query("delete from room_members where room_id = $1 and user_id = $2")
                            .bind(room_id.to_string())
                            .bind(user_id.to_string())
                            .execute(&self.pool)
                            .await
                            .map_err(db_err)?;
                    Ok(done.rows_affected() > 0)
                }

                async fn ban_member(
                    &self,
                    room_id: RoomId,
                    user_id: UserId,
                    banned_by: UserId,
                    at: DateTime<Utc>,
                ) -> StoreResult<bool> {
                    let mut tx = self.pool.begin().await.map_err(db_err)?;
                    sqlx::query("delete from room_members where room_id = $1 and user_id = $2")
                        .bind(room_id.to_string())
                        .bind(user_id.to_string())
                        .execute(&mut *tx)
                        .await
                        .map_err(db_err)?;
                    let done = sqlx::query(
                        "insert into room_bans (room_id, user_id, banned_by, created_at) \
                         values ($1, $2, $3, $4) \
                         on conflict (room_id, user_id) do nothing",
                    )
                    .bind(room_id.to_string())
                    .bind(user_id.to_string())
                    .bind(banned_by.to_string())
                    .bind(to_ms(at))
                    .execute(&mut *tx)
                    .await
                    .map_err(db_err)?;
                    tx.commit().await.map_err(db_err)?;
                    Ok(done.rows_affected() > 0)
                }

                async fn is_banned(&self, room_id: RoomId, user_id: UserId) -> StoreResult<bool> {
                    let row: Option<(i32,)> = sqlx::query_as(
                        "select 1 from room_bans where room_id = $1 and user_id = $2",
                    )
                    .bind(room_id.to_string())
                    .bind(user_id.to_string())
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(db_err)?;
                    Ok(row.is_some())
                }

                async fn unban_member(&self, room_id: RoomId, user_id: UserId) -> StoreResult<bool> {
                    let done =
                        sqlx::query("delete from room_bans where room_id = $1 and user_id = $2")
                            .bind(room_id.to_string())
                            .bind(user_id.to_string())
                            .execute(&self.pool)
                            .await
                            .map_err(db_err)?;
                    Ok(done.rows_affected() > 0)
                }

                // ---- invites --------------------------------------------

                async fn create_invite(&self, new: NewInvite) -> StoreResult<Invite> {
                    // A second pending invite hits the partial unique index,
                    // which error mapping reports as `user_id`.
                    sqlx::query_as::<_, InviteRow>(concat!(
                        "insert into invites (id, room_id, inviter_id, invitee_id, status, \
                           created_at) \
                         values ($1, $2, $3, $4, 'pending', $5) \
                         returning ",
                        invite_columns!()
                    ))
                    .bind(new.id.to_string())
                    .bind(new.room_id.to_string())
                    .bind(new.inviter_id.to_string())
                    .bind(new.invitee_id.to_string())
                    .bind(to_ms(new.created_at))
                    .fetch_one(&self.pool)
                    .await
                    .map_err(db_err)?
                    .into_invite()
                }

                async fn invite_by_id(&self, id: InviteId) -> StoreResult<Option<Invite>> {
                    sqlx::query_as::<_, InviteRow>(concat!(
                        "select ", invite_columns!(), " from invites where id = $1"
                    ))
                    .bind(id.to_string())
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(db_err)?
                    .map(InviteRow::into_invite)
                    .transpose()
                }

                async fn list_pending_invites(&self, invitee_id: UserId) -> StoreResult<Vec<Invite>> {
                    let rows = sqlx::query_as::<_, InviteRow>(concat!(
                        "select ", invite_columns!(), " from invites \
                         where invitee_id = $1 and status = 'pending' \
                         order by created_at desc, id desc"
                    ))
                    .bind(invitee_id.to_string())
                    .fetch_all(&self.pool)
                    .await
                    .map_err(db_err)?;
                    convert_all(rows, InviteRow::into_invite)
                }

                async fn respond_invite(
                    &self,
                    id: InviteId,
                    status: InviteStatus,
                    at: DateTime<Utc>,
                ) -> StoreResult<bool> {
                    let done = sqlx::query(
                        "update invites set status = $2, responded_at = $3 \
                         where id = $1 and status = 'pending'",
                    )
                    .bind(id.to_string())
                    .bind(status.as_str())
                    .bind(to_ms(at))
                    .execute(&self.pool)
                    .await
                    .map_err(db_err)?;
                    Ok(done.rows_affected() > 0)
                }

                // ---- messages and reactions -----------------------------

                async fn create_messages(
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
                        let mut tx = self.writer.begin().await.map_err(db_err)?;
                        let written = Self::write_groups(&mut tx, &[&prepared]).await?.pop();
                        match written.unwrap_or(Written::Rows(Vec::new())) {
                            Written::Rows(rows) => {
                                tx.commit().await.map_err(db_err)?;
                                prepared.stored(rows)?;
                                break;
                            }
                            Written::Raced(raced) => {
                                tx.rollback().await.map_err(db_err)?;
                                self.found_raced(&mut prepared, raced).await?;
                            }
                        }
                    }
                    prepared.finish()
                }

                async fn create_message_groups(
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
                        let ready: Vec<&$crate::storage::chat::PreparedMessages> =
                            prepared.iter().filter_map(|p| p.as_ref().ok()).collect();
                        let mut tx = self.writer.begin().await.map_err(db_err)?;
                        let mut written = Self::write_groups(&mut tx, &ready).await?.into_iter();
                        let mut all = Vec::with_capacity(prepared.len());
                        for p in &prepared {
                            if p.is_err() {
                                all.push(Vec::new());
                                continue;
                            }
                            let Some(Written::Rows(rows)) = written.next() else {
                                tx.rollback().await.map_err(db_err)?;
                                return Ok(None);
                            };
                            all.push(rows);
                        }
                        tx.commit().await.map_err(db_err)?;
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

                async fn message_by_id(&self, id: MessageId) -> StoreResult<Option<Message>> {
                    let row = sqlx::query_as::<_, MessageRow>(concat!(
                        "select ", message_columns!(), " from messages where id = $1"
                    ))
                    .bind(id.to_string())
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(db_err)?;
                    match row {
                        Some(row) => Ok(Some(self.one_with_reactions(row).await?)),
                        None => Ok(None),
                    }
                }

                async fn list_messages(
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
                            "select ", m_message_columns!(), " from messages m \
                             where m.room_id = $1 and m.seq < $2 and m.seq > $3 \
                               and ($4 is null or not exists ( \
                                 select 1 from blocks b \
                                 where b.blocker_id = $4 and b.blocked_id = m.author_id)) \
                             order by m.seq \
                             limit $5"
                        )
                    } else {
                        concat!(
                            "select ", m_message_columns!(), " from messages m \
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
                        .fetch_all(&self.pool)
                        .await
                        .map_err(db_err)?;
                    self.with_reactions(rows, viewer.as_deref()).await
                }

                async fn search_messages(
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

                async fn update_message_body(
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
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(db_err)?;
                    match row {
                        Some(row) => Ok(Some(self.one_with_reactions(row).await?)),
                        None => Ok(None),
                    }
                }

                async fn add_reaction(
                    &self,
                    message_id: MessageId,
                    user_id: UserId,
                    emoji: &Emoji,
                    at: DateTime<Utc>,
                ) -> StoreResult<bool> {
                    // Deleted messages take no reactions, also when the
                    // delete races this insert. (SQLite needs the `where` to
                    // parse `insert … select … on conflict`.)
                    let done = sqlx::query(
                        "insert into reactions (message_id, user_id, emoji, created_at) \
                         select $1, $2, $3, $4 \
                         where exists (select 1 from messages where id = $1 and not deleted) \
                         on conflict (message_id, user_id, emoji) do nothing",
                    )
                    .bind(message_id.to_string())
                    .bind(user_id.to_string())
                    .bind(emoji.as_str())
                    .bind(to_ms(at))
                    .execute(&self.pool)
                    .await
                    .map_err(db_err)?;
                    Ok(done.rows_affected() > 0)
                }

                async fn remove_reaction(
                    &self,
                    message_id: MessageId,
                    user_id: UserId,
                    emoji: &Emoji,
                ) -> StoreResult<bool> {
                    let done = sqlx::query(
                        "delete from reactions \
                         where message_id = $1 and user_id = $2 and emoji = $3",
                    )
                    .bind(message_id.to_string())
                    .bind(user_id.to_string())
                    .bind(emoji.as_str())
                    .execute(&self.pool)
                    .await
                    .map_err(db_err)?;
                    Ok(done.rows_affected() > 0)
                }

                async fn delete_message(
                    &self,
                    id: MessageId,
                    _at: DateTime<Utc>,
                ) -> StoreResult<Option<Message>> {
                    // A tombstone: the seq stays so history has no holes.
                    // `edited_at` is left alone (it records edits, and there
                    // is no deleted_at column).
                    let mut tx = self.pool.begin().await.map_err(db_err)?;
                    let row = sqlx::query_as::<_, MessageRow>(concat!(
                        "update messages set body = '', deleted = true \
                         where id = $1 and not deleted \
                         returning ",
                        message_columns!()
                    ))
                    .bind(id.to_string())
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(db_err)?;
                    let Some(row) = row else {
                        return Ok(None);
                    };
                    sqlx::query("delete from reactions where message_id = $1")
                        .bind(id.to_string())
                        .execute(&mut *tx)
                        .await
                        .map_err(db_err)?;
                    tx.commit().await.map_err(db_err)?;
                    Ok(Some(row.into_message(BTreeMap::new())?))
                }

                // ---- blocks ---------------------------------------------

                async fn create_block(
                    &self,
                    blocker_id: UserId,
                    blocked_id: UserId,
                    at: DateTime<Utc>,
                ) -> StoreResult<bool> {
                    let done = sqlx::query(
                        "insert into blocks (blocker_id, blocked_id, created_at) \
                         values ($1, $2, $3) \
                         on conflict (blocker_id, blocked_id) do nothing",
                    )
                    .bind(blocker_id.to_string())
                    .bind(blocked_id.to_string())
                    .bind(to_ms(at))
                    .execute(&self.pool)
                    .await
                    .map_err(db_err)?;
                    Ok(done.rows_affected() > 0)
                }

                async fn list_blocks(&self, blocker_id: UserId) -> StoreResult<Vec<Block>> {
                    let rows = sqlx::query_as::<_, BlockRow>(
                        "select blocker_id, blocked_id, created_at from blocks \
                         where blocker_id = $1 \
                         order by created_at desc, blocked_id desc",
                    )
                    .bind(blocker_id.to_string())
                    .fetch_all(&self.pool)
                    .await
                    .map_err(db_err)?;
                    convert_all(rows, BlockRow::into_block)
                }

                async fn all_blocks(&self) -> StoreResult<Vec<(UserId, UserId)>> {
                    let rows: Vec<(String, String)> =
                        sqlx::query_as("select blocker_id, blocked_id from blocks")
                            .fetch_all(&self.pool)
                            .await
                            .map_err(db_err)?;
                    rows.iter()
                        .map(|(blocker, blocked)| {
                            Ok((
                                parse_col("blocks.blocker_id", blocker)?,
                                parse_col("blocks.blocked_id", blocked)?,
                            ))
                        })
                        .collect()
                }

                async fn delete_block(
                    &self,
                    blocker_id: UserId,
                    blocked_id: UserId,
                ) -> StoreResult<bool> {
                    let done = sqlx::query(
                        "delete from blocks where blocker_id = $1 and blocked_id = $2",
                    )
                    .bind(blocker_id.to_string())
                    .bind(blocked_id.to_string())
                    .execute(&self.pool)
                    .await
                    .map_err(db_err)?;
                    Ok(done.rows_affected() > 0)
                }
            }
        };
    };
}

#[cfg(test)]
pub(super) mod tests {
    //! The chat cases of the store suite (`store_test_suite!` in
    //! `storage/mod.rs` runs each on SQLite and PostgreSQL).

    use std::collections::BTreeMap;
    use std::sync::Arc;

    use parley_actors::domain::{
        Emoji, InviteId, InviteStatus, MessageBody, MessageId, RoomId, RoomName, RoomRole,
        RoomTopic, UserId, Visibility,
    };
    use parley_actors::store::{
        Created, HistoryQuery, Message, NewInvite, NewMessage, NewRoom, Room, RoomPatch, Store,
        StoreError,
    };

    use crate::storage::tests::{new_user, t};

    // ---- fixtures -----------------------------------------------------------

    async fn user(store: &dyn Store, name: &str) -> UserId {
        store.create_user(new_user(name)).await.expect("user").id
    }

    fn new_room(owner: UserId, name: &str, visibility: Visibility, ms: i64) -> NewRoom {
        NewRoom {
            id: RoomId::new(),
            name: RoomName::parse(name).expect("room name"),
            topic: None,
            visibility,
            owner,
            created_at: t(ms),
        }
    }

    /// A private room owned by `owner` with `members` added as members.
    async fn room_with(store: &dyn Store, owner: UserId, members: &[UserId]) -> Room {
        let room = store
            .create_room(new_room(owner, "room", Visibility::Private, 0))
            .await
            .expect("room");
        for &member in members {
            assert!(
                store
                    .add_member(room.id, member, RoomRole::Member, t(1))
                    .await
                    .expect("add member")
            );
        }
        room
    }

    fn new_message(room_id: RoomId, author_id: UserId, body: &str) -> NewMessage {
        NewMessage {
            id: MessageId::new(),
            room_id,
            author_id,
            body: MessageBody::parse(body).expect("body"),
            reply_to: None,
            client_id: None,
            created_at: t(10),
        }
    }

    async fn send(store: &dyn Store, room_id: RoomId, author_id: UserId, body: &str) -> Message {
        match store
            .create_message(new_message(room_id, author_id, body))
            .await
            .expect("send")
        {
            Created::New(message) => message,
            Created::Existing(message) => panic!("no client id, yet existing: {message:?}"),
        }
    }

    fn emoji(raw: &str) -> Emoji {
        Emoji::parse(raw).expect("emoji")
    }

    fn history(
        before_seq: Option<i64>,
        after_seq: Option<i64>,
        limit: u32,
        viewer: Option<UserId>,
    ) -> HistoryQuery {
        HistoryQuery {
            before_seq,
            after_seq,
            limit,
            viewer,
        }
    }

    fn seqs(messages: &[Message]) -> Vec<i64> {
        messages.iter().map(|m| m.seq).collect()
    }

    fn counts(pairs: &[(&str, i64)]) -> BTreeMap<String, i64> {
        pairs.iter().map(|&(e, n)| (e.to_owned(), n)).collect()
    }

    // ---- rooms --------------------------------------------------------------

    pub(in crate::storage) async fn rooms_are_created_updated_and_deleted_with_their_contents(
        _: String,
        store: Arc<dyn Store>,
    ) {
        let alice = user(&*store, "alice").await;
        let bob = user(&*store, "bob").await;
        let carol = user(&*store, "carol").await;
        let mut new = new_room(alice, "General", Visibility::Public, 0);
        new.topic = Some(RoomTopic::parse("anything goes").expect("topic"));
        let room = store.create_room(new.clone()).await.expect("create");
        assert_eq!(
            room,
            Room {
                id: new.id,
                name: "General".to_owned(),
                topic: Some("anything goes".to_owned()),
                visibility: Visibility::Public,
                created_by: Some(alice),
                created_at: t(0),
                updated_at: t(0),
                last_seq: 0,
            }
        );
        assert_eq!(
            store.room_by_id(room.id).await.expect("read"),
            Some(room.clone())
        );
        let owner = store
            .member(room.id, alice)
            .await
            .expect("member")
            .expect("owner is a member");
        assert_eq!(
            (owner.role, owner.joined_at, owner.last_read_seq),
            (RoomRole::Owner, t(0), 0)
        );
        let err = store.create_room(new).await.expect_err("same id");
        assert!(
            matches!(err, StoreError::Conflict { field: "id" }),
            "{err:?}"
        );

        // A patch changes only what it names; `Some(None)` clears the topic.
        let renamed = store
            .update_room(
                room.id,
                RoomPatch {
                    name: Some(RoomName::parse("Lobby").expect("name")),
                    topic: None,
                },
                t(5),
            )
            .await
            .expect("rename")
            .expect("exists");
        assert_eq!(
            (
                renamed.name.as_str(),
                renamed.topic.as_deref(),
                renamed.updated_at
            ),
            ("Lobby", Some("anything goes"), t(5))
        );
        let cleared = store
            .update_room(
                room.id,
                RoomPatch {
                    name: None,
                    topic: Some(None),
                },
                t(6),
            )
            .await
            .expect("clear topic")
            .expect("exists");
        assert_eq!((cleared.name.as_str(), cleared.topic), ("Lobby", None));
        assert_eq!(
            store
                .update_room(RoomId::new(), RoomPatch::default(), t(7))
                .await
                .expect("unknown"),
            None
        );

        // Everything in the room goes with it.
        store
            .add_member(room.id, bob, RoomRole::Member, t(1))
            .await
            .expect("add");
        let message = send(&*store, room.id, bob, "hello").await;
        store
            .add_reaction(message.id, alice, &emoji("👍"), t(11))
            .await
            .expect("react");
        store
            .create_invite(NewInvite {
                id: InviteId::new(),
                room_id: room.id,
                inviter_id: alice,
                invitee_id: carol,
                created_at: t(12),
            })
            .await
            .expect("invite");
        let dave = user(&*store, "dave").await;
        store
            .ban_member(room.id, dave, alice, t(13))
            .await
            .expect("ban");

        assert!(store.delete_room(room.id).await.expect("delete"));
        assert_eq!(store.room_by_id(room.id).await.expect("read"), None);
        assert_eq!(store.member(room.id, bob).await.expect("member"), None);
        assert!(
            store
                .list_members(room.id)
                .await
                .expect("members")
                .is_empty()
        );
        assert_eq!(store.message_by_id(message.id).await.expect("msg"), None);
        assert!(
            store
                .list_pending_invites(carol)
                .await
                .expect("invites")
                .is_empty()
        );
        assert!(!store.is_banned(room.id, dave).await.expect("ban"));
        assert!(store.list_memberships(bob).await.expect("rooms").is_empty());
        assert!(
            store
                .search_messages(alice, "hello", None, 10)
                .await
                .expect("search")
                .is_empty()
        );
        assert!(!store.delete_room(room.id).await.expect("again"));
    }

    pub(in crate::storage) async fn public_rooms_are_found_by_name_newest_first(
        _: String,
        store: Arc<dyn Store>,
    ) {
        let alice = user(&*store, "alice").await;
        let bob = user(&*store, "bob").await;
        let mut public = Vec::new();
        for (i, name) in ["Rust Lovers", "rustaceans", "Go", "100% Rust", "snake_case"]
            .into_iter()
            .enumerate()
        {
            let new = new_room(alice, name, Visibility::Public, i as i64);
            public.push(store.create_room(new).await.expect("room"));
        }
        store
            .create_room(new_room(alice, "Secret rust", Visibility::Private, 9))
            .await
            .expect("private");
        store
            .get_or_create_direct_room(RoomId::new(), alice, bob, t(9))
            .await
            .expect("dm");
        public.sort_by_key(|r| std::cmp::Reverse(r.id.to_string()));

        let names = |rooms: Vec<Room>| rooms.into_iter().map(|r| r.name).collect::<Vec<_>>();
        let expected = |pick: &[&str]| {
            public
                .iter()
                .filter(|r| pick.contains(&r.name.as_str()))
                .map(|r| r.name.clone())
                .collect::<Vec<_>>()
        };
        let all = store.list_public_rooms(None, None, 50).await.expect("all");
        assert_eq!(all, public);
        for q in ["rust", "RUST", " Rust "] {
            let found = store
                .list_public_rooms(Some(q), None, 50)
                .await
                .expect("search");
            assert_eq!(
                names(found),
                expected(&["Rust Lovers", "rustaceans", "100% Rust"]),
                "{q:?}"
            );
        }
        // LIKE wildcards in the query are plain characters.
        let found = store
            .list_public_rooms(Some("%"), None, 50)
            .await
            .expect("percent");
        assert_eq!(names(found), expected(&["100% Rust"]));
        let found = store
            .list_public_rooms(Some("_"), None, 50)
            .await
            .expect("underscore");
        assert_eq!(names(found), expected(&["snake_case"]));
        let found = store
            .list_public_rooms(Some("\\"), None, 50)
            .await
            .expect("backslash");
        assert!(found.is_empty());

        // Pages of two follow the cursor to the end.
        let mut seen = Vec::new();
        let mut cursor = None;
        loop {
            let page = store
                .list_public_rooms(None, cursor, 2)
                .await
                .expect("page");
            assert!(page.len() <= 2);
            let Some(last) = page.last() else { break };
            cursor = Some(last.id);
            seen.extend(page);
        }
        assert_eq!(seen, public);
    }

    pub(in crate::storage) async fn direct_rooms_are_created_once_per_pair(
        _: String,
        store: Arc<dyn Store>,
    ) {
        let alice = user(&*store, "alice").await;
        let bob = user(&*store, "bob").await;
        let id = RoomId::new();
        let (room, created) = store
            .get_or_create_direct_room(id, alice, bob, t(3))
            .await
            .expect("create");
        assert!(created);
        assert_eq!(
            (
                room.id,
                room.visibility,
                room.name.as_str(),
                room.created_at
            ),
            (id, Visibility::Direct, "", t(3))
        );
        let members = store.list_members(id).await.expect("members");
        let mut member_ids: Vec<UserId> = members.iter().map(|m| m.user_id).collect();
        member_ids.sort();
        let mut pair = vec![alice, bob];
        pair.sort();
        assert_eq!(member_ids, pair);
        assert!(members.iter().all(|m| m.role == RoomRole::Member));

        // Either order finds the same room; the new id is not used.
        let other_id = RoomId::new();
        let (again, created) = store
            .get_or_create_direct_room(other_id, bob, alice, t(4))
            .await
            .expect("get");
        assert!(!created);
        assert_eq!(again, room);
        assert_eq!(store.room_by_id(other_id).await.expect("read"), None);

        // Concurrent first calls for one pair agree on one room.
        let carol = user(&*store, "carol").await;
        let dave = user(&*store, "dave").await;
        let mut tasks = Vec::new();
        for i in 0..8 {
            let store = Arc::clone(&store);
            let (a, b) = if i % 2 == 0 {
                (carol, dave)
            } else {
                (dave, carol)
            };
            tasks.push(tokio::spawn(async move {
                store
                    .get_or_create_direct_room(RoomId::new(), a, b, t(5))
                    .await
                    .expect("concurrent get or create")
            }));
        }
        let mut results = Vec::new();
        for task in tasks {
            results.push(task.await.expect("task"));
        }
        assert_eq!(results.iter().filter(|(_, created)| *created).count(), 1);
        let first = results[0].0.id;
        assert!(results.iter().all(|(room, _)| room.id == first));
        assert_eq!(store.list_members(first).await.expect("members").len(), 2);
    }

    // ---- members ------------------------------------------------------------

    pub(in crate::storage) async fn members_are_added_promoted_removed_and_banned(
        _: String,
        store: Arc<dyn Store>,
    ) {
        let alice = user(&*store, "alice").await;
        let bob = user(&*store, "bob").await;
        let carol = user(&*store, "carol").await;
        let room = store
            .create_room(new_room(alice, "room", Visibility::Public, 0))
            .await
            .expect("room");
        assert!(
            store
                .add_member(room.id, bob, RoomRole::Member, t(1))
                .await
                .expect("add")
        );
        assert!(
            !store
                .add_member(room.id, bob, RoomRole::Admin, t(2))
                .await
                .expect("again")
        );
        let member = store
            .member(room.id, bob)
            .await
            .expect("member")
            .expect("exists");
        assert_eq!(
            (
                member.room_id,
                member.user_id,
                member.role,
                member.joined_at
            ),
            (room.id, bob, RoomRole::Member, t(1))
        );
        let members = store.list_members(room.id).await.expect("members");
        assert_eq!(
            members.iter().map(|m| m.user_id).collect::<Vec<_>>(),
            vec![alice, bob]
        );

        assert!(
            store
                .update_member_role(room.id, bob, RoomRole::Admin)
                .await
                .expect("promote")
        );
        let member = store.member(room.id, bob).await.expect("member");
        assert_eq!(member.map(|m| m.role), Some(RoomRole::Admin));
        assert!(
            !store
                .update_member_role(room.id, carol, RoomRole::Admin)
                .await
                .expect("not a member")
        );

        // Room mates, each once, never oneself.
        let other = room_with(&*store, carol, &[bob, alice]).await;
        assert_eq!(store.users_sharing_rooms(alice).await.expect("mates"), {
            let mut v = vec![bob, carol];
            v.sort();
            v
        });
        assert!(store.remove_member(other.id, alice).await.expect("remove"));
        assert!(!store.remove_member(other.id, alice).await.expect("again"));
        assert_eq!(
            store.users_sharing_rooms(alice).await.expect("mates"),
            vec![bob]
        );
        let loner = user(&*store, "loner").await;
        assert!(
            store
                .users_sharing_rooms(loner)
                .await
                .expect("none")
                .is_empty()
        );

        // A ban removes the membership; it is recorded once.
        assert!(
            store
                .ban_member(room.id, bob, alice, t(5))
                .await
                .expect("ban")
        );
        assert_eq!(store.member(room.id, bob).await.expect("member"), None);
        assert!(store.is_banned(room.id, bob).await.expect("banned"));
        assert!(!store.is_banned(room.id, carol).await.expect("not banned"));
        assert!(
            !store
                .ban_member(room.id, bob, alice, t(6))
                .await
                .expect("again")
        );
        assert!(store.unban_member(room.id, bob).await.expect("unban"));
        assert!(!store.unban_member(room.id, bob).await.expect("again"));
        assert!(!store.is_banned(room.id, bob).await.expect("lifted"));
        // Banning a non-member just records the ban.
        assert!(
            store
                .ban_member(room.id, carol, alice, t(7))
                .await
                .expect("ban")
        );
    }

    // ---- invites ------------------------------------------------------------

    pub(in crate::storage) async fn invites_are_pending_once_until_answered(
        _: String,
        store: Arc<dyn Store>,
    ) {
        let alice = user(&*store, "alice").await;
        let bob = user(&*store, "bob").await;
        let first = room_with(&*store, alice, &[]).await;
        let second = room_with(&*store, alice, &[]).await;
        let invite = |room_id: RoomId, ms: i64| NewInvite {
            id: InviteId::new(),
            room_id,
            inviter_id: alice,
            invitee_id: bob,
            created_at: t(ms),
        };
        let new = invite(first.id, 10);
        let stored = store.create_invite(new.clone()).await.expect("invite");
        assert_eq!(
            (
                stored.id,
                stored.room_id,
                stored.inviter_id,
                stored.invitee_id
            ),
            (new.id, first.id, alice, bob)
        );
        assert_eq!(
            (stored.status, stored.created_at, stored.responded_at),
            (InviteStatus::Pending, t(10), None)
        );
        assert_eq!(
            store.invite_by_id(new.id).await.expect("read"),
            Some(stored.clone())
        );
        let err = store
            .create_invite(invite(first.id, 11))
            .await
            .expect_err("pending twice");
        assert!(
            matches!(err, StoreError::Conflict { field: "user_id" }),
            "{err:?}"
        );
        let later = store
            .create_invite(invite(second.id, 20))
            .await
            .expect("other room");
        assert_eq!(
            store.list_pending_invites(bob).await.expect("pending"),
            vec![later.clone(), stored.clone()]
        );
        assert!(
            store
                .list_pending_invites(alice)
                .await
                .expect("none")
                .is_empty()
        );

        assert!(
            store
                .respond_invite(new.id, InviteStatus::Accepted, t(30))
                .await
                .expect("accept")
        );
        assert!(
            !store
                .respond_invite(new.id, InviteStatus::Declined, t(31))
                .await
                .expect("answered")
        );
        let answered = store
            .invite_by_id(new.id)
            .await
            .expect("read")
            .expect("exists");
        assert_eq!(
            (answered.status, answered.responded_at),
            (InviteStatus::Accepted, Some(t(30)))
        );
        assert_eq!(
            store.list_pending_invites(bob).await.expect("pending"),
            vec![later]
        );
        // Once answered, the room may invite again.
        store
            .create_invite(invite(first.id, 40))
            .await
            .expect("invite again");
        assert!(
            !store
                .respond_invite(InviteId::new(), InviteStatus::Accepted, t(41))
                .await
                .expect("unknown")
        );
        assert_eq!(
            store.invite_by_id(InviteId::new()).await.expect("read"),
            None
        );
    }

    // ---- messages -----------------------------------------------------------

    pub(in crate::storage) async fn concurrent_sends_get_gapless_seqs(
        _: String,
        store: Arc<dyn Store>,
    ) {
        let mut authors = Vec::new();
        for i in 0..8 {
            authors.push(user(&*store, &format!("writer{i}")).await);
        }
        let room = room_with(&*store, authors[0], &authors[1..]).await;
        let mut tasks = Vec::new();
        for &author in &authors {
            let store = Arc::clone(&store);
            tasks.push(tokio::spawn(async move {
                let mut seqs = Vec::new();
                for i in 0..25 {
                    let mut new = new_message(room.id, author, &format!("message {i}"));
                    // Half of them with a client id, so both paths race.
                    new.client_id = (i % 2 == 0).then(|| format!("c-{i}"));
                    let created = store.create_message(new).await.expect("send");
                    let Created::New(message) = created else {
                        panic!("unexpected existing message");
                    };
                    seqs.push(message.seq);
                }
                seqs
            }));
        }
        let mut all = Vec::new();
        for task in tasks {
            let seqs = task.await.expect("task");
            // Each sender sees its own messages in order.
            assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
            all.extend(seqs);
        }
        all.sort_unstable();
        assert_eq!(all, (1..=200).collect::<Vec<i64>>());
        let room = store
            .room_by_id(room.id)
            .await
            .expect("read")
            .expect("room");
        assert_eq!(room.last_seq, 200);
        let stored = store
            .list_messages(room.id, history(None, None, 200, None))
            .await
            .expect("history");
        assert_eq!(seqs(&stored), (1..=200).rev().collect::<Vec<i64>>());
        // Each author's read marker is at their own newest message.
        for &author in &authors {
            let newest = stored
                .iter()
                .find(|m| m.author_id == Some(author))
                .expect("wrote")
                .seq;
            let member = store.member(room.id, author).await.expect("member");
            assert_eq!(member.map(|m| m.last_read_seq), Some(newest));
        }
    }

    pub(in crate::storage) async fn client_ids_make_sends_idempotent(
        _: String,
        store: Arc<dyn Store>,
    ) {
        let alice = user(&*store, "alice").await;
        let bob = user(&*store, "bob").await;
        let room = room_with(&*store, alice, &[bob]).await;
        let mut new = new_message(room.id, alice, "first");
        new.client_id = Some("abc".to_owned());
        let Created::New(first) = store.create_message(new.clone()).await.expect("send") else {
            panic!("expected a new message");
        };
        assert_eq!((first.seq, first.client_id.as_deref()), (1, Some("abc")));
        store
            .add_reaction(first.id, bob, &emoji("🎉"), t(11))
            .await
            .expect("react");

        // A retry (new id, even another body) finds the original.
        let mut retry = new.clone();
        retry.id = MessageId::new();
        retry.body = MessageBody::parse("changed").expect("body");
        let again = store.create_message(retry.clone()).await.expect("retry");
        let mut expected = first.clone();
        expected.reactions = counts(&[("🎉", 1)]);
        assert_eq!(again, Created::Existing(expected));
        assert_eq!(store.message_by_id(retry.id).await.expect("read"), None);

        // The key is per author and room.
        let mut bobs = new_message(room.id, bob, "mine");
        bobs.client_id = Some("abc".to_owned());
        let created = store.create_message(bobs).await.expect("bob");
        assert!(
            matches!(&created, Created::New(m) if m.seq == 2),
            "{created:?}"
        );
        let other_room = room_with(&*store, alice, &[]).await;
        let mut elsewhere = new.clone();
        elsewhere.id = MessageId::new();
        elsewhere.room_id = other_room.id;
        let created = store.create_message(elsewhere).await.expect("other room");
        assert!(
            matches!(&created, Created::New(m) if m.seq == 1),
            "{created:?}"
        );
        // Without a key nothing is deduplicated.
        assert_eq!(send(&*store, room.id, alice, "same").await.seq, 3);
        assert_eq!(send(&*store, room.id, alice, "same").await.seq, 4);

        // Concurrent retries of one send store it once and leave no gap.
        let mut tasks = Vec::new();
        for _ in 0..6 {
            let store = Arc::clone(&store);
            let mut new = new_message(room.id, bob, "racing");
            new.client_id = Some("race".to_owned());
            tasks.push(tokio::spawn(async move {
                store.create_message(new).await.expect("racing send")
            }));
        }
        let mut outcomes = Vec::new();
        for task in tasks {
            outcomes.push(task.await.expect("task"));
        }
        assert_eq!(
            outcomes
                .iter()
                .filter(|o| matches!(o, Created::New(_)))
                .count(),
            1,
            "{outcomes:?}"
        );
        let ids: Vec<MessageId> = outcomes.into_iter().map(|o| o.into_inner().id).collect();
        assert!(ids.iter().all(|id| *id == ids[0]));
        assert_eq!(send(&*store, room.id, alice, "after").await.seq, 6);

        // Unknown rooms are an error, not a message.
        let err = store
            .create_message(new_message(RoomId::new(), alice, "nowhere"))
            .await
            .expect_err("no room");
        assert!(matches!(err, StoreError::Other(_)), "{err:?}");
    }

    pub(in crate::storage) async fn batches_commit_together_in_order(
        _: String,
        store: Arc<dyn Store>,
    ) {
        let alice = user(&*store, "alice").await;
        let bob = user(&*store, "bob").await;
        let room = room_with(&*store, alice, &[bob]).await;
        let mut stored = new_message(room.id, alice, "stored");
        stored.client_id = Some("old".to_owned());
        let earlier = store.create_message(stored.clone()).await.expect("send");
        let earlier = earlier.into_inner();

        // A retry of a stored send, a key repeated within the batch, and
        // plain messages from two authors, in one batch.
        let mut retry = new_message(room.id, alice, "retry");
        retry.client_id = Some("old".to_owned());
        let mut keyed = new_message(room.id, bob, "keyed");
        keyed.client_id = Some("k".to_owned());
        let mut keyed_again = new_message(room.id, bob, "keyed again");
        keyed_again.client_id = Some("k".to_owned());
        let batch = vec![
            new_message(room.id, alice, "one"),
            retry,
            keyed.clone(),
            new_message(room.id, bob, "two"),
            keyed_again.clone(),
            new_message(room.id, alice, "three"),
        ];
        let out = store.create_messages(batch).await.expect("batch");
        assert_eq!(out.len(), 6);
        let summary: Vec<(bool, i64, String)> = out
            .iter()
            .map(|c| {
                let m = c.clone().into_inner();
                (matches!(c, Created::New(_)), m.seq, m.body)
            })
            .collect();
        assert_eq!(
            summary,
            vec![
                (true, 2, "one".to_owned()),
                (false, 1, "stored".to_owned()),
                (true, 3, "keyed".to_owned()),
                (true, 4, "two".to_owned()),
                (false, 3, "keyed".to_owned()),
                (true, 5, "three".to_owned()),
            ]
        );
        assert_eq!(out[1].clone().into_inner().id, earlier.id);
        assert_eq!(out[4].clone().into_inner().id, keyed.id);
        assert_eq!(
            store.message_by_id(keyed_again.id).await.expect("read"),
            None
        );

        // Gapless and complete in the store; each author's marker is at
        // their newest message in the batch.
        let page = store
            .list_messages(
                room.id,
                HistoryQuery {
                    before_seq: None,
                    after_seq: Some(0),
                    limit: 50,
                    viewer: None,
                },
            )
            .await
            .expect("history");
        let seqs: Vec<i64> = page.iter().map(|m| m.seq).collect();
        assert_eq!(seqs, vec![1, 2, 3, 4, 5]);
        let marker = |u| {
            let store = Arc::clone(&store);
            async move {
                store
                    .member(room.id, u)
                    .await
                    .expect("member")
                    .expect("a member")
                    .last_read_seq
            }
        };
        assert_eq!(marker(alice).await, 5);
        assert_eq!(marker(bob).await, 4);
        assert_eq!(send(&*store, room.id, bob, "after").await.seq, 6);

        // An empty batch stores nothing; a batch across rooms is refused
        // whole.
        assert!(
            store
                .create_messages(Vec::new())
                .await
                .expect("empty")
                .is_empty()
        );
        let other = room_with(&*store, alice, &[]).await;
        let err = store
            .create_messages(vec![
                new_message(room.id, alice, "here"),
                new_message(other.id, alice, "there"),
            ])
            .await
            .expect_err("two rooms");
        assert!(matches!(err, StoreError::Other(_)), "{err:?}");
        assert_eq!(send(&*store, room.id, bob, "still gapless").await.seq, 7);
    }

    /// Per group of a `create_message_groups` answer: (stored now, seq) of
    /// each message.
    fn stored_seqs(out: Vec<Result<Vec<Created<Message>>, StoreError>>) -> Vec<Vec<(bool, i64)>> {
        out.into_iter()
            .map(|group| {
                group
                    .expect("stored")
                    .into_iter()
                    .map(|c| (matches!(c, Created::New(_)), c.into_inner().seq))
                    .collect()
            })
            .collect()
    }

    pub(in crate::storage) async fn groups_of_rooms_commit_together_and_fail_alone(
        _: String,
        store: Arc<dyn Store>,
    ) {
        let alice = user(&*store, "alice").await;
        let first = room_with(&*store, alice, &[]).await;
        let second = room_with(&*store, alice, &[]).await;
        send(&*store, second.id, alice, "before").await;
        let mut keyed = new_message(first.id, alice, "keyed");
        keyed.client_id = Some("k".to_owned());
        let groups = vec![
            vec![
                new_message(first.id, alice, "a1"),
                keyed.clone(),
                keyed.clone(),
            ],
            vec![
                new_message(second.id, alice, "b2"),
                new_message(second.id, alice, "b3"),
            ],
        ];
        let out = store.create_message_groups(groups).await;
        assert_eq!(
            stored_seqs(out),
            vec![
                vec![(true, 1), (true, 2), (false, 2)],
                vec![(true, 2), (true, 3)]
            ]
        );

        // A group for a room that does not exist fails; the others are
        // stored all the same.
        let out = store
            .create_message_groups(vec![
                vec![new_message(first.id, alice, "a3")],
                vec![new_message(RoomId::new(), alice, "nowhere")],
                vec![new_message(second.id, alice, "b4")],
            ])
            .await;
        assert_eq!(out.len(), 3);
        assert_eq!(
            out[0].as_ref().expect("first room")[0]
                .clone()
                .into_inner()
                .seq,
            3
        );
        assert!(matches!(out[1], Err(StoreError::Other(_))), "{:?}", out[1]);
        assert_eq!(
            out[2].as_ref().expect("second room")[0]
                .clone()
                .into_inner()
                .seq,
            4
        );
        assert_eq!(send(&*store, first.id, alice, "after").await.seq, 4);
        assert_eq!(send(&*store, second.id, alice, "after").await.seq, 5);

        // A retried client id among new messages is answered with what is
        // stored, and the rest is stored; a room with two groups takes
        // consecutive seqs in group order.
        let out = store
            .create_message_groups(vec![
                vec![new_message(first.id, alice, "a5")],
                vec![new_message(second.id, alice, "b6")],
                vec![keyed.clone(), new_message(first.id, alice, "a6")],
            ])
            .await;
        assert_eq!(
            stored_seqs(out),
            vec![
                vec![(true, 5)],
                vec![(true, 6)],
                vec![(false, 2), (true, 6)]
            ]
        );
        let out = store
            .create_message_groups(vec![
                vec![new_message(first.id, alice, "a7")],
                vec![new_message(second.id, alice, "b7")],
                vec![
                    new_message(first.id, alice, "a8"),
                    new_message(first.id, alice, "a9"),
                ],
            ])
            .await;
        assert_eq!(
            stored_seqs(out),
            vec![vec![(true, 7)], vec![(true, 7)], vec![(true, 8), (true, 9)]]
        );
        let page = store
            .list_messages(first.id, history(None, Some(6), 10, None))
            .await
            .expect("history");
        let bodies: Vec<(i64, &str)> = page.iter().map(|m| (m.seq, m.body.as_str())).collect();
        assert_eq!(bodies, [(7, "a7"), (8, "a8"), (9, "a9")]);
    }

    pub(in crate::storage) async fn messages_are_edited_reacted_to_and_deleted(
        _: String,
        store: Arc<dyn Store>,
    ) {
        let alice = user(&*store, "alice").await;
        let bob = user(&*store, "bob").await;
        let room = room_with(&*store, alice, &[bob]).await;
        let original = send(&*store, room.id, alice, "helo").await;
        let mut reply = new_message(room.id, bob, "typo");
        reply.reply_to = Some(original.id);
        let reply = store
            .create_message(reply)
            .await
            .expect("reply")
            .into_inner();
        assert_eq!(reply.reply_to, Some(original.id));
        assert_eq!(
            store.message_by_id(reply.id).await.expect("read"),
            Some(reply.clone())
        );

        let edited = store
            .update_message_body(
                original.id,
                MessageBody::parse("hello").expect("body"),
                t(20),
            )
            .await
            .expect("edit")
            .expect("exists");
        assert_eq!(
            (edited.body.as_str(), edited.edited_at, edited.seq),
            ("hello", Some(t(20)), 1)
        );

        let (up, heart) = (emoji("👍"), emoji("❤️"));
        assert!(
            store
                .add_reaction(original.id, alice, &up, t(21))
                .await
                .expect("r")
        );
        assert!(
            store
                .add_reaction(original.id, bob, &up, t(22))
                .await
                .expect("r")
        );
        assert!(
            store
                .add_reaction(original.id, bob, &heart, t(23))
                .await
                .expect("r")
        );
        assert!(
            !store
                .add_reaction(original.id, bob, &heart, t(24))
                .await
                .expect("r")
        );
        let read = store
            .message_by_id(original.id)
            .await
            .expect("read")
            .expect("exists");
        assert_eq!(read.reactions, counts(&[("👍", 2), ("❤️", 1)]));
        assert!(
            store
                .remove_reaction(original.id, alice, &up)
                .await
                .expect("r")
        );
        assert!(
            !store
                .remove_reaction(original.id, alice, &up)
                .await
                .expect("r")
        );
        let read = store
            .message_by_id(original.id)
            .await
            .expect("read")
            .expect("exists");
        assert_eq!(read.reactions, counts(&[("👍", 1), ("❤️", 1)]));

        // A tombstone keeps its seq, loses body and reactions, and takes no
        // more edits or reactions.
        let deleted = store
            .delete_message(original.id, t(30))
            .await
            .expect("delete")
            .expect("existed");
        assert_eq!(
            (deleted.body.as_str(), deleted.deleted, deleted.seq),
            ("", true, 1)
        );
        assert!(deleted.reactions.is_empty());
        assert_eq!(
            store.message_by_id(original.id).await.expect("read"),
            Some(deleted)
        );
        assert_eq!(
            store
                .delete_message(original.id, t(31))
                .await
                .expect("again"),
            None
        );
        assert_eq!(
            store
                .update_message_body(original.id, MessageBody::parse("x").expect("b"), t(32))
                .await
                .expect("edit deleted"),
            None
        );
        assert!(
            !store
                .add_reaction(original.id, bob, &up, t(33))
                .await
                .expect("r")
        );
        let page = store
            .list_messages(room.id, history(None, None, 10, None))
            .await
            .expect("history");
        assert_eq!(seqs(&page), vec![2, 1]);
        assert!(page[1].deleted && page[1].reactions.is_empty());

        assert_eq!(
            store.message_by_id(MessageId::new()).await.expect("read"),
            None
        );
        assert_eq!(
            store
                .delete_message(MessageId::new(), t(40))
                .await
                .expect("unknown"),
            None
        );
        assert_eq!(
            store
                .update_message_body(MessageId::new(), MessageBody::parse("x").expect("b"), t(40))
                .await
                .expect("unknown"),
            None
        );
    }

    pub(in crate::storage) async fn history_pages_both_ways_and_hides_blocked_authors(
        _: String,
        store: Arc<dyn Store>,
    ) {
        let alice = user(&*store, "alice").await;
        let bob = user(&*store, "bob").await;
        let carol = user(&*store, "carol").await;
        let room = room_with(&*store, alice, &[bob, carol]).await;
        let mut sent = Vec::new();
        for i in 1..=10 {
            let author = if i % 3 == 0 { bob } else { alice };
            sent.push(send(&*store, room.id, author, &format!("message {i}")).await);
        }
        let page = |before, after, limit, viewer| {
            let store = Arc::clone(&store);
            async move {
                store
                    .list_messages(room.id, history(before, after, limit, viewer))
                    .await
                    .expect("history")
            }
        };
        assert_eq!(seqs(&page(None, None, 3, None).await), vec![10, 9, 8]);
        assert_eq!(seqs(&page(Some(8), None, 3, None).await), vec![7, 6, 5]);
        assert_eq!(seqs(&page(Some(2), None, 3, None).await), vec![1]);
        assert_eq!(seqs(&page(Some(1), None, 3, None).await), Vec::<i64>::new());
        assert_eq!(seqs(&page(None, Some(7), 5, None).await), vec![8, 9, 10]);
        assert_eq!(seqs(&page(None, Some(2), 3, None).await), vec![3, 4, 5]);
        assert_eq!(seqs(&page(None, Some(0), 2, None).await), vec![1, 2]);
        assert_eq!(seqs(&page(Some(5), Some(2), 10, None).await), vec![3, 4]);
        assert_eq!(
            seqs(&page(None, Some(10), 5, None).await),
            Vec::<i64>::new()
        );
        assert_eq!(page(None, None, 1, None).await, vec![sent[9].clone()]);

        // Bob's messages (3, 6, 9) and reactions are hidden from carol, who
        // blocked him; the limit counts what is left.
        store
            .add_reaction(sent[0].id, bob, &emoji("👍"), t(20))
            .await
            .expect("react");
        store
            .add_reaction(sent[0].id, alice, &emoji("👍"), t(21))
            .await
            .expect("react");
        assert!(store.create_block(carol, bob, t(22)).await.expect("block"));
        assert_eq!(
            seqs(&page(None, None, 4, Some(carol)).await),
            vec![10, 8, 7, 5]
        );
        assert_eq!(
            seqs(&page(None, Some(0), 4, Some(carol)).await),
            vec![1, 2, 4, 5]
        );
        let first = page(Some(2), None, 1, Some(carol)).await;
        assert_eq!(first[0].reactions, counts(&[("👍", 1)]));
        let first = page(Some(2), None, 1, Some(alice)).await;
        assert_eq!(first[0].reactions, counts(&[("👍", 2)]));
        let first = page(Some(2), None, 1, None).await;
        assert_eq!(first[0].reactions, counts(&[("👍", 2)]));
        // Blocking is one-way.
        assert_eq!(
            seqs(&page(None, None, 4, Some(bob)).await),
            vec![10, 9, 8, 7]
        );
    }

    pub(in crate::storage) async fn unread_counts_look_at_the_newest_messages_only(
        _: String,
        store: Arc<dyn Store>,
    ) {
        let alice = user(&*store, "alice").await;
        let bob = user(&*store, "bob").await;
        let room = room_with(&*store, alice, &[bob]).await;
        let window = parley_actors::store::UNREAD_WINDOW;
        let batch = (0..window + 50)
            .map(|i| new_message(room.id, alice, &format!("m{i}")))
            .collect();
        store.create_messages(batch).await.expect("send");
        let unread = |user_id: UserId| {
            let store = Arc::clone(&store);
            async move { store.list_memberships(user_id).await.expect("rooms")[0].unread_count }
        };
        assert_eq!(unread(bob).await, window, "far behind: the window, no more");
        store
            .set_read_marker(room.id, bob, 100)
            .await
            .expect("read")
            .expect("a member");
        assert_eq!(
            unread(bob).await,
            window + 50 - 100,
            "within the window: exact"
        );
        assert_eq!(unread(alice).await, 0);
    }

    pub(in crate::storage) async fn unread_counts_skip_own_deleted_and_blocked_messages(
        _: String,
        store: Arc<dyn Store>,
    ) {
        let alice = user(&*store, "alice").await;
        let bob = user(&*store, "bob").await;
        let carol = user(&*store, "carol").await;
        let room = room_with(&*store, alice, &[bob, carol]).await;
        let quiet = room_with(&*store, carol, &[]).await;
        let unread = |user_id: UserId| {
            let store = Arc::clone(&store);
            async move {
                store
                    .list_memberships(user_id)
                    .await
                    .expect("memberships")
                    .into_iter()
                    .map(|m| (m.room.id, m.unread_count))
                    .collect::<BTreeMap<_, _>>()
            }
        };

        let mut from_alice = Vec::new();
        for i in 0..3 {
            from_alice.push(send(&*store, room.id, alice, &format!("a{i}")).await);
        }
        assert_eq!(unread(alice).await, BTreeMap::from([(room.id, 0)]));
        assert_eq!(unread(bob).await, BTreeMap::from([(room.id, 3)]));
        // Sending moves the sender's marker to their message.
        send(&*store, room.id, bob, "b").await;
        assert_eq!(unread(bob).await, BTreeMap::from([(room.id, 0)]));
        assert_eq!(unread(alice).await, BTreeMap::from([(room.id, 1)]));
        assert_eq!(
            unread(carol).await,
            BTreeMap::from([(room.id, 4), (quiet.id, 0)])
        );

        let memberships = store.list_memberships(carol).await.expect("memberships");
        let mine = memberships
            .iter()
            .find(|m| m.room.id == room.id)
            .expect("room listed");
        assert_eq!(
            (mine.role, mine.last_read_seq, mine.room.last_seq),
            (RoomRole::Member, 0, 4)
        );
        let owned = memberships
            .iter()
            .find(|m| m.room.id == quiet.id)
            .expect("own room listed");
        assert_eq!(owned.role, RoomRole::Owner);

        store.create_block(carol, bob, t(30)).await.expect("block");
        assert_eq!(unread(carol).await[&room.id], 3);
        store
            .delete_message(from_alice[0].id, t(31))
            .await
            .expect("delete");
        assert_eq!(unread(carol).await[&room.id], 2);

        // The marker only moves forward and never past the last seq.
        assert_eq!(
            store
                .set_read_marker(room.id, carol, 2)
                .await
                .expect("read"),
            Some(2)
        );
        assert_eq!(unread(carol).await[&room.id], 1);
        assert_eq!(
            store
                .set_read_marker(room.id, carol, 1)
                .await
                .expect("back"),
            Some(2)
        );
        assert_eq!(
            store
                .set_read_marker(room.id, carol, 100)
                .await
                .expect("past"),
            Some(4)
        );
        assert_eq!(unread(carol).await[&room.id], 0);
        let member = store.member(room.id, carol).await.expect("member");
        assert_eq!(member.map(|m| m.last_read_seq), Some(4));
        let stranger = user(&*store, "stranger").await;
        assert_eq!(
            store
                .set_read_marker(room.id, stranger, 1)
                .await
                .expect("stranger"),
            None
        );
        assert!(unread(stranger).await.is_empty());
    }

    // ---- search -------------------------------------------------------------

    pub(in crate::storage) async fn search_covers_my_rooms_and_tolerates_any_input(
        _: String,
        store: Arc<dyn Store>,
    ) {
        let alice = user(&*store, "alice").await;
        let bob = user(&*store, "bob").await;
        let carol = user(&*store, "carol").await;
        let shared = room_with(&*store, alice, &[bob]).await;
        let other = room_with(&*store, alice, &[]).await;
        let secret = room_with(&*store, carol, &[]).await;
        let fox = send(&*store, shared.id, alice, "The quick brown fox").await;
        let triple = send(&*store, shared.id, bob, "quick quick quick").await;
        send(&*store, shared.id, bob, "a lazy dog").await;
        let elsewhere = send(&*store, other.id, alice, "Quick thinking").await;
        send(&*store, secret.id, carol, "quick secret").await;

        let search = |user_id: UserId, q: &'static str, room_id: Option<RoomId>| {
            let store = Arc::clone(&store);
            async move {
                store
                    .search_messages(user_id, q, room_id, 20)
                    .await
                    .unwrap_or_else(|e| panic!("search {q:?}: {e:?}"))
            }
        };
        let ids = |found: Vec<Message>| found.into_iter().map(|m| m.id).collect::<Vec<_>>();

        // Best match first: the message that says it three times.
        let found = search(alice, "QUICK", None).await;
        assert_eq!(found.len(), 3, "{found:?}");
        assert_eq!(found[0].id, triple.id);
        let mut rest = ids(found[1..].to_vec());
        rest.sort();
        let mut expected = vec![fox.id, elsewhere.id];
        expected.sort();
        assert_eq!(rest, expected);
        // Only rooms I am in; a room filter narrows further.
        assert_eq!(ids(search(bob, "quick", None).await).len(), 2);
        assert_eq!(
            ids(search(alice, "quick", Some(other.id)).await),
            vec![elsewhere.id]
        );
        assert!(search(alice, "quick", Some(secret.id)).await.is_empty());
        assert!(search(alice, "secret", None).await.is_empty());
        // Every word must match.
        assert_eq!(ids(search(alice, "brown quick", None).await), vec![fox.id]);
        assert!(search(alice, "brown lazy", None).await.is_empty());

        // Blocked authors and deleted messages are left out; edits are
        // searched by their new text.
        store.create_block(alice, bob, t(40)).await.expect("block");
        assert_eq!(search(alice, "quick", None).await.len(), 2);
        assert!(search(alice, "lazy", None).await.is_empty());
        store.delete_message(fox.id, t(41)).await.expect("delete");
        assert_eq!(ids(search(alice, "quick", None).await), vec![elsewhere.id]);
        store
            .update_message_body(
                elsewhere.id,
                MessageBody::parse("slow thinking").expect("body"),
                t(42),
            )
            .await
            .expect("edit");
        assert!(search(alice, "quick", None).await.is_empty());
        assert_eq!(ids(search(alice, "slow", None).await), vec![elsewhere.id]);

        // Operators and punctuation are text, never a syntax error.
        for q in [
            "\"",
            "\"\"",
            "*",
            "NEAR(",
            "NEAR(a b)",
            "-",
            "OR",
            "AND",
            "NOT",
            "a OR",
            "(",
            ")",
            "^",
            ":",
            "body:slow",
            "'",
            "\\",
            "%",
            "_",
            "{}",
            "[",
            "+",
            "-slow",
            "slow*",
            "\"slow",
            "sl\"ow",
            "",
            "   ",
            "🙂",
        ] {
            search(alice, q, None).await;
        }
        // Quotes around a word do not hide it.
        assert_eq!(
            ids(search(alice, "\"slow\"", None).await),
            vec![elsewhere.id]
        );
        assert_eq!(ids(search(alice, "slow!", None).await), vec![elsewhere.id]);
    }

    // ---- blocks -------------------------------------------------------------

    pub(in crate::storage) async fn blocks_are_created_listed_and_lifted(
        _: String,
        store: Arc<dyn Store>,
    ) {
        let alice = user(&*store, "alice").await;
        let bob = user(&*store, "bob").await;
        let carol = user(&*store, "carol").await;
        assert!(store.create_block(alice, bob, t(1)).await.expect("block"));
        assert!(!store.create_block(alice, bob, t(2)).await.expect("again"));
        assert!(store.create_block(alice, carol, t(3)).await.expect("block"));
        assert!(store.create_block(carol, alice, t(4)).await.expect("block"));

        let listed = store.list_blocks(alice).await.expect("list");
        assert_eq!(
            listed
                .iter()
                .map(|b| (b.blocker_id, b.blocked_id, b.created_at))
                .collect::<Vec<_>>(),
            vec![(alice, carol, t(3)), (alice, bob, t(1))]
        );
        assert!(store.list_blocks(bob).await.expect("none").is_empty());
        let mut all = store.all_blocks().await.expect("all");
        all.sort();
        let mut expected = vec![(alice, bob), (alice, carol), (carol, alice)];
        expected.sort();
        assert_eq!(all, expected);

        assert!(store.delete_block(alice, bob).await.expect("unblock"));
        assert!(!store.delete_block(alice, bob).await.expect("again"));
        assert_eq!(store.list_blocks(alice).await.expect("list").len(), 1);
        assert_eq!(store.all_blocks().await.expect("all").len(), 2);
    }

    // ---- plain unit tests -----------------------------------------------------

    #[test]
    fn dm_keys_do_not_depend_on_the_order() {
        let (a, b) = (UserId::new(), UserId::new());
        assert_eq!(super::dm_key(a, b), super::dm_key(b, a));
        let (low, high) = if a.to_string() < b.to_string() {
            (a, b)
        } else {
            (b, a)
        };
        assert_eq!(super::dm_key(a, b), format!("{low}:{high}"));
    }

    #[test]
    fn name_patterns_escape_like_wildcards() {
        assert_eq!(super::name_pattern(None), None);
        assert_eq!(super::name_pattern(Some("  ")), None);
        assert_eq!(
            super::name_pattern(Some(" Rust ")).as_deref(),
            Some("%rust%")
        );
        assert_eq!(
            super::name_pattern(Some("100%_\\")).as_deref(),
            Some("%100\\%\\_\\\\%")
        );
    }

    #[test]
    fn reaction_queries_number_their_placeholders() {
        let sql = super::reactions_sql(3);
        assert!(sql.contains("in ($2, $3, $4)"), "{sql}");
    }
}
