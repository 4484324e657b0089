//! sqlx implementations of [`Store`]: SQLite (the zero-setup default) and
//! PostgreSQL.
//!
//! [`connect`] picks the backend from the URL scheme and brings the schema up
//! to date; [`migrate_up`] and [`migrate_down`] back the `parley migrate` CLI.
//!
//! Both backends run the same SQL. It is written once, in `impl_store!` below,
//! using `$1, $2, …` placeholders (SQLite accepts them too) and only syntax
//! both databases know (`returning`, `coalesce`, `case`; no `greatest`, no
//! `for update`). Both schemas store ids as UUID text and times as unix
//! milliseconds, so the row types below decode from either. The chat half
//! (rooms, members, invites, messages, blocks) follows the same rules in
//! `impl_chat_store!` (`chat.rs`). What differs — connect options, the
//! migrations folder and full-text search — lives in `sqlite.rs` and
//! `postgres.rs`.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use parley_actors::store::{AuditEntry, Session, Store, StoreError, StoreResult, User};
use sqlx::error::DatabaseError;
use sqlx::migrate::{Migrate, MigrateError, Migrator};

pub use postgres::PgStore;
pub use sqlite::SqliteStore;

/// How long a caller waits for a pooled connection before `Unavailable`.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// The table sqlx records applied migrations in (sqlx's default).
const MIGRATIONS_TABLE: &str = "_sqlx_migrations";

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
        Backend::Sqlite => sqlite::migrate_up(database_url).await,
        Backend::Postgres => postgres::migrate_up(database_url).await,
    }
}

/// Reverts the `steps` most recently applied migrations (`parley migrate
/// --down N`) and returns their versions, newest first. Fewer than `steps`
/// applied means all of them are reverted.
pub async fn migrate_down(database_url: &str, steps: u32) -> StoreResult<Vec<i64>> {
    match Backend::of(database_url)? {
        Backend::Sqlite => sqlite::migrate_down(database_url, steps).await,
        Backend::Postgres => postgres::migrate_down(database_url, steps).await,
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

/// Reverts the `steps` latest applied migrations on one connection, holding
/// the migration lock, and returns their versions, newest first.
///
/// sqlx's `Migrator::undo` takes a target version rather than a count, so
/// this walks the applied list itself with the same `Migrate` calls.
async fn revert_latest<C>(conn: &mut C, migrator: &Migrator, steps: u32) -> StoreResult<Vec<i64>>
where
    C: Migrate + Send,
{
    conn.lock().await.map_err(migrate_err)?;
    let reverted = revert_latest_locked(conn, migrator, steps).await;
    // Unlock either way, but report the revert's own failure first.
    let unlocked = conn.unlock().await;
    let reverted = reverted.map_err(migrate_err)?;
    unlocked.map_err(migrate_err)?;
    Ok(reverted)
}

async fn revert_latest_locked<C>(
    conn: &mut C,
    migrator: &Migrator,
    steps: u32,
) -> Result<Vec<i64>, MigrateError>
where
    C: Migrate + Send,
{
    conn.ensure_migrations_table(MIGRATIONS_TABLE).await?;
    if let Some(version) = conn.dirty_version(MIGRATIONS_TABLE).await? {
        return Err(MigrateError::Dirty(version));
    }
    let applied = conn.list_applied_migrations(MIGRATIONS_TABLE).await?;
    let mut reverted = Vec::new();
    for version in applied.iter().rev().take(steps as usize).map(|m| m.version) {
        let down = migrator
            .iter()
            .find(|m| m.version == version && m.migration_type.is_down_migration())
            .ok_or(MigrateError::VersionMissing(version))?;
        conn.revert(MIGRATIONS_TABLE, down).await?;
        reverted.push(version);
    }
    Ok(reverted)
}

// ---- conversions ------------------------------------------------------------

/// A time as stored: unix milliseconds (sub-millisecond precision is dropped).
fn to_ms(at: DateTime<Utc>) -> i64 {
    at.timestamp_millis()
}

/// A stored time back as a `DateTime`.
fn from_ms(ms: i64) -> StoreResult<DateTime<Utc>> {
    DateTime::from_timestamp_millis(ms)
        .ok_or_else(|| StoreError::Other(format!("stored time {ms} ms is out of range")))
}

fn from_ms_opt(ms: Option<i64>) -> StoreResult<Option<DateTime<Utc>>> {
    ms.map(from_ms).transpose()
}

/// Parses a stored value (id, role, IP …), naming the column when it fails.
fn parse_col<T>(column: &str, value: &str) -> StoreResult<T>
where
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    value
        .parse()
        .map_err(|e| StoreError::Other(format!("stored {column} `{value}` does not parse: {e}")))
}

fn parse_ip(column: &str, value: Option<&str>) -> StoreResult<Option<IpAddr>> {
    value.map(|v| parse_col(column, v)).transpose()
}

/// The user columns [`UserRow`] reads, for `select` and `returning`.
macro_rules! user_columns {
    () => {
        "id, username, email, password_hash, display_name, bio, avatar_url, role, status, \
         two_factor_enabled, failed_logins, locked_until, created_at, updated_at"
    };
}

/// The session columns [`SessionRow`] reads, for `select` and `returning`.
macro_rules! session_columns {
    () => {
        "id, user_id, user_agent, ip, created_at, last_seen_at, revoked_at, revoked_reason"
    };
}

/// A `users` row as both databases return it.
#[derive(Debug, sqlx::FromRow)]
struct UserRow {
    id: String,
    username: String,
    email: String,
    password_hash: String,
    display_name: Option<String>,
    bio: Option<String>,
    avatar_url: Option<String>,
    role: String,
    status: String,
    two_factor_enabled: bool,
    failed_logins: i32,
    locked_until: Option<i64>,
    created_at: i64,
    updated_at: i64,
}

impl UserRow {
    fn into_user(self) -> StoreResult<User> {
        // Stored names went through `Username::parse` on the way in, so this
        // only fails if the rules tighten after the fact.
        let username = parley_actors::domain::Username::parse(&self.username)
            .map_err(|e| StoreError::Other(format!("stored username `{}`: {e}", self.username)))?;
        let email = parley_actors::domain::Email::parse(&self.email)
            .map_err(|e| StoreError::Other(format!("stored email of user {}: {e}", self.id)))?;
        Ok(User {
            id: parse_col("users.id", &self.id)?,
            username,
            email,
            password_hash: self.password_hash,
            display_name: self.display_name,
            bio: self.bio,
            avatar_url: self.avatar_url,
            role: parse_col("users.role", &self.role)?,
            status: parse_col("users.status", &self.status)?,
            two_factor_enabled: self.two_factor_enabled,
            failed_logins: u32::try_from(self.failed_logins).map_err(|_| {
                StoreError::Other(format!("stored failed_logins {} < 0", self.failed_logins))
            })?,
            locked_until: from_ms_opt(self.locked_until)?,
            created_at: from_ms(self.created_at)?,
            updated_at: from_ms(self.updated_at)?,
        })
    }
}

/// A `sessions` row as both databases return it.
#[derive(Debug, sqlx::FromRow)]
struct SessionRow {
    id: String,
    user_id: String,
    user_agent: Option<String>,
    ip: Option<String>,
    created_at: i64,
    last_seen_at: i64,
    revoked_at: Option<i64>,
    revoked_reason: Option<String>,
}

impl SessionRow {
    fn into_session(self) -> StoreResult<Session> {
        Ok(Session {
            id: parse_col("sessions.id", &self.id)?,
            user_id: parse_col("sessions.user_id", &self.user_id)?,
            user_agent: self.user_agent,
            ip: parse_ip("sessions.ip", self.ip.as_deref())?,
            created_at: from_ms(self.created_at)?,
            last_seen_at: from_ms(self.last_seen_at)?,
            revoked_at: from_ms_opt(self.revoked_at)?,
            revoked_reason: self.revoked_reason,
        })
    }
}

/// What `rotate_refresh_token` reads about a token it could not spend.
#[derive(Debug, sqlx::FromRow)]
struct TokenStateRow {
    session_id: String,
    user_id: String,
    expires_at: i64,
    spent_at: Option<i64>,
    revoked_at: Option<i64>,
}

/// An `audit_log` row as both databases return it.
#[derive(Debug, sqlx::FromRow)]
struct AuditRow {
    id: String,
    at: i64,
    actor_id: Option<String>,
    action: String,
    target_type: Option<String>,
    target_id: Option<String>,
    ip: Option<String>,
    user_agent: Option<String>,
    request_id: Option<String>,
    details: String,
}

impl AuditRow {
    fn into_entry(self) -> StoreResult<AuditEntry> {
        Ok(AuditEntry {
            id: parse_col("audit_log.id", &self.id)?,
            at: from_ms(self.at)?,
            actor_id: self
                .actor_id
                .as_deref()
                .map(|id| parse_col("audit_log.actor_id", id))
                .transpose()?,
            action: self.action,
            target_type: self.target_type,
            target_id: self.target_id,
            ip: parse_ip("audit_log.ip", self.ip.as_deref())?,
            user_agent: self.user_agent,
            request_id: self.request_id,
            details: serde_json::from_str(&self.details).map_err(|e| {
                StoreError::Other(format!("stored details of audit entry {}: {e}", self.id))
            })?,
        })
    }
}

/// Collects converted rows, stopping at the first that does not convert.
fn convert_all<R, T>(rows: Vec<R>, convert: fn(R) -> StoreResult<T>) -> StoreResult<Vec<T>> {
    rows.into_iter().map(convert).collect()
}

// ---- errors -------------------------------------------------------------------

/// Maps a sqlx error onto [`StoreError`].
///
/// Unique violations become `Conflict` carrying only the field name; lost
/// connections, timeouts and busy databases become `Unavailable`; the rest is
/// `Other`. The message of the latter two is for logs, not for clients.
fn db_err(err: sqlx::Error) -> StoreError {
    match err {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict {
            field: conflict_field(db.as_ref()),
        },
        sqlx::Error::Database(db) if is_transient(db.as_ref()) => {
            StoreError::Unavailable(db.to_string())
        }
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => StoreError::Unavailable(err.to_string()),
        sqlx::Error::Migrate(err) => migrate_err(*err),
        other => StoreError::Other(other.to_string()),
    }
}

/// Maps a migration failure: an unreachable database stays `Unavailable`.
fn migrate_err(err: MigrateError) -> StoreError {
    match err {
        MigrateError::Execute(err) => db_err(err),
        MigrateError::ExecuteMigration(err, version) => match db_err(err) {
            StoreError::Other(msg) => StoreError::Other(format!("migration {version}: {msg}")),
            mapped => mapped,
        },
        other => StoreError::Other(other.to_string()),
    }
}

/// The public name of the key a unique violation hit.
///
/// PostgreSQL names the constraint or index (`users_email_key`); SQLite only
/// says `UNIQUE constraint failed: users.email` (for a multi-column key, every
/// column: `invites.room_id, invites.invitee_id`). Both contain the column
/// name, so checks go from the most telling column to the least.
fn conflict_field(err: &dyn DatabaseError) -> &'static str {
    let text = err.constraint().unwrap_or_else(|| err.message());
    if text.contains("username") {
        "username"
    } else if text.contains("email") {
        "email"
    } else if text.contains("token_hash") || text.contains("refresh_tokens") {
        "token_hash"
    } else if text.contains("invitee_id") {
        // the pending-invite index: the API names the invitee `user_id`
        "user_id"
    } else if text.contains("client_id") {
        "client_id"
    } else if text.contains("dm_key") {
        "dm_key"
    } else if text.contains("seq") {
        "seq"
    } else {
        "id"
    }
}

/// Whether a database error means "try again later" rather than "wrong".
fn is_transient(err: &dyn DatabaseError) -> bool {
    if let Some(pg) = err.try_downcast_ref::<sqlx::postgres::PgDatabaseError>() {
        // 08 connection exception, 53 insufficient resources, 57 operator
        // intervention (shutdown, cancel), 40 serialization failure/deadlock.
        let code = pg.code();
        return ["08", "53", "57", "40"]
            .iter()
            .any(|class| code.starts_with(class));
    }
    if let Some(code) = err.code().and_then(|c| c.parse::<i32>().ok()) {
        // SQLite extended codes carry the primary code in the low byte:
        // 5 BUSY, 6 LOCKED, 10 IOERR, 13 FULL, 14 CANTOPEN.
        return matches!(code & 0xff, 5 | 6 | 10 | 13 | 14);
    }
    false
}

/// Turns "no row matched" into an error naming what was missing.
fn expect_found(rows_affected: u64, what: &str, id: impl std::fmt::Display) -> StoreResult<()> {
    if rows_affected == 0 {
        Err(StoreError::Other(format!("no {what} with id {id}")))
    } else {
        Ok(())
    }
}

// ---- the shared implementation -------------------------------------------------

/// Implements [`Store`] for a backend type with a `pool: sqlx::Pool<_>` field.
///
/// Every statement here runs unchanged on SQLite and PostgreSQL. Methods are
/// in the trait's order.
macro_rules! impl_store {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl parley_actors::store::Store for $store {
            // ---- health -------------------------------------------------

            async fn ping(&self) -> parley_actors::store::StoreResult<()> {
                sqlx::query("select 1")
                    .execute(&self.pool)
                    .await
                    .map_err($crate::storage::db_err)?;
                Ok(())
            }

            async fn close(&self) {
                self.writer.close().await;
                self.pool.close().await;
            }

            // ---- users --------------------------------------------------

            async fn create_user(
                &self,
                new: parley_actors::store::NewUser,
            ) -> parley_actors::store::StoreResult<parley_actors::store::User> {
                let at = $crate::storage::to_ms(new.created_at);
                sqlx::query_as::<_, $crate::storage::UserRow>(concat!(
                    "insert into users (id, username, email, password_hash, role, created_at, updated_at) \
                     values ($1, $2, $3, $4, $5, $6, $6) \
                     returning ",
                    user_columns!()
                ))
                .bind(new.id.to_string())
                .bind(new.username.as_str())
                .bind(new.email.as_str())
                .bind(&new.password_hash)
                .bind(new.role.as_str())
                .bind(at)
                .fetch_one(&self.pool)
                .await
                .map_err($crate::storage::db_err)?
                .into_user()
            }

            async fn user_by_id(
                &self,
                id: parley_actors::domain::UserId,
            ) -> parley_actors::store::StoreResult<Option<parley_actors::store::User>> {
                sqlx::query_as::<_, $crate::storage::UserRow>(concat!(
                    "select ", user_columns!(), " from users where id = $1"
                ))
                .bind(id.to_string())
                .fetch_optional(&self.pool)
                .await
                .map_err($crate::storage::db_err)?
                .map($crate::storage::UserRow::into_user)
                .transpose()
            }

            async fn user_by_login(
                &self,
                login: &str,
            ) -> parley_actors::store::StoreResult<Option<parley_actors::store::User>> {
                // Usernames cannot contain '@', so at most one row matches.
                sqlx::query_as::<_, $crate::storage::UserRow>(concat!(
                    "select ", user_columns!(), " from users where username = $1 or email = $1"
                ))
                .bind(login)
                .fetch_optional(&self.pool)
                .await
                .map_err($crate::storage::db_err)?
                .map($crate::storage::UserRow::into_user)
                .transpose()
            }

            async fn record_login_failure(
                &self,
                id: parley_actors::domain::UserId,
                max_failures: u32,
                lock_until: chrono::DateTime<chrono::Utc>,
            ) -> parley_actors::store::StoreResult<parley_actors::store::LoginFailure> {
                // One statement, so concurrent failures cannot lose a count.
                // The right-hand sides all see the old row. Reaching the
                // threshold locks and restarts the count, so a count of 0
                // after an increment means this failure locked the account.
                let row: Option<(i32, Option<i64>)> = sqlx::query_as(
                    "update users set \
                       failed_logins = case when failed_logins + 1 >= $2 then 0 \
                                            else failed_logins + 1 end, \
                       locked_until = case when failed_logins + 1 >= $2 then $3 \
                                           else locked_until end \
                     where id = $1 \
                     returning failed_logins, locked_until",
                )
                .bind(id.to_string())
                .bind(i64::from(max_failures))
                .bind($crate::storage::to_ms(lock_until))
                .fetch_optional(&self.pool)
                .await
                .map_err($crate::storage::db_err)?;
                let Some((failed_logins, locked_until)) = row else {
                    return Err(parley_actors::store::StoreError::Other(format!(
                        "no user with id {id}"
                    )));
                };
                let locked = failed_logins == 0;
                Ok(parley_actors::store::LoginFailure {
                    failed_logins: u32::try_from(failed_logins).map_err(|_| {
                        parley_actors::store::StoreError::Other(format!(
                            "stored failed_logins {failed_logins} < 0"
                        ))
                    })?,
                    locked_until: if locked {
                        $crate::storage::from_ms_opt(locked_until)?
                    } else {
                        None
                    },
                })
            }

            async fn clear_login_failures(
                &self,
                id: parley_actors::domain::UserId,
            ) -> parley_actors::store::StoreResult<()> {
                let done = sqlx::query(
                    "update users set failed_logins = 0, locked_until = null where id = $1",
                )
                .bind(id.to_string())
                .execute(&self.pool)
                .await
                .map_err($crate::storage::db_err)?;
                $crate::storage::expect_found(done.rows_affected(), "user", id)
            }

            async fn update_password_hash(
                &self,
                id: parley_actors::domain::UserId,
                password_hash: &str,
                at: chrono::DateTime<chrono::Utc>,
            ) -> parley_actors::store::StoreResult<()> {
                let done = sqlx::query(
                    "update users set password_hash = $2, updated_at = $3 where id = $1",
                )
                .bind(id.to_string())
                .bind(password_hash)
                .bind($crate::storage::to_ms(at))
                .execute(&self.pool)
                .await
                .map_err($crate::storage::db_err)?;
                $crate::storage::expect_found(done.rows_affected(), "user", id)
            }

            async fn update_user_role_status(
                &self,
                id: parley_actors::domain::UserId,
                role: Option<parley_actors::domain::Role>,
                status: Option<parley_actors::domain::UserStatus>,
                at: chrono::DateTime<chrono::Utc>,
            ) -> parley_actors::store::StoreResult<()> {
                // `coalesce` keeps the stored value for a `None`.
                let done = sqlx::query(
                    "update users set role = coalesce($2, role), status = coalesce($3, status), \
                     updated_at = $4 where id = $1",
                )
                .bind(id.to_string())
                .bind(role.map(|r| r.as_str()))
                .bind(status.map(|s| s.as_str()))
                .bind($crate::storage::to_ms(at))
                .execute(&self.pool)
                .await
                .map_err($crate::storage::db_err)?;
                $crate::storage::expect_found(done.rows_affected(), "user", id)
            }

            // ---- sessions and refresh tokens ----------------------------

            async fn create_session(
                &self,
                new: parley_actors::store::NewSession,
                refresh: parley_actors::store::NewRefreshToken,
            ) -> parley_actors::store::StoreResult<parley_actors::store::Session> {
                if refresh.session_id != new.id {
                    return Err(parley_actors::store::StoreError::Other(format!(
                        "refresh token for session {} passed with session {}",
                        refresh.session_id, new.id
                    )));
                }
                let mut tx = self.pool.begin().await.map_err($crate::storage::db_err)?;
                let row = sqlx::query_as::<_, $crate::storage::SessionRow>(concat!(
                    "insert into sessions (id, user_id, user_agent, ip, created_at, last_seen_at) \
                     values ($1, $2, $3, $4, $5, $5) \
                     returning ",
                    session_columns!()
                ))
                .bind(new.id.to_string())
                .bind(new.user_id.to_string())
                .bind(new.user_agent.as_deref())
                .bind(new.ip.map(|ip| ip.to_string()))
                .bind($crate::storage::to_ms(new.created_at))
                .fetch_one(&mut *tx)
                .await
                .map_err($crate::storage::db_err)?;
                sqlx::query(
                    "insert into refresh_tokens (token_hash, session_id, created_at, expires_at) \
                     values ($1, $2, $3, $4)",
                )
                .bind(&refresh.token_hash)
                .bind(new.id.to_string())
                .bind($crate::storage::to_ms(refresh.created_at))
                .bind($crate::storage::to_ms(refresh.expires_at))
                .execute(&mut *tx)
                .await
                .map_err($crate::storage::db_err)?;
                tx.commit().await.map_err($crate::storage::db_err)?;
                row.into_session()
            }

            async fn session_by_id(
                &self,
                id: parley_actors::domain::SessionId,
            ) -> parley_actors::store::StoreResult<Option<parley_actors::store::Session>> {
                sqlx::query_as::<_, $crate::storage::SessionRow>(concat!(
                    "select ", session_columns!(), " from sessions where id = $1"
                ))
                .bind(id.to_string())
                .fetch_optional(&self.pool)
                .await
                .map_err($crate::storage::db_err)?
                .map($crate::storage::SessionRow::into_session)
                .transpose()
            }

            async fn list_live_sessions(
                &self,
                user_id: parley_actors::domain::UserId,
                after: Option<parley_actors::domain::SessionId>,
                limit: u32,
            ) -> parley_actors::store::StoreResult<Vec<parley_actors::store::Session>> {
                // Keyset pagination on (created_at desc, id desc): the page
                // starts strictly after the cursor session's position, which
                // is looked up by id whether or not it has been revoked since.
                // An unknown cursor yields an empty page.
                let rows = sqlx::query_as::<_, $crate::storage::SessionRow>(concat!(
                    "select ", session_columns!(), " from sessions s \
                     where s.user_id = $1 and s.revoked_at is null \
                       and ($2 is null or exists ( \
                         select 1 from sessions c where c.id = $2 \
                           and (s.created_at < c.created_at \
                                or (s.created_at = c.created_at and s.id < c.id)))) \
                     order by s.created_at desc, s.id desc \
                     limit $3"
                ))
                .bind(user_id.to_string())
                .bind(after.map(|id| id.to_string()))
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await
                .map_err($crate::storage::db_err)?;
                $crate::storage::convert_all(rows, $crate::storage::SessionRow::into_session)
            }

            async fn sessions_revoked_since(
                &self,
                since: chrono::DateTime<chrono::Utc>,
            ) -> parley_actors::store::StoreResult<
                Vec<(parley_actors::domain::SessionId, parley_actors::domain::UserId)>,
            > {
                let rows: Vec<(String, String)> =
                    sqlx::query_as("select id, user_id from sessions where revoked_at >= $1")
                        .bind($crate::storage::to_ms(since))
                        .fetch_all(&self.pool)
                        .await
                        .map_err($crate::storage::db_err)?;
                rows.into_iter()
                    .map(|(id, user_id)| {
                        Ok((
                            $crate::storage::parse_col("sessions.id", &id)?,
                            $crate::storage::parse_col("sessions.user_id", &user_id)?,
                        ))
                    })
                    .collect()
            }

            async fn rotate_refresh_token(
                &self,
                token_hash: &str,
                replacement: parley_actors::store::NewRefreshToken,
                now: chrono::DateTime<chrono::Utc>,
            ) -> parley_actors::store::StoreResult<parley_actors::store::RefreshOutcome> {
                use parley_actors::store::RefreshOutcome;
                let now_ms = $crate::storage::to_ms(now);
                // The first statement writes, so the transaction holds the
                // write lock from the start (SQLite) or the row lock
                // (PostgreSQL): of two concurrent calls with the same token,
                // the second waits and then finds it spent.
                let mut tx = self.pool.begin().await.map_err($crate::storage::db_err)?;
                let spent: Option<(String,)> = sqlx::query_as(
                    "update refresh_tokens set spent_at = $2 \
                     where token_hash = $1 and spent_at is null and expires_at > $2 \
                       and exists (select 1 from sessions s \
                                   where s.id = refresh_tokens.session_id \
                                     and s.revoked_at is null) \
                     returning session_id",
                )
                .bind(token_hash)
                .bind(now_ms)
                .fetch_optional(&mut *tx)
                .await
                .map_err($crate::storage::db_err)?;

                if let Some((session_id,)) = spent {
                    // The replacement belongs to the spent token's session:
                    // callers only learn the session from this call.
                    sqlx::query(
                        "insert into refresh_tokens (token_hash, session_id, created_at, expires_at) \
                         values ($1, $2, $3, $4)",
                    )
                    .bind(&replacement.token_hash)
                    .bind(&session_id)
                    .bind($crate::storage::to_ms(replacement.created_at))
                    .bind($crate::storage::to_ms(replacement.expires_at))
                    .execute(&mut *tx)
                    .await
                    .map_err($crate::storage::db_err)?;
                    let session = sqlx::query_as::<_, $crate::storage::SessionRow>(concat!(
                        "update sessions set last_seen_at = $2 where id = $1 returning ",
                        session_columns!()
                    ))
                    .bind(&session_id)
                    .bind(now_ms)
                    .fetch_one(&mut *tx)
                    .await
                    .map_err($crate::storage::db_err)?;
                    tx.commit().await.map_err($crate::storage::db_err)?;
                    return Ok(RefreshOutcome::Rotated {
                        session: session.into_session()?,
                    });
                }

                // Not spendable: find out why.
                let state = sqlx::query_as::<_, $crate::storage::TokenStateRow>(
                    "select t.session_id, s.user_id, t.expires_at, t.spent_at, s.revoked_at \
                     from refresh_tokens t join sessions s on s.id = t.session_id \
                     where t.token_hash = $1",
                )
                .bind(token_hash)
                .fetch_optional(&mut *tx)
                .await
                .map_err($crate::storage::db_err)?;
                let Some(state) = state else {
                    return Ok(RefreshOutcome::Unknown);
                };
                if state.revoked_at.is_some() {
                    // Nothing left to protect.
                    return Ok(RefreshOutcome::Dead);
                }
                if state.spent_at.is_some() {
                    // A spent token presented again: someone else may hold
                    // it. This wins over expiry, since a legitimate client
                    // never presents a token twice.
                    sqlx::query(
                        "update sessions set revoked_at = $2, revoked_reason = 'refresh_reuse' \
                         where id = $1 and revoked_at is null",
                    )
                    .bind(&state.session_id)
                    .bind(now_ms)
                    .execute(&mut *tx)
                    .await
                    .map_err($crate::storage::db_err)?;
                    tx.commit().await.map_err($crate::storage::db_err)?;
                    return Ok(RefreshOutcome::Reused {
                        session_id: $crate::storage::parse_col(
                            "refresh_tokens.session_id",
                            &state.session_id,
                        )?,
                        user_id: $crate::storage::parse_col("sessions.user_id", &state.user_id)?,
                    });
                }
                // Expired (expires_at <= now): the update above changed nothing.
                debug_assert!(state.expires_at <= now_ms);
                Ok(RefreshOutcome::Dead)
            }

            async fn touch_session(
                &self,
                id: parley_actors::domain::SessionId,
                at: chrono::DateTime<chrono::Utc>,
                ip: Option<std::net::IpAddr>,
            ) -> parley_actors::store::StoreResult<()> {
                // last_seen_at only moves forward (`case`, since SQLite has
                // no `greatest`); a missing ip keeps the stored one. An
                // unknown or revoked session is left alone: a race with a
                // revoke is not an error.
                sqlx::query(
                    "update sessions set \
                       last_seen_at = case when $2 > last_seen_at then $2 else last_seen_at end, \
                       ip = coalesce($3, ip) \
                     where id = $1 and revoked_at is null",
                )
                .bind(id.to_string())
                .bind($crate::storage::to_ms(at))
                .bind(ip.map(|ip| ip.to_string()))
                .execute(&self.pool)
                .await
                .map_err($crate::storage::db_err)?;
                Ok(())
            }

            async fn revoke_session(
                &self,
                id: parley_actors::domain::SessionId,
                reason: &str,
                at: chrono::DateTime<chrono::Utc>,
            ) -> parley_actors::store::StoreResult<bool> {
                let done = sqlx::query(
                    "update sessions set revoked_at = $2, revoked_reason = $3 \
                     where id = $1 and revoked_at is null",
                )
                .bind(id.to_string())
                .bind($crate::storage::to_ms(at))
                .bind(reason)
                .execute(&self.pool)
                .await
                .map_err($crate::storage::db_err)?;
                Ok(done.rows_affected() > 0)
            }

            async fn revoke_user_sessions(
                &self,
                user_id: parley_actors::domain::UserId,
                keep: Option<parley_actors::domain::SessionId>,
                reason: &str,
                at: chrono::DateTime<chrono::Utc>,
            ) -> parley_actors::store::StoreResult<Vec<parley_actors::domain::SessionId>> {
                let rows: Vec<(String,)> = sqlx::query_as(
                    "update sessions set revoked_at = $3, revoked_reason = $4 \
                     where user_id = $1 and revoked_at is null and ($2 is null or id <> $2) \
                     returning id",
                )
                .bind(user_id.to_string())
                .bind(keep.map(|id| id.to_string()))
                .bind($crate::storage::to_ms(at))
                .bind(reason)
                .fetch_all(&self.pool)
                .await
                .map_err($crate::storage::db_err)?;
                rows.iter()
                    .map(|(id,)| $crate::storage::parse_col("sessions.id", id))
                    .collect()
            }

            // ---- audit log ----------------------------------------------

            async fn create_audit_entry(
                &self,
                entry: parley_actors::store::NewAuditEntry,
            ) -> parley_actors::store::StoreResult<()> {
                sqlx::query(
                    "insert into audit_log (id, at, actor_id, action, target_type, target_id, \
                       ip, user_agent, request_id, details) \
                     values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                )
                .bind(entry.id.to_string())
                .bind($crate::storage::to_ms(entry.at))
                .bind(entry.actor_id.map(|id| id.to_string()))
                .bind(&entry.action)
                .bind(entry.target_type.as_deref())
                .bind(entry.target_id.as_deref())
                .bind(entry.ip.map(|ip| ip.to_string()))
                .bind(entry.user_agent.as_deref())
                .bind(entry.request_id.as_deref())
                .bind(entry.details.to_string())
                .execute(&self.pool)
                .await
                .map_err($crate::storage::db_err)?;
                Ok(())
            }

            async fn list_audit_entries(
                &self,
                action: Option<&str>,
                limit: u32,
            ) -> parley_actors::store::StoreResult<Vec<parley_actors::store::AuditEntry>> {
                let rows = sqlx::query_as::<_, $crate::storage::AuditRow>(
                    "select id, at, actor_id, action, target_type, target_id, ip, user_agent, \
                       request_id, details \
                     from audit_log \
                     where $1 is null or action = $1 \
                     order by at desc, id desc \
                     limit $2",
                )
                .bind(action)
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await
                .map_err($crate::storage::db_err)?;
                $crate::storage::convert_all(rows, $crate::storage::AuditRow::into_entry)
            }
        }
    };
}

#[cfg(test)]
mod tests {
    //! The store suite both backends run: `store_test_suite!(fresh_db)` in
    //! `sqlite.rs` and `postgres.rs` turns every case below into a test on a
    //! fresh database of that backend.

    use std::future::Future;
    use std::sync::Arc;

    use chrono::{DateTime, Duration as Span, Utc};
    use futures_util::future::BoxFuture;
    use parley_actors::domain::{
        AuditId, Email, Role, RoomId, RoomName, SessionId, UserId, UserStatus, Username, Visibility,
    };
    use parley_actors::store::{
        AuditEntry, LoginFailure, NewAuditEntry, NewRefreshToken, NewRoom, NewSession, NewUser,
        RefreshOutcome, Session, Store, StoreError,
    };

    use super::{Backend, connect, migrate_down, migrate_up};

    // The chat cases live with the chat SQL; the suite finds them here.
    pub(super) use super::chat::tests::*;

    /// Frees what a test database holds (a temp dir, a PostgreSQL database).
    pub(super) trait Cleanup: Send + std::fmt::Debug {
        fn cleanup(self: Box<Self>) -> BoxFuture<'static, ()>;
    }

    impl Cleanup for tempfile::TempDir {
        fn cleanup(self: Box<Self>) -> BoxFuture<'static, ()> {
            Box::pin(async move { drop(self) })
        }
    }

    /// A migrated, empty database and its store.
    #[derive(Debug)]
    pub(super) struct TestDb {
        url: String,
        store: Arc<dyn Store>,
        cleanup: Box<dyn Cleanup>,
    }

    impl TestDb {
        pub(super) fn new(url: String, store: Arc<dyn Store>, cleanup: Box<dyn Cleanup>) -> Self {
            Self {
                url,
                store,
                cleanup,
            }
        }

        /// Runs one case, then closes the store and cleans up, also when
        /// the case panics (the panic is passed on afterwards).
        pub(super) async fn run<F, Fut>(self, case: F)
        where
            F: FnOnce(String, Arc<dyn Store>) -> Fut,
            Fut: Future<Output = ()> + Send + 'static,
        {
            let outcome = tokio::spawn(case(self.url.clone(), Arc::clone(&self.store))).await;
            self.store.close().await;
            drop(self.store);
            self.cleanup.cleanup().await;
            if let Err(err) = outcome {
                match err.try_into_panic() {
                    Ok(panic) => std::panic::resume_unwind(panic),
                    Err(err) => panic!("test case did not finish: {err}"),
                }
            }
        }
    }

    /// One `#[tokio::test]` per case, each on a database from `$fresh`
    /// (an `async fn() -> Option<TestDb>`; `None` skips the test).
    macro_rules! store_test_suite {
        ($fresh:ident) => {
            $crate::storage::tests::store_test_suite!(
                @cases $fresh,
                users_are_created_and_read_back,
                taken_usernames_and_emails_conflict_on_that_field,
                login_failures_lock_the_account_at_the_threshold,
                role_status_and_password_changes_are_stored,
                a_rotated_token_presented_again_revokes_its_session,
                expired_refresh_tokens_are_dead_and_left_unchanged,
                concurrent_rotations_of_one_token_rotate_it_once,
                live_sessions_page_newest_first_after_the_cursor,
                touching_a_session_only_moves_last_seen_forward,
                revoking_all_sessions_keeps_the_current_one,
                audit_entries_are_listed_newest_first,
                a_closed_store_is_unavailable,
                migrations_go_down_and_up_again,
                rooms_are_created_updated_and_deleted_with_their_contents,
                public_rooms_are_found_by_name_newest_first,
                direct_rooms_are_created_once_per_pair,
                members_are_added_promoted_removed_and_banned,
                invites_are_pending_once_until_answered,
                concurrent_sends_get_gapless_seqs,
                client_ids_make_sends_idempotent,
                batches_commit_together_in_order,
                groups_of_rooms_commit_together_and_fail_alone,
                unread_counts_look_at_the_newest_messages_only,
                messages_are_edited_reacted_to_and_deleted,
                history_pages_both_ways_and_hides_blocked_authors,
                unread_counts_skip_own_deleted_and_blocked_messages,
                search_covers_my_rooms_and_tolerates_any_input,
                blocks_are_created_listed_and_lifted,
            );
        };
        (@cases $fresh:ident, $($case:ident),+ $(,)?) => {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    if let Some(db) = $fresh().await {
                        db.run($crate::storage::tests::$case).await;
                    }
                }
            )+
        };
    }
    pub(super) use store_test_suite;

    // ---- fixtures -----------------------------------------------------------

    /// A fixed instant plus `ms` milliseconds.
    pub(super) fn t(ms: i64) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(1_700_000_000_000 + ms).expect("valid time")
    }

    pub(super) fn new_user(name: &str) -> NewUser {
        NewUser {
            id: UserId::new(),
            username: Username::parse(name).expect("valid username"),
            email: Email::parse(&format!("{name}@example.com")).expect("valid email"),
            password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".to_owned(),
            role: Role::User,
            created_at: t(0),
        }
    }

    fn new_session(user_id: UserId, created_at: DateTime<Utc>) -> NewSession {
        NewSession {
            id: SessionId::new(),
            user_id,
            user_agent: Some("parley-test/1.0".to_owned()),
            ip: Some("192.0.2.1".parse().expect("ip")),
            created_at,
        }
    }

    fn token(hash: &str, session_id: SessionId, created_at: DateTime<Utc>) -> NewRefreshToken {
        NewRefreshToken {
            token_hash: hash.to_owned(),
            session_id,
            created_at,
            expires_at: created_at + Span::days(30),
        }
    }

    /// A user plus a session whose first refresh token hashes to `hash`.
    async fn user_with_session(store: &dyn Store, name: &str, hash: &str) -> (UserId, Session) {
        let user = store
            .create_user(new_user(name))
            .await
            .expect("create user");
        let new = new_session(user.id, t(0));
        let refresh = token(hash, new.id, t(0));
        let session = store
            .create_session(new, refresh)
            .await
            .expect("create session");
        (user.id, session)
    }

    // ---- users --------------------------------------------------------------

    pub(super) async fn users_are_created_and_read_back(_: String, store: Arc<dyn Store>) {
        let new = new_user("Alice");
        let created = store.create_user(new.clone()).await.expect("create");
        assert_eq!(created.id, new.id);
        assert_eq!(created.username.as_str(), "alice");
        assert_eq!(created.email.as_str(), "alice@example.com");
        assert_eq!(created.password_hash, new.password_hash);
        assert_eq!(
            (created.display_name.as_deref(), created.bio.as_deref()),
            (None, None)
        );
        assert_eq!(created.avatar_url, None);
        assert_eq!(
            (created.role, created.status),
            (Role::User, UserStatus::Active)
        );
        assert!(!created.two_factor_enabled);
        assert_eq!((created.failed_logins, created.locked_until), (0, None));
        assert_eq!((created.created_at, created.updated_at), (t(0), t(0)));

        let by_id = store.user_by_id(new.id).await.expect("by id");
        assert_eq!(by_id.as_ref(), Some(&created));
        let by_name = store.user_by_login("alice").await.expect("by name");
        assert_eq!(by_name.as_ref(), Some(&created));
        let by_email = store
            .user_by_login("alice@example.com")
            .await
            .expect("by email");
        assert_eq!(by_email.as_ref(), Some(&created));
        assert_eq!(store.user_by_login("nobody").await.expect("unknown"), None);
        assert_eq!(
            store.user_by_id(UserId::new()).await.expect("unknown"),
            None
        );
    }

    pub(super) async fn taken_usernames_and_emails_conflict_on_that_field(
        _: String,
        store: Arc<dyn Store>,
    ) {
        store.create_user(new_user("bob")).await.expect("first");

        let mut same_name = new_user("BOB");
        same_name.email = Email::parse("other@example.com").expect("email");
        let err = store.create_user(same_name).await.expect_err("taken name");
        assert!(
            matches!(err, StoreError::Conflict { field: "username" }),
            "{err:?}"
        );

        let mut same_email = new_user("robert");
        same_email.email = Email::parse("Bob@Example.COM").expect("email");
        let err = store
            .create_user(same_email)
            .await
            .expect_err("taken email");
        assert!(
            matches!(err, StoreError::Conflict { field: "email" }),
            "{err:?}"
        );
    }

    pub(super) async fn login_failures_lock_the_account_at_the_threshold(
        _: String,
        store: Arc<dyn Store>,
    ) {
        let id = store
            .create_user(new_user("carol"))
            .await
            .expect("create")
            .id;
        let until = t(15 * 60_000);
        for n in 1..=4 {
            let failure = store
                .record_login_failure(id, 5, until)
                .await
                .expect("fail");
            assert_eq!(
                failure,
                LoginFailure {
                    failed_logins: n,
                    locked_until: None
                }
            );
        }
        let fifth = store
            .record_login_failure(id, 5, until)
            .await
            .expect("fail");
        assert_eq!(
            fifth,
            LoginFailure {
                failed_logins: 0,
                locked_until: Some(until)
            }
        );
        let user = store.user_by_id(id).await.expect("read").expect("exists");
        assert_eq!((user.failed_logins, user.locked_until), (0, Some(until)));

        // The count starts again; the running lock is kept, not extended.
        let sixth = store
            .record_login_failure(id, 5, t(99))
            .await
            .expect("fail");
        assert_eq!(
            sixth,
            LoginFailure {
                failed_logins: 1,
                locked_until: None
            }
        );
        let user = store.user_by_id(id).await.expect("read").expect("exists");
        assert_eq!(user.locked_until, Some(until));

        store.clear_login_failures(id).await.expect("clear");
        let user = store.user_by_id(id).await.expect("read").expect("exists");
        assert_eq!((user.failed_logins, user.locked_until), (0, None));

        let err = store
            .record_login_failure(UserId::new(), 5, until)
            .await
            .expect_err("unknown user");
        assert!(matches!(err, StoreError::Other(_)), "{err:?}");
    }

    pub(super) async fn role_status_and_password_changes_are_stored(
        _: String,
        store: Arc<dyn Store>,
    ) {
        let id = store
            .create_user(new_user("dave"))
            .await
            .expect("create")
            .id;
        store
            .update_user_role_status(id, Some(Role::Admin), None, t(10))
            .await
            .expect("role");
        let user = store.user_by_id(id).await.expect("read").expect("exists");
        assert_eq!(
            (user.role, user.status, user.updated_at),
            (Role::Admin, UserStatus::Active, t(10))
        );

        store
            .update_user_role_status(id, None, Some(UserStatus::Suspended), t(20))
            .await
            .expect("status");
        let user = store.user_by_id(id).await.expect("read").expect("exists");
        assert_eq!(
            (user.role, user.status, user.updated_at),
            (Role::Admin, UserStatus::Suspended, t(20))
        );

        store
            .update_password_hash(id, "$argon2id$new", t(30))
            .await
            .expect("password");
        let user = store.user_by_id(id).await.expect("read").expect("exists");
        assert_eq!(
            (user.password_hash.as_str(), user.updated_at),
            ("$argon2id$new", t(30))
        );

        let err = store
            .update_password_hash(UserId::new(), "x", t(40))
            .await
            .expect_err("unknown user");
        assert!(matches!(err, StoreError::Other(_)), "{err:?}");
    }

    // ---- sessions and refresh tokens ----------------------------------------

    pub(super) async fn a_rotated_token_presented_again_revokes_its_session(
        _: String,
        store: Arc<dyn Store>,
    ) {
        let (user_id, session) = user_with_session(&*store, "erin", "hash-a").await;
        let sid = session.id;
        assert_eq!(session.user_id, user_id);
        assert_eq!(session.user_agent.as_deref(), Some("parley-test/1.0"));
        assert_eq!(session.ip, Some("192.0.2.1".parse().expect("ip")));
        assert_eq!((session.created_at, session.last_seen_at), (t(0), t(0)));
        assert_eq!(
            (session.revoked_at, session.revoked_reason.as_deref()),
            (None, None)
        );
        assert_eq!(
            store.session_by_id(sid).await.expect("read"),
            Some(session.clone())
        );

        // The replacement's session_id is not known to callers; it is ignored.
        let outcome = store
            .rotate_refresh_token(
                "hash-a",
                token("hash-b", SessionId::new(), t(1000)),
                t(1000),
            )
            .await
            .expect("rotate");
        let RefreshOutcome::Rotated { session: rotated } = outcome else {
            panic!("expected Rotated, got {outcome:?}");
        };
        assert_eq!(rotated.id, sid);
        assert_eq!(rotated.last_seen_at, t(1000));

        let outcome = store
            .rotate_refresh_token("hash-a", token("hash-c", sid, t(2000)), t(2000))
            .await
            .expect("reuse");
        assert_eq!(
            outcome,
            RefreshOutcome::Reused {
                session_id: sid,
                user_id
            }
        );
        let revoked = store
            .session_by_id(sid)
            .await
            .expect("read")
            .expect("exists");
        assert_eq!(revoked.revoked_at, Some(t(2000)));
        assert_eq!(revoked.revoked_reason.as_deref(), Some("refresh_reuse"));

        // The live token of a revoked session is dead; the reuse stored no
        // replacement.
        let outcome = store
            .rotate_refresh_token("hash-b", token("hash-d", sid, t(3000)), t(3000))
            .await
            .expect("dead");
        assert_eq!(outcome, RefreshOutcome::Dead);
        let outcome = store
            .rotate_refresh_token("hash-c", token("hash-e", sid, t(3000)), t(3000))
            .await
            .expect("unknown");
        assert_eq!(outcome, RefreshOutcome::Unknown);

        assert_eq!(
            store.sessions_revoked_since(t(2000)).await.expect("since"),
            vec![(sid, user_id)]
        );
        assert!(
            store
                .sessions_revoked_since(t(2001))
                .await
                .expect("since")
                .is_empty()
        );
    }

    pub(super) async fn expired_refresh_tokens_are_dead_and_left_unchanged(
        _: String,
        store: Arc<dyn Store>,
    ) {
        let (_, session) = user_with_session(&*store, "frank", "hash-a").await;
        let expiry = t(0) + Span::days(30);
        let outcome = store
            .rotate_refresh_token("hash-a", token("hash-b", session.id, expiry), expiry)
            .await
            .expect("expired");
        assert_eq!(outcome, RefreshOutcome::Dead);
        let after = store.session_by_id(session.id).await.expect("read");
        assert_eq!(after, Some(session.clone()));

        // Nothing was spent: the same token still rotates before its expiry.
        let outcome = store
            .rotate_refresh_token("hash-a", token("hash-b", session.id, t(5)), t(5))
            .await
            .expect("rotate");
        assert!(
            matches!(outcome, RefreshOutcome::Rotated { .. }),
            "{outcome:?}"
        );
    }

    pub(super) async fn concurrent_rotations_of_one_token_rotate_it_once(
        _: String,
        store: Arc<dyn Store>,
    ) {
        let (_, session) = user_with_session(&*store, "grace", "hash-a").await;
        let (first, second) = tokio::join!(
            store.rotate_refresh_token("hash-a", token("hash-b1", session.id, t(9)), t(9)),
            store.rotate_refresh_token("hash-a", token("hash-b2", session.id, t(9)), t(9)),
        );
        let outcomes = [first.expect("first"), second.expect("second")];
        let rotated = outcomes
            .iter()
            .filter(|o| matches!(o, RefreshOutcome::Rotated { .. }))
            .count();
        let reused = outcomes
            .iter()
            .filter(|o| matches!(o, RefreshOutcome::Reused { .. }))
            .count();
        assert_eq!((rotated, reused), (1, 1), "{outcomes:?}");
    }

    pub(super) async fn live_sessions_page_newest_first_after_the_cursor(
        _: String,
        store: Arc<dyn Store>,
    ) {
        let user = store.create_user(new_user("heidi")).await.expect("create");
        let other = store.create_user(new_user("ivan")).await.expect("create");
        // Two pairs share a created_at, so the id breaks the tie.
        let mut live = Vec::new();
        for (i, ms) in [0, 10, 10, 20, 30, 30, 40].into_iter().enumerate() {
            let new = new_session(user.id, t(ms));
            let refresh = token(&format!("h-{i}"), new.id, t(ms));
            live.push(store.create_session(new, refresh).await.expect("session"));
        }
        let revoked = live.remove(3);
        assert!(
            store
                .revoke_session(revoked.id, "logout", t(50))
                .await
                .expect("revoke")
        );
        let new = new_session(other.id, t(60));
        let refresh = token("h-other", new.id, t(60));
        store.create_session(new, refresh).await.expect("session");

        live.sort_by_key(|s| std::cmp::Reverse((s.created_at, s.id.to_string())));
        let expected: Vec<SessionId> = live.iter().map(|s| s.id).collect();

        let mut seen = Vec::new();
        let mut cursor = None;
        loop {
            let page = store
                .list_live_sessions(user.id, cursor, 2)
                .await
                .expect("page");
            assert!(page.len() <= 2);
            let Some(last) = page.last() else { break };
            cursor = Some(last.id);
            seen.extend(page.iter().map(|s| s.id));
        }
        assert_eq!(seen, expected);
        assert_eq!(
            store
                .list_live_sessions(user.id, None, 100)
                .await
                .expect("all"),
            live
        );
        // An unknown cursor has no position: empty page.
        assert!(
            store
                .list_live_sessions(user.id, Some(SessionId::new()), 10)
                .await
                .expect("unknown cursor")
                .is_empty()
        );
    }

    pub(super) async fn touching_a_session_only_moves_last_seen_forward(
        _: String,
        store: Arc<dyn Store>,
    ) {
        let (_, session) = user_with_session(&*store, "judy", "hash-a").await;
        let v6 = "2001:db8::1".parse().expect("ip");
        store
            .touch_session(session.id, t(5000), Some(v6))
            .await
            .expect("touch");
        let read = store
            .session_by_id(session.id)
            .await
            .expect("read")
            .expect("exists");
        assert_eq!((read.last_seen_at, read.ip), (t(5000), Some(v6)));

        store
            .touch_session(session.id, t(1000), None)
            .await
            .expect("touch");
        let read = store
            .session_by_id(session.id)
            .await
            .expect("read")
            .expect("exists");
        assert_eq!((read.last_seen_at, read.ip), (t(5000), Some(v6)));

        store
            .revoke_session(session.id, "logout", t(6000))
            .await
            .expect("revoke");
        store
            .touch_session(session.id, t(9000), None)
            .await
            .expect("touch");
        let read = store
            .session_by_id(session.id)
            .await
            .expect("read")
            .expect("exists");
        assert_eq!(read.last_seen_at, t(5000));
        // Unknown sessions are not an error either.
        store
            .touch_session(SessionId::new(), t(9000), None)
            .await
            .expect("touch");
    }

    pub(super) async fn revoking_all_sessions_keeps_the_current_one(
        _: String,
        store: Arc<dyn Store>,
    ) {
        let user = store.create_user(new_user("ken")).await.expect("create");
        let mut ids = Vec::new();
        for i in 0..3 {
            let new = new_session(user.id, t(i));
            let refresh = token(&format!("h-{i}"), new.id, t(i));
            ids.push(
                store
                    .create_session(new, refresh)
                    .await
                    .expect("session")
                    .id,
            );
        }
        let (other_user, other) = user_with_session(&*store, "leo", "h-other").await;

        // A token for another session is refused before anything is written.
        let new = new_session(user.id, t(5));
        let err = store
            .create_session(new, token("h-x", SessionId::new(), t(5)))
            .await
            .expect_err("mismatched token");
        assert!(matches!(err, StoreError::Other(_)), "{err:?}");

        let keep = ids[1];
        let mut revoked = store
            .revoke_user_sessions(user.id, Some(keep), "password_change", t(10))
            .await
            .expect("revoke all");
        revoked.sort();
        let mut expected = vec![ids[0], ids[2]];
        expected.sort();
        assert_eq!(revoked, expected);

        let live: Vec<SessionId> = store
            .list_live_sessions(user.id, None, 10)
            .await
            .expect("list")
            .iter()
            .map(|s| s.id)
            .collect();
        assert_eq!(live, vec![keep]);
        let first = store
            .session_by_id(ids[0])
            .await
            .expect("read")
            .expect("exists");
        assert_eq!(
            (first.revoked_at, first.revoked_reason.as_deref()),
            (Some(t(10)), Some("password_change"))
        );
        let untouched = store
            .list_live_sessions(other_user, None, 10)
            .await
            .expect("list");
        assert_eq!(untouched, vec![other]);

        // Only live sessions count as revoked, once.
        assert!(
            store
                .revoke_user_sessions(user.id, Some(keep), "again", t(20))
                .await
                .expect("again")
                .is_empty()
        );
        assert!(
            !store
                .revoke_session(ids[0], "logout", t(20))
                .await
                .expect("revoked")
        );
        assert!(
            store
                .revoke_session(keep, "logout", t(20))
                .await
                .expect("live")
        );
        assert!(
            !store
                .revoke_session(keep, "logout", t(21))
                .await
                .expect("twice")
        );
        assert!(
            !store
                .revoke_session(SessionId::new(), "logout", t(21))
                .await
                .expect("unknown")
        );
    }

    // ---- audit log ----------------------------------------------------------

    pub(super) async fn audit_entries_are_listed_newest_first(_: String, store: Arc<dyn Store>) {
        let actor = UserId::new();
        let entry = |at: i64, action: &str, actor_id: Option<UserId>| NewAuditEntry {
            id: AuditId::new(),
            at: t(at),
            actor_id,
            action: action.to_owned(),
            target_type: Some("user".to_owned()),
            target_id: actor_id.map(|id| id.to_string()),
            ip: Some("198.51.100.7".parse().expect("ip")),
            user_agent: Some("curl/8".to_owned()),
            request_id: Some(format!("req-{at}")),
            details: serde_json::json!({ "at": at, "nested": { "ok": true } }),
        };
        let entries = [
            entry(0, "login", Some(actor)),
            entry(1, "login_failed", None),
            entry(2, "login", Some(actor)),
        ];
        for e in &entries {
            store.create_audit_entry(e.clone()).await.expect("append");
        }
        let stored = |e: &NewAuditEntry| AuditEntry {
            id: e.id,
            at: e.at,
            actor_id: e.actor_id,
            action: e.action.clone(),
            target_type: e.target_type.clone(),
            target_id: e.target_id.clone(),
            ip: e.ip,
            user_agent: e.user_agent.clone(),
            request_id: e.request_id.clone(),
            details: e.details.clone(),
        };

        let all = store.list_audit_entries(None, 10).await.expect("all");
        let expected: Vec<AuditEntry> = entries.iter().rev().map(stored).collect();
        assert_eq!(all, expected);
        let logins = store
            .list_audit_entries(Some("login"), 10)
            .await
            .expect("logins");
        assert_eq!(logins, vec![stored(&entries[2]), stored(&entries[0])]);
        let newest = store.list_audit_entries(None, 1).await.expect("newest");
        assert_eq!(newest, vec![stored(&entries[2])]);
    }

    // ---- health and migrations ----------------------------------------------

    pub(super) async fn a_closed_store_is_unavailable(_: String, store: Arc<dyn Store>) {
        store.ping().await.expect("ping");
        store.close().await;
        let err = store.ping().await.expect_err("closed");
        assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    }

    pub(super) async fn migrations_go_down_and_up_again(url: String, store: Arc<dyn Store>) {
        let id = store
            .create_user(new_user("mallory"))
            .await
            .expect("create")
            .id;
        let room = NewRoom {
            id: RoomId::new(),
            name: RoomName::parse("room").expect("name"),
            topic: None,
            visibility: Visibility::Public,
            owner: id,
            created_at: t(0),
        };
        let room_id = store.create_room(room.clone()).await.expect("room").id;

        // The chat migrations: SQLite has a third, which moved full-text
        // search into a file of its own.
        let chat: Vec<i64> = match Backend::of(&url).expect("backend") {
            Backend::Sqlite => vec![3, 2],
            Backend::Postgres => vec![2],
        };
        let steps = u32::try_from(chat.len()).expect("few");
        // These steps take the chat tables and leave the accounts.
        assert_eq!(migrate_down(&url, steps).await.expect("down"), chat);
        let err = store.room_by_id(room_id).await.expect_err("no rooms table");
        assert!(matches!(err, StoreError::Other(_)), "{err:?}");
        assert!(store.user_by_id(id).await.expect("read").is_some());
        migrate_up(&url).await.expect("up");
        assert_eq!(store.room_by_id(room_id).await.expect("read"), None);
        store.create_room(room).await.expect("room again");

        assert_eq!(migrate_down(&url, steps).await.expect("down"), chat);
        assert_eq!(migrate_down(&url, 1).await.expect("down"), vec![1]);
        let err = store.user_by_id(id).await.expect_err("no users table");
        assert!(matches!(err, StoreError::Other(_)), "{err:?}");
        assert!(
            migrate_down(&url, 1)
                .await
                .expect("nothing left")
                .is_empty()
        );

        migrate_up(&url).await.expect("up");
        migrate_up(&url).await.expect("up is idempotent");
        assert_eq!(store.user_by_id(id).await.expect("read"), None);
        store
            .create_user(new_user("mallory"))
            .await
            .expect("create again");
    }

    // ---- plain unit tests -----------------------------------------------------

    #[test]
    fn the_backend_follows_the_url_scheme() {
        assert_eq!(
            Backend::of("sqlite:data/parley.db").ok(),
            Some(Backend::Sqlite)
        );
        assert_eq!(Backend::of("sqlite::memory:").ok(), Some(Backend::Sqlite));
        assert_eq!(Backend::of("postgres://h/db").ok(), Some(Backend::Postgres));
        assert_eq!(
            Backend::of("PostgreSQL://h/db").ok(),
            Some(Backend::Postgres)
        );
        assert!(Backend::of("mysql://h/db").is_err());
        assert!(Backend::of("data/parley.db").is_err());
    }

    #[tokio::test]
    async fn unknown_schemes_are_refused_without_echoing_the_url() {
        let err = connect("mysql://root:hunter2@h/db", 1)
            .await
            .expect_err("unsupported");
        assert!(
            matches!(&err, StoreError::Other(msg) if !msg.contains("hunter2")),
            "{err:?}"
        );
    }

    #[test]
    fn times_round_trip_at_millisecond_precision() {
        let at = t(123) + Span::microseconds(456);
        let back = super::from_ms(super::to_ms(at)).expect("in range");
        assert_eq!(back, t(123));
        assert!(super::from_ms(i64::MAX).is_err());
    }
}

// Declared after the macros above, which are textually scoped: the backends
// expand `impl_store!` and `impl_chat_store!` (exported from `chat` by
// `macro_use`, so `chat` comes first).
#[macro_use]
mod chat;
mod postgres;
mod search;
mod sqlite;
