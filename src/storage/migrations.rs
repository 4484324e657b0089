//! `parley migrate`, written once for both databases: apply what is
//! pending, or revert the latest few. Each backend only supplies its pool and
//! its embedded [`Migrator`] (`migrations/sqlite`, `migrations/postgres`).

use parley_actors::store::StoreResult;
use sqlx::migrate::{Migrate, MigrateError, Migrator};
use sqlx::{Database, Pool};

use super::errors::{db_err, migrate_err};

/// The table sqlx records applied migrations in (sqlx's default).
const MIGRATIONS_TABLE: &str = "_sqlx_migrations";

/// Applies every pending migration of `migrator` on `pool`, then closes it.
pub(super) async fn up<DB>(pool: Pool<DB>, migrator: &Migrator) -> StoreResult<()>
where
    DB: Database,
    DB::Connection: Migrate,
{
    let result = migrator.run(&pool).await.map_err(migrate_err);
    pool.close().await;
    result
}

/// Reverts the `steps` latest applied migrations on one connection of
/// `pool`, then closes it; returns their versions, newest first.
pub(super) async fn down<DB>(
    pool: Pool<DB>,
    migrator: &Migrator,
    steps: u32,
) -> StoreResult<Vec<i64>>
where
    DB: Database,
    DB::Connection: Migrate,
{
    let mut conn = pool.acquire().await.map_err(db_err)?;
    let result = revert_latest(&mut *conn, migrator, steps).await;
    drop(conn);
    pool.close().await;
    result
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
