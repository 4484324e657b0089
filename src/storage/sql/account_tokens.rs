//! One-time tokens sent by mail (`account_tokens`: email verification and
//! password reset, stored hashed with the password stamp they are bound
//! to), and the verified mark they set on `users`. Migration 0004.

use chrono::{DateTime, Utc};
use parley_actors::domain::UserId;
use parley_actors::store::{NewAccountToken, StoreResult};

use crate::storage::rows::{parse_col, to_ms};

use super::{Fetch, Run, SqlStore};

impl SqlStore {
    /// Stores a one-time token (its hash).
    pub(super) async fn create_account_token(&self, new: NewAccountToken) -> StoreResult<()> {
        sqlx::query(
            "insert into account_tokens \
               (token_hash, user_id, purpose, password_stamp, created_at, expires_at) \
             values ($1, $2, $3, $4, $5, $6)",
        )
        .bind(&new.token_hash)
        .bind(new.user_id.to_string())
        .bind(&new.purpose)
        .bind(&new.password_stamp)
        .bind(to_ms(new.created_at))
        .bind(to_ms(new.expires_at))
        .run(&self.pool)
        .await?;
        Ok(())
    }

    /// Spends the unused, unexpired token of `purpose` with this hash;
    /// returns its user and password stamp. One statement, so a token is
    /// spent once however many requests present it at the same time.
    pub(super) async fn consume_account_token(
        &self,
        token_hash: &str,
        purpose: &str,
        at: DateTime<Utc>,
    ) -> StoreResult<Option<(UserId, String)>> {
        let row: Option<(String, String)> = sqlx::query_as(
            "update account_tokens set used_at = $3 \
             where token_hash = $1 and purpose = $2 and used_at is null and expires_at > $3 \
             returning user_id, password_stamp",
        )
        .bind(token_hash)
        .bind(purpose)
        .bind(to_ms(at))
        .optional(&self.pool)
        .await?;
        row.map(|(user_id, stamp)| Ok((parse_col("account_tokens.user_id", &user_id)?, stamp)))
            .transpose()
    }

    /// Marks the user's address verified (the first time only).
    pub(super) async fn mark_email_verified(
        &self,
        user_id: UserId,
        at: DateTime<Utc>,
    ) -> StoreResult<()> {
        sqlx::query(
            "update users set email_verified_at = coalesce(email_verified_at, $2), updated_at = $2 \
             where id = $1",
        )
        .bind(user_id.to_string())
        .bind(to_ms(at))
        .run(&self.pool)
        .await?;
        Ok(())
    }
}
