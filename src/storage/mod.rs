//! sqlx implementations of [`Store`]: SQLite (the zero-setup default) and
//! PostgreSQL.
//!
//! [`connect`] picks the backend from the URL scheme and brings the schema up
//! to date; [`migrate_up`] and [`migrate_down`] back the `parley migrate` CLI.
//!
//! Where things are:
//! - `sql/`: the SQL, one file per record kind (`users.rs`,
//!   `two_factor.rs`, `account_tokens.rs`, `sessions.rs`, `audit.rs`,
//!   `rooms.rs`, `members.rs`, `invites.rs`, `messages.rs`, `reactions.rs`,
//!   `search.rs`, `blocks.rs`, `settings.rs`, `reports.rs`), run unchanged by both
//!   databases; `sql/store.rs` hands the store traits' methods to them.
//! - `rows.rs`: the row each table returns and its conversion; ids are UUID
//!   text and times unix milliseconds in both schemas.
//! - `batch.rs`: the group commit's bookkeeping (no SQL is run there).
//! - `errors.rs`: sqlx errors mapped onto [`StoreError`].
//! - `migrations.rs`: `parley migrate`, once for both databases.
//! - `sqlite.rs`, `postgres.rs`: what differs (connect options, the
//!   migrations folder, full-text search); `search.rs`: SQLite's search
//!   index file and its background indexer.
//! - `tests/`: the store suite, run on SQLite always and on PostgreSQL when
//!   `PARLEY_TEST_DATABASE_URL` is set.
//!
//! # Adding a record kind
//!
//! 1. A migration pair with the same version in `migrations/sqlite` and
//!    `migrations/postgres` (never edit an applied one).
//! 2. The methods on the store trait (`parley_actors::store`), in create →
//!    read → update → delete order.
//! 3. In `rows.rs`, a `*_columns!` macro and a `#[derive(sqlx::FromRow)]`
//!    row struct with an `into_*` conversion (times through `from_ms`, ids
//!    and enums through `parse_col`).
//! 4. A file `sql/<kind>.rs` with `impl SqlStore { … }`: one method per
//!    trait method, same name, same order, SQL both databases accept
//!    (`$1` placeholders; see `sql/mod.rs`). Chains end in the helpers of
//!    `sql/mod.rs`: `.one(ex)`, `.optional_into(ex, Row::into_x)`,
//!    `.all_into(…)`, `.run(ex)`, `.changed(ex)`, `begin`/`commit`; every
//!    sqlx error goes through them (or `db_err`) so callers see
//!    [`StoreError`]. Add `mod <kind>;` to `sql/mod.rs` and the forwarding
//!    methods to `sql/store.rs`.
//! 5. A test file `tests/<kind>.rs` with `pub(super) async fn` cases taking
//!    `(String, Arc<dyn Store>)`, listed in `store_test_suite!`
//!    (`tests/mod.rs`), which runs each on both databases. A new unique
//!    key that the API reports as a conflict gets its column name in
//!    `errors::conflict_field`.

use std::sync::Arc;
use std::time::Duration;

use parley_actors::store::{Store, StoreError, StoreResult};

pub use postgres::PgStore;
pub use sqlite::SqliteStore;

// First: the `*_columns!` macros it defines are used by the modules after it.
#[macro_use]
mod rows;

mod batch;
mod errors;
mod migrations;
mod postgres;
mod search;
mod sqlite;
#[cfg(test)]
mod tests;

/// How long a caller waits for a pooled connection before `Unavailable`.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// Opens a pool for `database_url`, brings the schema up to date and returns
/// the store.
///
/// `sqlite:` URLs open (creating if needed) a SQLite file; an in-memory
/// SQLite URL gets a single connection whatever `max_connections` says.
/// `postgres:` and `postgresql:` URLs open a PostgreSQL pool.
pub async fn connect(database_url: &str, max_connections: u32) -> StoreResult<Arc<dyn Store>> {
    Ok(match Backend::of(database_url)? {
        Backend::Sqlite => Arc::new(SqliteStore::connect(database_url, max_connections).await?),
        Backend::Postgres => Arc::new(PgStore::connect(database_url, max_connections).await?),
    })
}

/// Applies every pending migration (`parley migrate`).
pub async fn migrate_up(database_url: &str) -> StoreResult<()> {
    match Backend::of(database_url)? {
        Backend::Sqlite => {
            migrations::up(sqlite::open(database_url, 1).await?, &sqlite::MIGRATOR).await
        }
        Backend::Postgres => {
            migrations::up(postgres::open(database_url, 1).await?, &postgres::MIGRATOR).await
        }
    }
}

/// Reverts the `steps` most recently applied migrations (`parley migrate
/// --down N`) and returns their versions, newest first. Fewer than `steps`
/// applied means all of them are reverted.
pub async fn migrate_down(database_url: &str, steps: u32) -> StoreResult<Vec<i64>> {
    match Backend::of(database_url)? {
        Backend::Sqlite => {
            let pool = sqlite::open(database_url, 1).await?;
            migrations::down(pool, &sqlite::MIGRATOR, steps).await
        }
        Backend::Postgres => {
            let pool = postgres::open(database_url, 1).await?;
            migrations::down(pool, &postgres::MIGRATOR, steps).await
        }
    }
}

/// The database behind a URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    fn of(database_url: &str) -> StoreResult<Self> {
        let scheme = database_url
            .split_once(':')
            .map(|(scheme, _)| scheme.to_ascii_lowercase());
        match scheme.as_deref() {
            Some("sqlite") => Ok(Self::Sqlite),
            Some("postgres" | "postgresql") => Ok(Self::Postgres),
            // The URL itself is left out: it may hold a password.
            _ => Err(StoreError::Other(
                "unsupported database URL: expected sqlite: or postgres:".to_owned(),
            )),
        }
    }
}
