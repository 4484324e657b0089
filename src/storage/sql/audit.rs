//! The audit log: who did what, appended and listed newest first.

use parley_actors::domain::AuditId;
use parley_actors::store::{AuditEntry, AuditFilter, NewAuditEntry, StoreResult};

use crate::storage::rows::{AuditRow, to_ms};

use super::{Fetch, Run, SqlStore};

impl SqlStore {
    /// Appends one entry.
    pub(super) async fn create_audit_entry(&self, entry: NewAuditEntry) -> StoreResult<()> {
        sqlx::query(
            "insert into audit_log (id, at, actor_id, action, target_type, target_id, \
               ip, user_agent, request_id, details) \
             values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(entry.id.to_string())
        .bind(to_ms(entry.at))
        .bind(entry.actor_id.map(|id| id.to_string()))
        .bind(&entry.action)
        .bind(entry.target_type.as_deref())
        .bind(entry.target_id.as_deref())
        .bind(entry.ip.map(|ip| ip.to_string()))
        .bind(entry.user_agent.as_deref())
        .bind(entry.request_id.as_deref())
        .bind(entry.details.to_string())
        .run(&self.pool)
        .await?;
        Ok(())
    }

    /// Entries, newest first, optionally only one action; for tests and,
    /// later, the admin API.
    pub(super) async fn list_audit_entries(
        &self,
        action: Option<&str>,
        limit: u32,
    ) -> StoreResult<Vec<AuditEntry>> {
        sqlx::query_as::<_, AuditRow>(
            "select id, at, actor_id, action, target_type, target_id, ip, user_agent, \
               request_id, details \
             from audit_log \
             where $1 is null or action = $1 \
             order by at desc, id desc \
             limit $2",
        )
        .bind(action)
        .bind(i64::from(limit))
        .all_into(&self.pool, AuditRow::into_entry)
        .await
    }

    /// Entries matching `filter`, newest first, at most `limit`, starting
    /// after the entry `after` (cursor) when given.
    pub(super) async fn list_audit_page(
        &self,
        filter: &AuditFilter,
        after: Option<AuditId>,
        limit: u32,
    ) -> StoreResult<Vec<AuditEntry>> {
        // Keyset pagination on (at desc, id desc), as for sessions; an
        // unknown cursor yields an empty page.
        sqlx::query_as::<_, AuditRow>(
            "select a.id, a.at, a.actor_id, a.action, a.target_type, a.target_id, a.ip, \
               a.user_agent, a.request_id, a.details \
             from audit_log a \
             where ($1 is null or a.actor_id = $1) \
               and ($2 is null or a.action = $2) \
               and ($3 is null or a.target_id = $3) \
               and ($4 is null or a.at >= $4) \
               and ($5 is null or a.at < $5) \
               and ($6 is null or exists ( \
                 select 1 from audit_log c where c.id = $6 \
                   and (a.at < c.at or (a.at = c.at and a.id < c.id)))) \
             order by a.at desc, a.id desc \
             limit $7",
        )
        .bind(filter.actor_id.map(|id| id.to_string()))
        .bind(filter.action.as_deref())
        .bind(filter.target_id.as_deref())
        .bind(filter.from.map(to_ms))
        .bind(filter.to.map(to_ms))
        .bind(after.map(|id| id.to_string()))
        .bind(i64::from(limit))
        .all_into(&self.pool, AuditRow::into_entry)
        .await
    }
}
