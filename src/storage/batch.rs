//! The group commit's bookkeeping and statement text: a batch of messages
//! on its way into the store (retried and repeated client ids answered
//! without a write), the multi-row `values` lists of the inserts, and the
//! reaction counts added to message rows afterwards.
//!
//! Nothing here touches a database; `sql/messages.rs` runs the statements.

use std::collections::hash_map::Entry;
use std::collections::{BTreeMap, HashMap};

use parley_actors::domain::UserId;
use parley_actors::store::{Created, Message, NewMessage, StoreError, StoreResult};

use super::rows::MessageRow;

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
