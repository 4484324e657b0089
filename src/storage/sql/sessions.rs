//! Sessions and their refresh tokens: sign-in, rotation with reuse
//! detection, last-seen tracking and revocation.

use std::net::IpAddr;

use chrono::{DateTime, Utc};
use parley_actors::domain::{SessionId, UserId};
use parley_actors::store::{
    NewRefreshToken, NewSession, RefreshOutcome, Session, StoreError, StoreResult,
};

use crate::storage::rows::{SessionRow, TokenStateRow, parse_col, to_ms};

use super::{Fetch, Run, SqlStore, begin, commit};

impl SqlStore {
    /// Inserts a session together with its first refresh token.
    pub(super) async fn create_session(
        &self,
        new: NewSession,
        refresh: NewRefreshToken,
    ) -> StoreResult<Session> {
        if refresh.session_id != new.id {
            return Err(StoreError::Other(format!(
                "refresh token for session {} passed with session {}",
                refresh.session_id, new.id
            )));
        }
        let mut tx = begin(&self.pool).await?;
        let row = sqlx::query_as::<_, SessionRow>(concat!(
            "insert into sessions (id, user_id, user_agent, ip, created_at, last_seen_at) \
             values ($1, $2, $3, $4, $5, $5) \
             returning ",
            session_columns!()
        ))
        .bind(new.id.to_string())
        .bind(new.user_id.to_string())
        .bind(new.user_agent.as_deref())
        .bind(new.ip.map(|ip| ip.to_string()))
        .bind(to_ms(new.created_at))
        .one(&mut *tx)
        .await?;
        sqlx::query(
            "insert into refresh_tokens (token_hash, session_id, created_at, expires_at) \
             values ($1, $2, $3, $4)",
        )
        .bind(&refresh.token_hash)
        .bind(new.id.to_string())
        .bind(to_ms(refresh.created_at))
        .bind(to_ms(refresh.expires_at))
        .run(&mut *tx)
        .await?;
        commit(tx).await?;
        row.into_session()
    }

    /// A session by id (revoked ones included).
    pub(super) async fn session_by_id(&self, id: SessionId) -> StoreResult<Option<Session>> {
        sqlx::query_as::<_, SessionRow>(concat!(
            "select ",
            session_columns!(),
            " from sessions where id = $1"
        ))
        .bind(id.to_string())
        .optional_into(&self.pool, SessionRow::into_session)
        .await
    }

    /// A user's live (not revoked) sessions, newest first, at most `limit`,
    /// starting after the session `after` (cursor) when given.
    pub(super) async fn list_live_sessions(
        &self,
        user_id: UserId,
        after: Option<SessionId>,
        limit: u32,
    ) -> StoreResult<Vec<Session>> {
        // Keyset pagination on (created_at desc, id desc): the page
        // starts strictly after the cursor session's position, which
        // is looked up by id whether or not it has been revoked since.
        // An unknown cursor yields an empty page.
        sqlx::query_as::<_, SessionRow>(concat!(
            "select ",
            session_columns!(),
            " from sessions s \
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
        .all_into(&self.pool, SessionRow::into_session)
        .await
    }

    /// Sessions revoked at or after `since`: `(session, user)` pairs, to
    /// rebuild the in-memory revocation view at start.
    pub(super) async fn sessions_revoked_since(
        &self,
        since: DateTime<Utc>,
    ) -> StoreResult<Vec<(SessionId, UserId)>> {
        let rows: Vec<(String, String)> =
            sqlx::query_as("select id, user_id from sessions where revoked_at >= $1")
                .bind(to_ms(since))
                .all(&self.pool)
                .await?;
        rows.into_iter()
            .map(|(id, user_id)| {
                Ok((
                    parse_col("sessions.id", &id)?,
                    parse_col("sessions.user_id", &user_id)?,
                ))
            })
            .collect()
    }

    /// The session a refresh token belongs to (spent or not).
    pub(super) async fn session_by_refresh_token(
        &self,
        token_hash: &str,
    ) -> StoreResult<Option<Session>> {
        sqlx::query_as::<_, SessionRow>(concat!(
            "select ",
            session_columns!(),
            " from sessions where id = \
               (select session_id from refresh_tokens where token_hash = $1)"
        ))
        .bind(token_hash)
        .optional_into(&self.pool, SessionRow::into_session)
        .await
    }

    /// Live sessions not seen since `before`, oldest first, at most `limit`.
    pub(super) async fn idle_sessions(
        &self,
        before: DateTime<Utc>,
        limit: u32,
    ) -> StoreResult<Vec<SessionId>> {
        let rows: Vec<(String,)> = sqlx::query_as(
            "select id from sessions where revoked_at is null and last_seen_at < $1 \
             order by last_seen_at limit $2",
        )
        .bind(to_ms(before))
        .bind(i64::from(limit))
        .all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|(id,)| parse_col("sessions.id", &id))
            .collect()
    }

    /// Spends the refresh token whose hash is `token_hash` and stores
    /// `replacement` in its place, atomically: two concurrent calls with the
    /// same token cannot both rotate. A token already spent revokes its
    /// session (see [`RefreshOutcome::Reused`]). The caller cannot know the
    /// session beforehand: `replacement.session_id` is ignored and the new
    /// token belongs to the presented token's session.
    pub(super) async fn rotate_refresh_token(
        &self,
        token_hash: &str,
        replacement: NewRefreshToken,
        now: DateTime<Utc>,
    ) -> StoreResult<RefreshOutcome> {
        let now_ms = to_ms(now);
        // The first statement writes, so the transaction holds the
        // write lock from the start (SQLite) or the row lock
        // (PostgreSQL): of two concurrent calls with the same token,
        // the second waits and then finds it spent.
        let mut tx = begin(&self.pool).await?;
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
        .optional(&mut *tx)
        .await?;

        if let Some((session_id,)) = spent {
            // The replacement belongs to the spent token's session:
            // callers only learn the session from this call.
            sqlx::query(
                "insert into refresh_tokens (token_hash, session_id, created_at, expires_at) \
                 values ($1, $2, $3, $4)",
            )
            .bind(&replacement.token_hash)
            .bind(&session_id)
            .bind(to_ms(replacement.created_at))
            .bind(to_ms(replacement.expires_at))
            .run(&mut *tx)
            .await?;
            let session = sqlx::query_as::<_, SessionRow>(concat!(
                "update sessions set last_seen_at = $2 where id = $1 returning ",
                session_columns!()
            ))
            .bind(&session_id)
            .bind(now_ms)
            .one(&mut *tx)
            .await?;
            commit(tx).await?;
            return Ok(RefreshOutcome::Rotated {
                session: session.into_session()?,
            });
        }

        // Not spendable: find out why.
        let state = sqlx::query_as::<_, TokenStateRow>(
            "select t.session_id, s.user_id, t.expires_at, t.spent_at, s.revoked_at \
             from refresh_tokens t join sessions s on s.id = t.session_id \
             where t.token_hash = $1",
        )
        .bind(token_hash)
        .optional(&mut *tx)
        .await?;
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
            .run(&mut *tx)
            .await?;
            commit(tx).await?;
            return Ok(RefreshOutcome::Reused {
                session_id: parse_col("refresh_tokens.session_id", &state.session_id)?,
                user_id: parse_col("sessions.user_id", &state.user_id)?,
            });
        }
        // Expired (expires_at <= now): the update above changed nothing.
        debug_assert!(state.expires_at <= now_ms);
        Ok(RefreshOutcome::Dead)
    }

    /// Notes activity on a session.
    pub(super) async fn touch_session(
        &self,
        id: SessionId,
        at: DateTime<Utc>,
        ip: Option<IpAddr>,
    ) -> StoreResult<()> {
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
        .bind(to_ms(at))
        .bind(ip.map(|ip| ip.to_string()))
        .run(&self.pool)
        .await?;
        Ok(())
    }

    /// Revokes one session; `false` when it was already revoked or is unknown.
    pub(super) async fn revoke_session(
        &self,
        id: SessionId,
        reason: &str,
        at: DateTime<Utc>,
    ) -> StoreResult<bool> {
        sqlx::query(
            "update sessions set revoked_at = $2, revoked_reason = $3 \
             where id = $1 and revoked_at is null",
        )
        .bind(id.to_string())
        .bind(to_ms(at))
        .bind(reason)
        .changed(&self.pool)
        .await
    }

    /// Revokes every live session of a user except `keep`; returns the ids
    /// it revoked.
    pub(super) async fn revoke_user_sessions(
        &self,
        user_id: UserId,
        keep: Option<SessionId>,
        reason: &str,
        at: DateTime<Utc>,
    ) -> StoreResult<Vec<SessionId>> {
        let rows: Vec<(String,)> = sqlx::query_as(
            "update sessions set revoked_at = $3, revoked_reason = $4 \
             where user_id = $1 and revoked_at is null and ($2 is null or id <> $2) \
             returning id",
        )
        .bind(user_id.to_string())
        .bind(keep.map(|id| id.to_string()))
        .bind(to_ms(at))
        .bind(reason)
        .all(&self.pool)
        .await?;
        rows.iter()
            .map(|(id,)| parse_col("sessions.id", id))
            .collect()
    }
}
