//! Reports of users, for the moderators' queue. Columns and row type:
//! `report_columns!`, `ReportRow` in `storage/rows.rs`.

use parley_actors::store::{Report, StoreResult};

use crate::storage::rows::{ReportRow, to_ms};

use super::{Fetch, SqlStore};

impl SqlStore {
    /// Stores a report (status `open`).
    pub(super) async fn create_report(&self, report: Report) -> StoreResult<Report> {
        sqlx::query_as::<_, ReportRow>(concat!(
            "insert into reports (id, reporter_id, reported_id, reason, message_id, details, \
               status, created_at) \
             values ($1, $2, $3, $4, $5, $6, 'open', $7) \
             returning ",
            report_columns!()
        ))
        .bind(report.id.to_string())
        .bind(report.reporter_id.to_string())
        .bind(report.reported_id.to_string())
        .bind(report.reason.as_str())
        .bind(report.message_id.map(|m| m.to_string()))
        .bind(report.details.as_deref())
        .bind(to_ms(report.created_at))
        .one(&self.pool)
        .await?
        .into_report()
    }

    /// Reports, newest first, at most `limit`.
    pub(super) async fn list_reports(&self, limit: u32) -> StoreResult<Vec<Report>> {
        sqlx::query_as::<_, ReportRow>(concat!(
            "select ",
            report_columns!(),
            " from reports order by created_at desc, id desc limit $1"
        ))
        .bind(i64::from(limit))
        .all_into(&self.pool, ReportRow::into_report)
        .await
    }
}
