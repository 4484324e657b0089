//! [`Store`](parley_actors::store::Store) on PostgreSQL, for larger and
//! clustered deployments (`PARLEY_DATABASE_URL=postgres://…`).
//!
//! The SQL is shared with SQLite (`storage/sql/`, mounted below for this
//! backend); this file holds what is PostgreSQL's own: the connect options,
//! the migrations folder and full-text search (`tsvector`).

use std::str::FromStr;

use parley_actors::store::StoreResult;
use sqlx::PgPool;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use super::ACQUIRE_TIMEOUT;
use super::errors::{db_err, migrate_err};
use super::rows::MessageRow;

/// The store type the shared SQL in `sql/` is compiled for here.
type SqlStore = PgStore;

/// The database the shared SQL in `sql/` is compiled for here.
type Db = sqlx::Postgres;

// The same folder is mounted by `sqlite.rs`: once per backend, on purpose.
#[allow(clippy::duplicate_mod)]
#[path = "sql/mod.rs"]
mod sql;

/// The PostgreSQL schema, embedded at build time.
pub(super) static MIGRATOR: Migrator = sqlx::migrate!("migrations/postgres");

/// The store on a PostgreSQL database.
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
    /// Where message sends are written; the same pool (PostgreSQL takes
    /// concurrent writers).
    writer: PgPool,
}

impl PgStore {
    /// Connects to `database_url` and applies pending migrations (under
    /// sqlx's advisory lock, so several nodes may start at once).
    pub async fn connect(database_url: &str, max_connections: u32) -> StoreResult<Self> {
        let pool = open(database_url, max_connections).await?;
        MIGRATOR.run(&pool).await.map_err(migrate_err)?;
        Ok(Self {
            writer: pool.clone(),
            pool,
        })
    }
}

impl PgStore {
    /// Full-text search for `sql/search.rs`: messages matching every word
    /// of `query` in rooms `user_id` is a member of (only `room_id`, if
    /// given), not deleted and not by someone they blocked; best match
    /// (`ts_rank`) first, then newest.
    ///
    /// `plainto_tsquery` reads the input as plain words to AND, like the
    /// SQLite side, and never fails on punctuation or operators.
    async fn search_rows(
        &self,
        user_id: &str,
        query: &str,
        room_id: Option<&str>,
        limit: i64,
    ) -> StoreResult<Vec<MessageRow>> {
        sqlx::query_as::<_, MessageRow>(concat!(
            "select ",
            m_message_columns!(),
            " from messages m \
             join room_members rm on rm.room_id = m.room_id and rm.user_id = $1 \
             where m.body_tsv @@ plainto_tsquery('simple', $2) \
               and not m.deleted \
               and ($3 is null or m.room_id = $3) \
               and not exists (select 1 from blocks b \
                               where b.blocker_id = $1 and b.blocked_id = m.author_id) \
             order by ts_rank(m.body_tsv, plainto_tsquery('simple', $2)) desc, \
               m.created_at desc, m.id desc \
             limit $4"
        ))
        .bind(user_id)
        .bind(query)
        .bind(room_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(db_err)
    }
}

/// Opens a pool without touching the schema.
pub(super) async fn open(database_url: &str, max_connections: u32) -> StoreResult<PgPool> {
    let options = PgConnectOptions::from_str(database_url).map_err(db_err)?;
    PgPoolOptions::new()
        .max_connections(max_connections.max(1))
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .connect_with(options)
        .await
        .map_err(db_err)
}
