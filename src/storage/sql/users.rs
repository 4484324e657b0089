//! Users: accounts, their login-failure counter and lockout, password,
//! role and status. Columns and row type: `user_columns!`, `UserRow` in
//! `storage/rows.rs`.

use chrono::{DateTime, Utc};
use parley_actors::domain::{Role, UserId, UserStatus};
use parley_actors::store::{
    LoginFailure, NewUser, StoreError, StoreResult, User, UserActivity, UserFilter,
};

use crate::storage::errors::expect_found;
use crate::storage::rows::{UserActivityRow, UserRow, from_ms_opt, to_ms};

use super::{Fetch, Run, SqlStore};

impl SqlStore {
    /// Inserts a user. A taken username or email is `Conflict { field }`.
    pub(super) async fn create_user(&self, new: NewUser) -> StoreResult<User> {
        let at = to_ms(new.created_at);
        sqlx::query_as::<_, UserRow>(concat!(
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
        .one(&self.pool)
        .await?
        .into_user()
    }

    /// A user by id.
    pub(super) async fn user_by_id(&self, id: UserId) -> StoreResult<Option<User>> {
        sqlx::query_as::<_, UserRow>(concat!(
            "select ",
            user_columns!(),
            " from users where id = $1"
        ))
        .bind(id.to_string())
        .optional_into(&self.pool, UserRow::into_user)
        .await
    }

    /// A user by username or by email (both stored lowercase; `login` is
    /// lowercased by the caller).
    pub(super) async fn user_by_login(&self, login: &str) -> StoreResult<Option<User>> {
        // Usernames cannot contain '@', so at most one row matches.
        sqlx::query_as::<_, UserRow>(concat!(
            "select ",
            user_columns!(),
            " from users where username = $1 or email = $1"
        ))
        .bind(login)
        .optional_into(&self.pool, UserRow::into_user)
        .await
    }

    /// Users ordered by username, at most `limit`, starting after the user
    /// `after` (cursor) when given, with their activity figures.
    pub(super) async fn list_users(
        &self,
        filter: &UserFilter,
        after: Option<UserId>,
        limit: u32,
    ) -> StoreResult<Vec<UserActivity>> {
        // Keyset pagination on the (unique) username; an unknown cursor
        // compares with null and yields an empty page. The activity
        // figures are correlated subqueries on indexed columns
        // (`sessions.user_id`, `messages.author_id`), run for one page
        // of users only.
        let pattern = filter.q.as_deref().map(like_pattern);
        sqlx::query_as::<_, UserActivityRow>(concat!(
            "select ",
            user_columns!(),
            ", (select max(s.last_seen_at) from sessions s where s.user_id = users.id) \
                 as last_seen_at, \
               (select count(*) from sessions s \
                 where s.user_id = users.id and s.revoked_at is null) as open_sessions, \
               (select count(*) from messages m where m.author_id = users.id) as messages \
             from users \
             where ($1 is null or username like $1 escape '\\' or email like $1 escape '\\' \
                    or lower(coalesce(display_name, '')) like $1 escape '\\') \
               and ($2 is null or status = $2) \
               and ($3 is null or role = $3) \
               and ($4 is null or username > (select c.username from users c where c.id = $4)) \
             order by username \
             limit $5"
        ))
        .bind(pattern)
        .bind(filter.status.map(|s| s.as_str()))
        .bind(filter.role.map(|r| r.as_str()))
        .bind(after.map(|id| id.to_string()))
        .bind(i64::from(limit))
        .all_into(&self.pool, UserActivityRow::into_activity)
        .await
    }

    /// How many users are active admins.
    pub(super) async fn count_active_admins(&self) -> StoreResult<u64> {
        let (n,): (i64,) =
            sqlx::query_as("select count(*) from users where role = 'admin' and status = 'active'")
                .one(&self.pool)
                .await?;
        u64::try_from(n).map_err(|_| StoreError::Other(format!("admin count {n} < 0")))
    }

    /// Counts one failed login. When the count reaches `max_failures` the
    /// account is locked until `lock_until` and the count starts again.
    pub(super) async fn record_login_failure(
        &self,
        id: UserId,
        max_failures: u32,
        lock_until: DateTime<Utc>,
    ) -> StoreResult<LoginFailure> {
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
        .bind(to_ms(lock_until))
        .optional(&self.pool)
        .await?;
        let Some((failed_logins, locked_until)) = row else {
            return Err(StoreError::Other(format!("no user with id {id}")));
        };
        let locked = failed_logins == 0;
        Ok(LoginFailure {
            failed_logins: u32::try_from(failed_logins).map_err(|_| {
                StoreError::Other(format!("stored failed_logins {failed_logins} < 0"))
            })?,
            locked_until: if locked {
                from_ms_opt(locked_until)?
            } else {
                None
            },
        })
    }

    /// Resets the failure count and any lock (after a successful login).
    pub(super) async fn clear_login_failures(&self, id: UserId) -> StoreResult<()> {
        let done =
            sqlx::query("update users set failed_logins = 0, locked_until = null where id = $1")
                .bind(id.to_string())
                .run(&self.pool)
                .await?;
        expect_found(done, "user", id)
    }

    /// Replaces the password hash.
    pub(super) async fn update_password_hash(
        &self,
        id: UserId,
        password_hash: &str,
        at: DateTime<Utc>,
    ) -> StoreResult<()> {
        let done =
            sqlx::query("update users set password_hash = $2, updated_at = $3 where id = $1")
                .bind(id.to_string())
                .bind(password_hash)
                .bind(to_ms(at))
                .run(&self.pool)
                .await?;
        expect_found(done, "user", id)
    }

    /// Sets role and/or status (CLI and, later, the admin API).
    pub(super) async fn update_user_role_status(
        &self,
        id: UserId,
        role: Option<Role>,
        status: Option<UserStatus>,
        at: DateTime<Utc>,
    ) -> StoreResult<()> {
        // `coalesce` keeps the stored value for a `None`.
        let done = sqlx::query(
            "update users set role = coalesce($2, role), status = coalesce($3, status), \
             updated_at = $4 where id = $1",
        )
        .bind(id.to_string())
        .bind(role.map(|r| r.as_str()))
        .bind(status.map(|s| s.as_str()))
        .bind(to_ms(at))
        .run(&self.pool)
        .await?;
        expect_found(done, "user", id)
    }
}

/// A `like` pattern matching `q` anywhere, lowercased (usernames and
/// emails are stored lowercase), with `\\`, `%` and `_` taken literally.
fn like_pattern(q: &str) -> String {
    let mut pattern = String::from("%");
    for c in q.to_lowercase().chars() {
        if matches!(c, '\\' | '%' | '_') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

#[cfg(test)]
mod tests {
    use super::like_pattern;

    #[test]
    fn like_patterns_take_wildcards_literally() {
        assert_eq!(like_pattern("Ann"), "%ann%");
        assert_eq!(like_pattern("50%_a\\b"), "%50\\%\\_a\\\\b%");
    }
}
