//! [`Store`](parley_actors::store::Store) on SQLite: one file, no server, the
//! default for a single node.
//!
//! The SQL is shared with PostgreSQL (see [`impl_store!`](super)); this file
//! holds what is SQLite's own: the connect options and the migrations.

use std::str::FromStr;
use std::time::Duration;

use parley_actors::store::StoreResult;
use sqlx::SqlitePool;
use sqlx::migrate::Migrator;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use super::{ACQUIRE_TIMEOUT, db_err, migrate_err, revert_latest};

/// The SQLite schema, embedded at build time.
static MIGRATOR: Migrator = sqlx::migrate!("migrations/sqlite");

/// How long a statement waits for another connection's write lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The store on a SQLite database.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if missing) the database at `database_url` and applies
    /// pending migrations.
    pub async fn connect(database_url: &str, max_connections: u32) -> StoreResult<Self> {
        let pool = open(database_url, max_connections).await?;
        MIGRATOR.run(&pool).await.map_err(migrate_err)?;
        Ok(Self { pool })
    }
}

impl_store!(SqliteStore);

/// Opens a pool without touching the schema.
async fn open(database_url: &str, max_connections: u32) -> StoreResult<SqlitePool> {
    let options = SqliteConnectOptions::from_str(database_url)
        .map_err(db_err)?
        .create_if_missing(true)
        // WAL lets readers run while one connection writes; with it,
        // synchronous=NORMAL is durable across application crashes and only
        // risks the last commits on power loss.
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .foreign_keys(true)
        .busy_timeout(BUSY_TIMEOUT);
    let pool = SqlitePoolOptions::new().acquire_timeout(ACQUIRE_TIMEOUT);
    let pool = if is_in_memory(database_url) {
        // An in-memory database lives as long as a connection to it: keep
        // exactly one, forever, so every caller sees the same data.
        pool.max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
    } else {
        pool.max_connections(max_connections.max(1))
    };
    pool.connect_with(options).await.map_err(db_err)
}

/// Whether the URL names an in-memory database (`sqlite::memory:`,
/// `sqlite://:memory:`, `…?mode=memory`).
fn is_in_memory(database_url: &str) -> bool {
    database_url.contains(":memory:") || database_url.contains("mode=memory")
}

/// See [`super::migrate_up`].
pub(super) async fn migrate_up(database_url: &str) -> StoreResult<()> {
    let pool = open(database_url, 1).await?;
    let result = MIGRATOR.run(&pool).await.map_err(migrate_err);
    pool.close().await;
    result
}

/// See [`super::migrate_down`].
pub(super) async fn migrate_down(database_url: &str, steps: u32) -> StoreResult<Vec<i64>> {
    let pool = open(database_url, 1).await?;
    let mut conn = pool.acquire().await.map_err(db_err)?;
    let result = revert_latest(&mut *conn, &MIGRATOR, steps).await;
    drop(conn);
    pool.close().await;
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::tests::TestDb;

    /// A fresh database file in a temporary directory, removed afterwards.
    async fn fresh_db() -> Option<TestDb> {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite:{}", dir.path().join("parley.db").display());
        let store = crate::storage::connect(&url, 4)
            .await
            .expect("connect to a fresh SQLite file");
        Some(TestDb::new(url, store, Box::new(dir)))
    }

    crate::storage::tests::store_test_suite!(fresh_db);

    #[tokio::test]
    async fn in_memory_databases_keep_their_data_across_calls() {
        let store = crate::storage::connect("sqlite::memory:", 8)
            .await
            .expect("in-memory database");
        let user = crate::storage::tests::new_user("memo");
        let id = user.id;
        store.create_user(user).await.expect("create");
        // A second pooled connection would see an empty database.
        for _ in 0..3 {
            assert!(store.user_by_id(id).await.expect("read").is_some());
        }
        assert!(is_in_memory("sqlite::memory:"));
        assert!(is_in_memory("sqlite://?mode=memory"));
        assert!(!is_in_memory("sqlite:data/parley.db"));
    }

    #[tokio::test]
    async fn the_database_file_is_created_with_wal() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("new.db");
        let url = format!("sqlite://{}", path.display());
        let store = SqliteStore::connect(&url, 2).await.expect("connect");
        assert!(path.exists());
        let mode: (String,) = sqlx::query_as("pragma journal_mode")
            .fetch_one(&store.pool)
            .await
            .expect("pragma");
        assert_eq!(mode.0, "wal");
        let fk: (i64,) = sqlx::query_as("pragma foreign_keys")
            .fetch_one(&store.pool)
            .await
            .expect("pragma");
        assert_eq!(fk.0, 1);
    }
}
