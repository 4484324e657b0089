//! The SQL both databases run, one file per record kind: `users.rs`,
//! `two_factor.rs` (TOTP state, recovery codes), `account_tokens.rs`
//! (mailed one-time tokens, email verification),
//! `sessions.rs` (sessions and their refresh tokens), `audit.rs`,
//! `rooms.rs`, `members.rs` (members, read markers, bans), `invites.rs`,
//! `messages.rs` (the group commit and the message history),
//! `reactions.rs`, `search.rs`, `blocks.rs`, `settings.rs` and `reports.rs`. `store.rs` hands the
//! [`Store`](parley_actors::store::Store) and
//! [`ChatStore`](parley_actors::store::ChatStore) methods to them.
//!
//! Each file is plain `impl SqlStore { … }` code. The folder is compiled
//! once per backend: `sqlite.rs` and `postgres.rs` each name their store
//! `SqlStore` and their database `Db`, then mount this folder with
//! `#[path = "sql/mod.rs"] mod sql;`. Code generic over `sqlx::Database`
//! would have to repeat a dozen sqlx bounds (`&mut Connection: Executor`,
//! `Encode`/`Decode` for every column type, `FromRow` for every row) on
//! every impl block, since Rust does not carry such bounds from one trait
//! to its users; compiled per backend, each file names none of them.
//!
//! The statements therefore stick to what both databases accept: `$1, $2,
//! …` placeholders (SQLite takes them too), `returning`, `coalesce`,
//! `case` (no `greatest`), `on conflict … do nothing`, `update … from`; no
//! `for update`. What really differs (connect options, migrations,
//! full-text search) stays in `sqlite.rs` and `postgres.rs`.

use std::future::Future;

use parley_actors::store::StoreResult;
use sqlx::query::{Query, QueryAs};
use sqlx::{Database, Executor, FromRow, Pool, Transaction};

use super::{Db, SqlStore};
use crate::storage::errors::db_err;

mod account_tokens;
mod audit;
mod blocks;
mod invites;
mod members;
mod messages;
mod reactions;
mod reports;
mod rooms;
mod search;
mod sessions;
mod settings;
mod store;
mod two_factor;
mod users;

/// The bind arguments of a statement on [`Db`].
type Args = <Db as Database>::Arguments;

/// A row type a statement on [`Db`] decodes into.
trait Decoded: for<'r> FromRow<'r, <Db as Database>::Row> + Send + Unpin {}
impl<R> Decoded for R where R: for<'r> FromRow<'r, <Db as Database>::Row> + Send + Unpin {}

/// Runs a `query_as` with the error mapped onto the store's, so a call
/// reads `.optional(&self.pool).await?`; the `_into` forms also convert the
/// rows (`UserRow::into_user` …).
trait Fetch<R: Decoded>: Sized {
    /// The one row the statement returns.
    fn one<'e, E>(self, ex: E) -> impl Future<Output = StoreResult<R>> + Send + 'e
    where
        E: Executor<'e, Database = Db> + 'e,
        Self: 'e;

    /// The row the statement returns, if any.
    fn optional<'e, E>(self, ex: E) -> impl Future<Output = StoreResult<Option<R>>> + Send + 'e
    where
        E: Executor<'e, Database = Db> + 'e,
        Self: 'e;

    /// Every row the statement returns.
    fn all<'e, E>(self, ex: E) -> impl Future<Output = StoreResult<Vec<R>>> + Send + 'e
    where
        E: Executor<'e, Database = Db> + 'e,
        Self: 'e;

    /// The row the statement returns, if any, converted.
    fn optional_into<'e, E, T>(
        self,
        ex: E,
        convert: fn(R) -> StoreResult<T>,
    ) -> impl Future<Output = StoreResult<Option<T>>> + Send + 'e
    where
        E: Executor<'e, Database = Db> + 'e,
        Self: 'e,
        T: 'e;

    /// Every row the statement returns, converted, stopping at the first
    /// that does not convert.
    fn all_into<'e, E, T>(
        self,
        ex: E,
        convert: fn(R) -> StoreResult<T>,
    ) -> impl Future<Output = StoreResult<Vec<T>>> + Send + 'e
    where
        E: Executor<'e, Database = Db> + 'e,
        Self: 'e,
        T: 'e;
}

impl<'q, R: Decoded + 'q> Fetch<R> for QueryAs<'q, Db, R, Args> {
    fn one<'e, E>(self, ex: E) -> impl Future<Output = StoreResult<R>> + Send + 'e
    where
        E: Executor<'e, Database = Db> + 'e,
        Self: 'e,
    {
        let fetched = self.fetch_one(ex);
        async move { fetched.await.map_err(db_err) }
    }

    fn optional<'e, E>(self, ex: E) -> impl Future<Output = StoreResult<Option<R>>> + Send + 'e
    where
        E: Executor<'e, Database = Db> + 'e,
        Self: 'e,
    {
        let fetched = self.fetch_optional(ex);
        async move { fetched.await.map_err(db_err) }
    }

    fn all<'e, E>(self, ex: E) -> impl Future<Output = StoreResult<Vec<R>>> + Send + 'e
    where
        E: Executor<'e, Database = Db> + 'e,
        Self: 'e,
    {
        let fetched = self.fetch_all(ex);
        async move { fetched.await.map_err(db_err) }
    }

    fn optional_into<'e, E, T>(
        self,
        ex: E,
        convert: fn(R) -> StoreResult<T>,
    ) -> impl Future<Output = StoreResult<Option<T>>> + Send + 'e
    where
        E: Executor<'e, Database = Db> + 'e,
        Self: 'e,
        T: 'e,
    {
        let fetched = self.fetch_optional(ex);
        async move { fetched.await.map_err(db_err)?.map(convert).transpose() }
    }

    fn all_into<'e, E, T>(
        self,
        ex: E,
        convert: fn(R) -> StoreResult<T>,
    ) -> impl Future<Output = StoreResult<Vec<T>>> + Send + 'e
    where
        E: Executor<'e, Database = Db> + 'e,
        Self: 'e,
        T: 'e,
    {
        let fetched = self.fetch_all(ex);
        async move {
            fetched
                .await
                .map_err(db_err)?
                .into_iter()
                .map(convert)
                .collect()
        }
    }
}

/// Runs a statement that returns no rows, with the error mapped onto the
/// store's.
trait Run: Sized {
    /// How many rows the statement changed.
    fn run<'e, E>(self, ex: E) -> impl Future<Output = StoreResult<u64>> + Send + 'e
    where
        E: Executor<'e, Database = Db> + 'e,
        Self: 'e;

    /// Whether the statement changed any row (`false`: nothing matched, or
    /// `on conflict do nothing` kept what was there).
    fn changed<'e, E>(self, ex: E) -> impl Future<Output = StoreResult<bool>> + Send + 'e
    where
        E: Executor<'e, Database = Db> + 'e,
        Self: 'e,
    {
        let done = self.run(ex);
        async move { Ok(done.await? > 0) }
    }
}

impl<'q> Run for Query<'q, Db, Args> {
    fn run<'e, E>(self, ex: E) -> impl Future<Output = StoreResult<u64>> + Send + 'e
    where
        E: Executor<'e, Database = Db> + 'e,
        Self: 'e,
    {
        let done = self.execute(ex);
        async move { Ok(done.await.map_err(db_err)?.rows_affected()) }
    }
}

/// Starts a transaction on `pool`.
async fn begin(pool: &Pool<Db>) -> StoreResult<Transaction<'static, Db>> {
    pool.begin().await.map_err(db_err)
}

/// Commits `tx`.
async fn commit(tx: Transaction<'static, Db>) -> StoreResult<()> {
    tx.commit().await.map_err(db_err)
}

/// Rolls `tx` back.
async fn rollback(tx: Transaction<'static, Db>) -> StoreResult<()> {
    tx.rollback().await.map_err(db_err)
}
