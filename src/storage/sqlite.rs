//! [`Store`](parley_actors::store::Store) on SQLite: one file, no server, the
//! default for a single node.
//!
//! The SQL is shared with PostgreSQL (`impl_store!` in `storage/mod.rs`,
//! `impl_chat_store!` in `storage/chat.rs`); this file holds what is SQLite's
//! own: the connect options, the migrations and full-text search (FTS5).

use std::str::FromStr;
use std::time::Duration;

use parley_actors::store::StoreResult;
use sqlx::SqlitePool;
use sqlx::migrate::Migrator;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use super::chat::MessageRow;
use super::{ACQUIRE_TIMEOUT, db_err, migrate_err, revert_latest};

/// The SQLite schema, embedded at build time.
static MIGRATOR: Migrator = sqlx::migrate!("migrations/sqlite");

/// How long a statement waits for another connection's write lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The store on a SQLite database.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    /// One connection, kept open, that writes every message send (the
    /// message writer's group commits). SQLite has one writer at a time
    /// anyway; on its own connection the writer keeps its page cache,
    /// which a pool connection loses whenever another connection wrote
    /// since its last use.
    writer: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if missing) the database at `database_url` and applies
    /// pending migrations.
    pub async fn connect(database_url: &str, max_connections: u32) -> StoreResult<Self> {
        let pool = open(database_url, max_connections).await?;
        MIGRATOR.run(&pool).await.map_err(migrate_err)?;
        let writer = if is_in_memory(database_url) {
            // The pool's one connection is the whole database.
            pool.clone()
        } else {
            open_writer(database_url).await?
        };
        Ok(Self { pool, writer })
    }
}

impl_store!(SqliteStore);
impl_chat_store!(SqliteStore, sqlx::Sqlite);

impl SqliteStore {
    /// Full-text search for `impl_chat_store!`: messages matching every word
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
        sqlx::query_as::<_, MessageRow>(concat!(
            "select ",
            m_message_columns!(),
            " from messages_fts \
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
fn fts_query(raw: &str) -> Option<String> {
    let phrases: Vec<String> = raw
        .split_whitespace()
        .filter(|word| word.chars().any(char::is_alphanumeric))
        .map(|word| format!("\"{}\"", word.replace('"', "\"\"")))
        .collect();
    (!phrases.is_empty()).then(|| phrases.join(" "))
}

/// Opens a pool without touching the schema.
async fn open(database_url: &str, max_connections: u32) -> StoreResult<SqlitePool> {
    let options = connect_options(database_url)?;
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

    #[test]
    fn search_input_becomes_quoted_phrases() {
        assert_eq!(fts_query(""), None);
        assert_eq!(fts_query("  \t "), None);
        assert_eq!(fts_query("\" * - ( )"), None);
        assert_eq!(
            fts_query("quick OR NEAR(fox"),
            Some("\"quick\" \"OR\" \"NEAR(fox\"".to_owned())
        );
        assert_eq!(
            fts_query("say \"hi\""),
            Some("\"say\" \"\"\"hi\"\"\"".to_owned())
        );
    }

    #[tokio::test]
    async fn the_search_index_follows_edits_deletes_and_cascades() {
        use parley_actors::domain::{MessageBody, MessageId, RoomId, RoomName, Visibility};
        use parley_actors::store::{ChatStore, NewMessage, NewRoom, Store};

        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite:{}", dir.path().join("fts.db").display());
        let store = SqliteStore::connect(&url, 2).await.expect("connect");
        let owner = store
            .create_user(crate::storage::tests::new_user("owner"))
            .await
            .expect("user")
            .id;
        let at = crate::storage::tests::t(0);
        let room = store
            .create_room(NewRoom {
                id: RoomId::new(),
                name: RoomName::parse("room").expect("name"),
                topic: None,
                visibility: Visibility::Public,
                owner,
                created_at: at,
            })
            .await
            .expect("room");
        let mut ids = Vec::new();
        for body in ["alpha beta", "gamma", "delta"] {
            let new = NewMessage {
                id: MessageId::new(),
                room_id: room.id,
                author_id: owner,
                body: MessageBody::parse(body).expect("body"),
                reply_to: None,
                client_id: None,
                created_at: at,
            };
            ids.push(
                store
                    .create_message(new)
                    .await
                    .expect("send")
                    .into_inner()
                    .id,
            );
        }
        let check = || async {
            // Compares the index with the content table; fails on any drift.
            sqlx::query(
                "insert into messages_fts (messages_fts, rank) values ('integrity-check', 1)",
            )
            .execute(&store.pool)
            .await
            .expect("index in step with messages");
        };
        check().await;
        store
            .update_message_body(ids[0], MessageBody::parse("epsilon").expect("body"), at)
            .await
            .expect("edit");
        store.delete_message(ids[1], at).await.expect("delete");
        check().await;
        // The vacuum would renumber implicit rowids; `num` keeps them.
        sqlx::query("vacuum")
            .execute(&store.pool)
            .await
            .expect("vacuum");
        check().await;
        store.delete_room(room.id).await.expect("delete room");
        check().await;
        let left: (i64,) =
            sqlx::query_as("select count(*) from messages_fts where messages_fts match 'epsilon'")
                .fetch_one(&store.pool)
                .await
                .expect("count");
        assert_eq!(left.0, 0);
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
