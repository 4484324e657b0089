//! SQLite's full-text index, in a database file of its own beside the main
//! one (`parley.db` → `parley.search.db`), filled by a background indexer.
//!
//! SQLite has one writer per database file. With the index in the main
//! file, every message commit also flushed an FTS5 segment and, now and
//! then, ran one of FTS5's segment merges, which on a large index held the
//! write lock for 100–300 ms while every room's sends waited (see
//! `loadtest/RESULTS.md`, the runs of 2026-11-30 20:33 UTC). In a file of
//! its own the index has its own write lock: the indexer writes it in
//! batches, merges run there, and message commits never wait for either.
//!
//! Every connection of the main pool has the index attached as `search`, so
//! a search is one query joining `search.messages_fts` to `messages`.
//!
//! The index is contentless (`content = ''`, `contentless_delete = 1`):
//! it holds tokens, and the text stays in `messages`. What it covers:
//! * every row with `num <= hwm` (`search.search_state`), minus what
//!   `search_dirty` still lists. New rows are picked up by `num`, upwards.
//! * rows that change after they were indexed (edits, tombstones, rows
//!   removed with their room) are listed in `search_dirty` by triggers in
//!   the main database (migration 0003); the indexer drops their tokens and
//!   indexes what the row holds now.
//!
//! SQLite reuses the `num` of the newest row when that row is deleted. The
//! indexer lowers `hwm` to the newest `num` it can see on every pass, so a
//! reused number is always above it and gets indexed as a new row.
//!
//! A search first brings the index up to date (within a bound), so what a
//! user has just sent is found. A missing or outdated index file, or one
//! made for another generation of the database (see `prepare_schema`), is
//! rebuilt from the messages in the background. After restoring the main
//! file from a backup, remove the index file: a restored file has the same
//! generation as the one it was copied from.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};
use std::time::Duration;

use parley_actors::store::StoreResult;
use sqlx::{SqliteConnection, SqlitePool};

use super::errors::db_err;

/// Bumped when the index's definition changes; an index file of another
/// version is emptied and rebuilt.
const INDEX_VERSION: i64 = 1;

/// New rows indexed per pass (one transaction on the index file).
const NEW_ROWS_PER_PASS: i64 = 2000;

/// Changed rows (`search_dirty` entries) processed per pass.
const CHANGES_PER_PASS: i64 = 1000;

/// How often the background indexer looks for new rows.
const INTERVAL: Duration = Duration::from_millis(1000);

/// The most passes a search runs to catch up before it answers from the
/// index as it is (a rebuild of a large database goes on in the background).
const SEARCH_CATCH_UP_PASSES: usize = 8;

/// Where the index of the database at `db_path` lives.
pub(super) fn index_path(db_path: &Path) -> PathBuf {
    let stem = db_path
        .file_stem()
        .map_or_else(|| "parley".into(), |s| s.to_string_lossy().into_owned());
    db_path.with_file_name(format!("{stem}.search.db"))
}

/// Attaches the index as `search` on a new connection of the main pool.
/// The index file is created if missing (in memory for an in-memory
/// database).
pub(super) async fn attach(conn: &mut SqliteConnection, index: &str) -> sqlx::Result<()> {
    sqlx::query("attach database $1 as search")
        .bind(index)
        .execute(&mut *conn)
        .await?;
    // Only the indexer writes the index; it is derived data, rebuilt from
    // the messages when lost, so normal sync is plenty.
    sqlx::query("pragma search.journal_mode = wal")
        .execute(&mut *conn)
        .await?;
    sqlx::query("pragma search.synchronous = normal")
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// The indexer of one database: a background task plus catch-up on search.
#[derive(Debug)]
pub(super) struct SearchIndex {
    /// The main pool (each connection has the index attached).
    pool: SqlitePool,
    /// One pass at a time: the background task and searches share it.
    pass_lock: tokio::sync::Mutex<()>,
}

impl SearchIndex {
    /// Creates the index schema if needed (emptying an index of another
    /// version) and starts the background indexer, which ends when the
    /// returned handle is dropped or the pool is closed.
    pub(super) async fn start(pool: SqlitePool) -> StoreResult<Arc<Self>> {
        prepare_schema(&pool).await?;
        let index = Arc::new(Self {
            pool,
            pass_lock: tokio::sync::Mutex::new(()),
        });
        tokio::spawn(background(Arc::downgrade(&index)));
        Ok(index)
    }

    /// Runs passes until the index has caught up with the messages, at most
    /// `max_passes`. Returns whether it caught up.
    pub(super) async fn catch_up(&self, max_passes: usize) -> StoreResult<bool> {
        let _one_at_a_time = self.pass_lock.lock().await;
        for _ in 0..max_passes {
            if !self.pass().await? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Brings the index up to date before a search, within a bound.
    pub(super) async fn before_search(&self) -> StoreResult<()> {
        self.catch_up(SEARCH_CATCH_UP_PASSES).await.map(|_| ())
    }

    /// One batch, in one transaction on the index file (reading one
    /// snapshot of the main file). Returns whether more work is waiting.
    async fn pass(&self) -> StoreResult<bool> {
        let started = std::time::Instant::now();
        let more = self.index_batch().await;
        metrics::histogram!(crate::telemetry::SEARCH_INDEX_PASS_DURATION)
            .record(started.elapsed().as_secs_f64());
        more
    }

    async fn index_batch(&self) -> StoreResult<bool> {
        let mut tx = self.pool.begin().await.map_err(db_err)?;
        let (hwm,): (i64,) = sqlx::query_as("select hwm from search.search_state")
            .fetch_one(&mut *tx)
            .await
            .map_err(db_err)?;
        // Changed rows first: a changed row's old tokens go, and whatever
        // the row holds now (if it is still there and already counted as
        // indexed) goes in.
        let changes: Vec<(i64, i64)> =
            sqlx::query_as("select id, num from search_dirty order by id limit $1")
                .bind(CHANGES_PER_PASS)
                .fetch_all(&mut *tx)
                .await
                .map_err(db_err)?;
        let last_change = changes.last().map(|&(id, _)| id);
        if !changes.is_empty() {
            let nums = serde_json::Value::from(changes.iter().map(|&(_, n)| n).collect::<Vec<_>>())
                .to_string();
            sqlx::query(
                "delete from search.messages_fts \
                 where rowid in (select value from json_each($1))",
            )
            .bind(&nums)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
            sqlx::query(
                "insert into search.messages_fts (rowid, body) \
                 select num, body from messages \
                 where num in (select value from json_each($1)) \
                   and num <= $2 and not deleted",
            )
            .bind(&nums)
            .bind(hwm)
            .execute(&mut *tx)
            .await
            .map_err(db_err)?;
        }
        let more_changes = i64::try_from(changes.len()).unwrap_or(i64::MAX) >= CHANGES_PER_PASS;
        // New rows, only once every listed change is done: a number above
        // the newest row may have been indexed before, deleted, and reused.
        let mut more_rows = false;
        if !more_changes {
            let (top,): (i64,) = sqlx::query_as("select coalesce(max(num), 0) from messages")
                .fetch_one(&mut *tx)
                .await
                .map_err(db_err)?;
            let from = hwm.min(top);
            let upto = top.min(from.saturating_add(NEW_ROWS_PER_PASS));
            if upto > from {
                let indexed = sqlx::query(
                    "insert into search.messages_fts (rowid, body) \
                     select num, body from messages \
                     where num > $1 and num <= $2 and not deleted",
                )
                .bind(from)
                .bind(upto)
                .execute(&mut *tx)
                .await
                .map_err(db_err)?;
                metrics::counter!(crate::telemetry::SEARCH_INDEXED)
                    .increment(indexed.rows_affected());
            }
            metrics::gauge!(crate::telemetry::SEARCH_INDEX_BACKLOG).set((top - upto) as f64);
            if upto != hwm {
                sqlx::query("update search.search_state set hwm = $1")
                    .bind(upto)
                    .execute(&mut *tx)
                    .await
                    .map_err(db_err)?;
            }
            more_rows = upto < top;
        }
        tx.commit().await.map_err(db_err)?;
        if let Some(last) = last_change {
            // A separate, short write on the main file. Lost to a crash
            // between the two commits, the entries are processed again,
            // which gives the same result.
            sqlx::query("delete from search_dirty where id <= $1")
                .bind(last)
                .execute(&self.pool)
                .await
                .map_err(db_err)?;
        }
        Ok(more_changes || more_rows)
    }
}

/// Creates the index tables, or empties them when they were made by
/// another version of this code or for another generation of the main
/// database (`search_epoch`, which migration 0003 sets anew each time it
/// runs: a database taken back to 0002, changed by an older binary and
/// migrated forward again gets an index rebuilt from scratch).
async fn prepare_schema(pool: &SqlitePool) -> StoreResult<()> {
    let mut conn = pool.acquire().await.map_err(db_err)?;
    let (version,): (i64,) = sqlx::query_as("pragma search.user_version")
        .fetch_one(&mut *conn)
        .await
        .map_err(db_err)?;
    let (epoch,): (String,) = sqlx::query_as("select epoch from main.search_epoch")
        .fetch_one(&mut *conn)
        .await
        .map_err(db_err)?;
    let built_for: Option<String> = if version == INDEX_VERSION {
        sqlx::query_as::<_, (String,)>("select epoch from search.search_state")
            .fetch_optional(&mut *conn)
            .await
            .map_err(db_err)?
            .map(|(e,)| e)
    } else {
        None
    };
    if built_for.as_deref() == Some(epoch.as_str()) {
        return Ok(());
    }
    if version != 0 {
        tracing::warn!(
            found = version,
            wanted = INDEX_VERSION,
            "the search index was made by another version or for another database; rebuilding it"
        );
    }
    for sql in [
        "drop table if exists search.messages_fts",
        "drop table if exists search.search_state",
        "create virtual table search.messages_fts using fts5 \
         (body, content = '', contentless_delete = 1)",
        "create table search.search_state (hwm integer not null, epoch text not null) strict",
    ] {
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&mut *conn)
            .await
            .map_err(db_err)?;
    }
    sqlx::query("insert into search.search_state (hwm, epoch) values (0, $1)")
        .bind(&epoch)
        .execute(&mut *conn)
        .await
        .map_err(db_err)?;
    // Set last: an index left half made by a crash is made again.
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "pragma search.user_version = {INDEX_VERSION}"
    )))
    .execute(&mut *conn)
    .await
    .map_err(db_err)?;
    Ok(())
}

/// Indexes new and changed rows every `INTERVAL`, straight on while there
/// is more; ends when the index is dropped or its pool closed.
async fn background(index: Weak<SearchIndex>) {
    let mut failures = 0u32;
    loop {
        let Some(index) = index.upgrade() else {
            return;
        };
        if index.pool.is_closed() {
            return;
        }
        match index.catch_up(1).await {
            Ok(false) => {
                // More is waiting (a backlog or a rebuild): go on, letting
                // other tasks run in between.
                failures = 0;
                drop(index);
                tokio::task::yield_now().await;
                continue;
            }
            Ok(true) => failures = 0,
            Err(e) => {
                if index.pool.is_closed() {
                    return;
                }
                failures = failures.saturating_add(1);
                tracing::warn!(error = %e, failures, "search indexing failed; retrying");
            }
        }
        drop(index);
        tokio::time::sleep(INTERVAL).await;
    }
}
