//! Two-factor authentication: the user's TOTP secret, whether 2FA is on
//! and the last accepted step (columns of `users`), and the hashed
//! recovery codes (`recovery_codes`). Migration 0004.

use chrono::{DateTime, Utc};
use parley_actors::domain::UserId;
use parley_actors::store::{StoreResult, TotpState};

use crate::storage::rows::to_ms;

use super::{Fetch, Run, SqlStore, begin, commit};

impl SqlStore {
    /// The user's TOTP state; `None` for an unknown user.
    pub(super) async fn totp_state(&self, user_id: UserId) -> StoreResult<Option<TotpState>> {
        let row: Option<(Option<String>, bool, Option<i64>)> = sqlx::query_as(
            "select totp_secret, two_factor_enabled, totp_last_step from users where id = $1",
        )
        .bind(user_id.to_string())
        .optional(&self.pool)
        .await?;
        Ok(row.map(|(secret, enabled, last_step)| TotpState {
            secret,
            enabled,
            last_step: last_step.and_then(|s| u64::try_from(s).ok()),
        }))
    }

    /// Stores a new secret while 2FA is off; false when it is on.
    pub(super) async fn set_totp_secret(
        &self,
        user_id: UserId,
        secret: &str,
        at: DateTime<Utc>,
    ) -> StoreResult<bool> {
        sqlx::query(
            "update users set totp_secret = $2, updated_at = $3 \
             where id = $1 and not two_factor_enabled",
        )
        .bind(user_id.to_string())
        .bind(secret)
        .bind(to_ms(at))
        .changed(&self.pool)
        .await
    }

    /// Turns 2FA on (the secret set up, 2FA off), recording `step` as used
    /// and replacing the recovery codes; false when it was on already or
    /// never set up.
    pub(super) async fn enable_totp(
        &self,
        user_id: UserId,
        step: u64,
        recovery_code_hashes: &[String],
        at: DateTime<Utc>,
    ) -> StoreResult<bool> {
        let mut tx = begin(&self.pool).await?;
        let enabled = sqlx::query(
            "update users set two_factor_enabled = true, totp_last_step = $2, updated_at = $3 \
             where id = $1 and not two_factor_enabled and totp_secret is not null",
        )
        .bind(user_id.to_string())
        .bind(i64::try_from(step).unwrap_or(i64::MAX))
        .bind(to_ms(at))
        .changed(&mut *tx)
        .await?;
        if !enabled {
            commit(tx).await?;
            return Ok(false);
        }
        sqlx::query("delete from recovery_codes where user_id = $1")
            .bind(user_id.to_string())
            .run(&mut *tx)
            .await?;
        for hash in recovery_code_hashes {
            sqlx::query(
                "insert into recovery_codes (user_id, code_hash, created_at) values ($1, $2, $3)",
            )
            .bind(user_id.to_string())
            .bind(hash)
            .bind(to_ms(at))
            .run(&mut *tx)
            .await?;
        }
        commit(tx).await?;
        Ok(true)
    }

    /// Records `step` as the last accepted one if it is later than the
    /// stored one; false: the step (or a later one) was accepted before.
    pub(super) async fn claim_totp_step(&self, user_id: UserId, step: u64) -> StoreResult<bool> {
        // One statement: two requests with the same code cannot both win.
        sqlx::query(
            "update users set totp_last_step = $2 \
             where id = $1 and two_factor_enabled \
               and (totp_last_step is null or totp_last_step < $2)",
        )
        .bind(user_id.to_string())
        .bind(i64::try_from(step).unwrap_or(i64::MAX))
        .changed(&self.pool)
        .await
    }

    /// Spends an unused recovery code; false when unknown or spent.
    pub(super) async fn use_recovery_code(
        &self,
        user_id: UserId,
        code_hash: &str,
        at: DateTime<Utc>,
    ) -> StoreResult<bool> {
        sqlx::query(
            "update recovery_codes set used_at = $3 \
             where user_id = $1 and code_hash = $2 and used_at is null",
        )
        .bind(user_id.to_string())
        .bind(code_hash)
        .bind(to_ms(at))
        .changed(&self.pool)
        .await
    }

    /// Unused recovery codes of a user.
    pub(super) async fn recovery_codes_left(&self, user_id: UserId) -> StoreResult<u32> {
        let (left,): (i64,) = sqlx::query_as(
            "select count(*) from recovery_codes where user_id = $1 and used_at is null",
        )
        .bind(user_id.to_string())
        .one(&self.pool)
        .await?;
        Ok(u32::try_from(left).unwrap_or(0))
    }

    /// Turns 2FA off: the secret, the last step and the recovery codes go.
    pub(super) async fn disable_totp(&self, user_id: UserId, at: DateTime<Utc>) -> StoreResult<()> {
        let mut tx = begin(&self.pool).await?;
        sqlx::query(
            "update users set two_factor_enabled = false, totp_secret = null, \
               totp_last_step = null, updated_at = $2 \
             where id = $1",
        )
        .bind(user_id.to_string())
        .bind(to_ms(at))
        .run(&mut *tx)
        .await?;
        sqlx::query("delete from recovery_codes where user_id = $1")
            .bind(user_id.to_string())
            .run(&mut *tx)
            .await?;
        commit(tx).await
    }
}
