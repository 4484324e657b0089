//! [`Store`](parley_actors::store::Store) on SQLite: one file, no server, the
//! default for a single node.
//!
//! The SQL is shared with PostgreSQL (`storage/sql/`, mounted below for
//! this backend); this file holds what is SQLite's own: the connect options,
//! the dedicated writer connection, the migrations folder and full-text
//! search (FTS5, indexed in a file of its own: `storage/search.rs`).

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use parley_actors::store::StoreResult;
use sqlx::SqlitePool;
use sqlx::migrate::Migrator;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use super::ACQUIRE_TIMEOUT;
use super::errors::{db_err, migrate_err};
use super::rows::MessageRow;
use super::search::{self, SearchIndex};

/// The store type the shared SQL in `sql/` is compiled for here.
type SqlStore = SqliteStore;

/// The database the shared SQL in `sql/` is compiled for here.
type Db = sqlx::Sqlite;

// The same folder is mounted by `postgres.rs`: once per backend, on purpose.
#[allow(clippy::duplicate_mod)]
#[path = "sql/mod.rs"]
mod sql;

/// The SQLite schema, embedded at build time.
pub(super) static MIGRATOR: Migrator = sqlx::migrate!("migrations/sqlite");

/// How long a statement waits for another connection's write lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The store on a SQLite database.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pub(super) pool: SqlitePool,
    /// One connection, kept open, that writes every message send (the
    /// message writer's group commits). SQLite has one writer at a time
    /// anyway; on its own connection the writer keeps its page cache,
    /// which a pool connection loses whenever another connection wrote
    /// since its last use.
    pub(super) writer: SqlitePool,
    /// The full-text index, in a file of its own (see `storage/search.rs`).
    pub(super) search: Arc<SearchIndex>,
}

impl SqliteStore {
    /// Opens (creating if missing) the database at `database_url` and applies
    /// pending migrations.
    pub async fn connect(database_url: &str, max_connections: u32) -> StoreResult<Self> {
        let index = if is_in_memory(database_url) {
            ":memory:".to_owned()
        } else {
            let options = connect_options(database_url)?;
            search::index_path(options.get_filename())
                .to_string_lossy()
                .into_owned()
        };
        let pool = open_attached(database_url, max_connections, index).await?;
        MIGRATOR.run(&pool).await.map_err(migrate_err)?;
        let writer = if is_in_memory(database_url) {
            // The pool's one connection is the whole database.
            pool.clone()
        } else {
            open_writer(database_url).await?
        };
        let search = SearchIndex::start(pool.clone()).await?;
        Ok(Self {
            pool,
            writer,
            search,
        })
    }
}

impl SqliteStore {
    /// Full-text search for `sql/search.rs`: messages matching every word
    /// of `query` in rooms `user_id` is a member of (only `room_id`, if
    /// given), not deleted and not by someone they blocked; best match
    /// (bm25) first, then newest.
    async fn search_rows(
        &self,
        user_id: &str,
        query: &str,
        room_id: Option<&str>,
        limit: i64,
    ) -> StoreResult<Vec<MessageRow>> {
        let Some(fts_query) = fts_query(query) else {
            return Ok(Vec::new());
        };
        self.search.before_search().await?;
        sqlx::query_as::<_, MessageRow>(concat!(
            "select ",
            m_message_columns!(),
            " from search.messages_fts \
             join messages m on m.num = messages_fts.rowid \
             join room_members rm on rm.room_id = m.room_id and rm.user_id = $1 \
             where messages_fts match $2 \
               and not m.deleted \
               and ($3 is null or m.room_id = $3) \
               and not exists (select 1 from blocks b \
                               where b.blocker_id = $1 and b.blocked_id = m.author_id) \
             order by messages_fts.rank, m.created_at desc, m.id desc \
             limit $4"
        ))
        .bind(user_id)
        .bind(fts_query)
        .bind(room_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)
    }
}

/// Turns user input into an FTS5 query that cannot be a syntax error: each
/// whitespace-separated word becomes a quoted phrase (inner quotes doubled),
/// so operators (`OR`, `NEAR(`, `-`, `*`, `^`, `:`) are plain text, and the
/// phrases are ANDed. Words without a letter or digit are dropped (the
/// tokenizer would make empty phrases of them); `None` when nothing is left.
pub(super) fn fts_query(raw: &str) -> Option<String> {
    let phrases: Vec<String> = raw
        .split_whitespace()
        .filter(|word| word.chars().any(char::is_alphanumeric))
        .map(|word| format!("\"{}\"", word.replace('"', "\"\"")))
        .collect();
    (!phrases.is_empty()).then(|| phrases.join(" "))
}

/// Opens a pool without touching the schema.
pub(super) async fn open(database_url: &str, max_connections: u32) -> StoreResult<SqlitePool> {
    let options = connect_options(database_url)?;
    pool_options(database_url, max_connections)
        .connect_with(options)
        .await
        .map_err(db_err)
}

/// Opens the main pool: every connection has the search index (the file
/// `index`, or `:memory:`) attached as `search`.
async fn open_attached(
    database_url: &str,
    max_connections: u32,
    index: String,
) -> StoreResult<SqlitePool> {
    let options = connect_options(database_url)?;
    pool_options(database_url, max_connections)
        .after_connect(move |conn, _| {
            let index = index.clone();
            Box::pin(async move { search::attach(conn, &index).await })
        })
        .connect_with(options)
        .await
        .map_err(db_err)
}

fn pool_options(database_url: &str, max_connections: u32) -> SqlitePoolOptions {
    let pool = SqlitePoolOptions::new().acquire_timeout(ACQUIRE_TIMEOUT);
    if is_in_memory(database_url) {
        // An in-memory database lives as long as a connection to it: keep
        // exactly one, forever, so every caller sees the same data.
        pool.max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
    } else {
        pool.max_connections(max_connections.max(1))
    }
}

/// The message writer's own connection: one, opened now and never closed
/// for idleness or age, so its page cache stays warm.
async fn open_writer(database_url: &str) -> StoreResult<SqlitePool> {
    SqlitePoolOptions::new()
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .max_connections(1)
        .min_connections(1)
        .idle_timeout(None)
        .max_lifetime(None)
        .connect_with(connect_options(database_url)?)
        .await
        .map_err(db_err)
}

fn connect_options(database_url: &str) -> StoreResult<SqliteConnectOptions> {
    Ok(SqliteConnectOptions::from_str(database_url)
        .map_err(db_err)?
        .create_if_missing(true)
        // WAL lets readers run while one connection writes; with it,
        // synchronous=NORMAL is durable across application crashes and only
        // risks the last commits on power loss.
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .foreign_keys(true)
        .busy_timeout(BUSY_TIMEOUT))
}

/// Whether the URL names an in-memory database (`sqlite::memory:`,
/// `sqlite://:memory:`, `…?mode=memory`).
pub(super) fn is_in_memory(database_url: &str) -> bool {
    database_url.contains(":memory:") || database_url.contains("mode=memory")
}
