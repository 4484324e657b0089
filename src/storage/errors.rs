//! sqlx errors mapped onto [`StoreError`], the one error type the actors see.

use parley_actors::store::{StoreError, StoreResult};
use sqlx::error::DatabaseError;
use sqlx::migrate::MigrateError;

/// Maps a sqlx error onto [`StoreError`].
///
/// Unique violations become `Conflict` carrying only the field name; lost
/// connections, timeouts and busy databases become `Unavailable`; the rest is
/// `Other`. The message of the latter two is for logs, not for clients.
pub(super) fn db_err(err: sqlx::Error) -> StoreError {
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
pub(super) fn migrate_err(err: MigrateError) -> StoreError {
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
pub(super) fn expect_found(
    rows_affected: u64,
    what: &str,
    id: impl std::fmt::Display,
) -> StoreResult<()> {
    if rows_affected == 0 {
        Err(StoreError::Other(format!("no {what} with id {id}")))
    } else {
        Ok(())
    }
}
