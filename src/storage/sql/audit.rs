//! The audit log: who did what, appended and listed newest first.

use parley_actors::store::{AuditEntry, NewAuditEntry, StoreResult};

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
}
