//! [`Store`](parley_actors::store::Store) on PostgreSQL, for larger and
//! clustered deployments (`PARLEY_DATABASE_URL=postgres://…`).
//!
//! The SQL is shared with SQLite (`impl_store!` in `storage/mod.rs`,
//! `impl_chat_store!` in `storage/chat.rs`); this file holds what is
//! PostgreSQL's own: the connect options, the migrations and full-text search
//! (`tsvector`).

use std::str::FromStr;

use parley_actors::store::StoreResult;
use sqlx::PgPool;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use super::chat::MessageRow;
use super::{ACQUIRE_TIMEOUT, db_err, migrate_err, revert_latest};

/// The PostgreSQL schema, embedded at build time.
static MIGRATOR: Migrator = sqlx::migrate!("migrations/postgres");

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

impl_store!(PgStore);
impl_chat_store!(PgStore, sqlx::Postgres);

impl PgStore {
    /// Full-text search for `impl_chat_store!`: messages matching every word
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
async fn open(database_url: &str, max_connections: u32) -> StoreResult<PgPool> {
    let options = PgConnectOptions::from_str(database_url).map_err(db_err)?;
    PgPoolOptions::new()
        .max_connections(max_connections.max(1))
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .connect_with(options)
        .await
        .map_err(db_err)
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
    //! Runs the shared suite when `PARLEY_TEST_DATABASE_URL` points at a
    //! PostgreSQL server; each test gets its own database, dropped afterwards.

    use sqlx::{AssertSqlSafe, Connection, PgConnection};

    use crate::storage::tests::TestDb;

    /// The server to create test databases on, if any.
    fn admin_url() -> Option<String> {
        std::env::var("PARLEY_TEST_DATABASE_URL")
            .ok()
            .filter(|url| !url.is_empty())
    }

    /// `url` with its database name replaced by `database`.
    fn with_database(url: &str, database: &str) -> String {
        let (base, query) = match url.split_once('?') {
            Some((base, query)) => (base, Some(query)),
            None => (url, None),
        };
        let authority_start = base.find("://").map_or(0, |i| i + 3);
        let path_start = base[authority_start..]
            .find('/')
            .map_or(base.len(), |i| authority_start + i);
        let mut out = format!("{}/{database}", &base[..path_start]);
        if let Some(query) = query {
            out.push('?');
            out.push_str(query);
        }
        out
    }

    /// Drops its database when the test is over.
    #[derive(Debug)]
    struct DropDatabase {
        admin_url: String,
        name: String,
    }

    impl crate::storage::tests::Cleanup for DropDatabase {
        fn cleanup(self: Box<Self>) -> futures_util::future::BoxFuture<'static, ()> {
            Box::pin(async move {
                let mut admin = PgConnection::connect(&self.admin_url)
                    .await
                    .expect("connect to the test server");
                // `with (force)` ends connections a failed test left open.
                sqlx::raw_sql(AssertSqlSafe(format!(
                    "drop database if exists \"{}\" with (force)",
                    self.name
                )))
                .execute(&mut admin)
                .await
                .expect("drop the test database");
            })
        }
    }

    /// A fresh database `parley_t_<uuid>`, or `None` (test skipped) when no
    /// server is configured.
    async fn fresh_db() -> Option<TestDb> {
        let Some(admin_url) = admin_url() else {
            eprintln!("PARLEY_TEST_DATABASE_URL not set: skipping the PostgreSQL test");
            return None;
        };
        let name = format!("parley_t_{}", uuid::Uuid::new_v4().simple());
        let mut admin = PgConnection::connect(&admin_url)
            .await
            .expect("connect to PARLEY_TEST_DATABASE_URL");
        // The name is generated above, never user input.
        sqlx::raw_sql(AssertSqlSafe(format!("create database \"{name}\"")))
            .execute(&mut admin)
            .await
            .expect("create the test database");
        admin.close().await.expect("close the admin connection");
        let url = with_database(&admin_url, &name);
        let store = crate::storage::connect(&url, 4)
            .await
            .expect("connect to the test database");
        Some(TestDb::new(
            url,
            store,
            Box::new(DropDatabase { admin_url, name }),
        ))
    }

    crate::storage::tests::store_test_suite!(fresh_db);

    #[test]
    fn the_database_name_is_replaced_in_the_url() {
        assert_eq!(
            with_database("postgres://postgres@127.0.0.1:5432/test", "x"),
            "postgres://postgres@127.0.0.1:5432/x"
        );
        assert_eq!(
            with_database("postgresql://u:p@h/db?sslmode=disable", "x"),
            "postgresql://u:p@h/x?sslmode=disable"
        );
        assert_eq!(
            with_database("postgres://h:5432", "x"),
            "postgres://h:5432/x"
        );
    }
}
