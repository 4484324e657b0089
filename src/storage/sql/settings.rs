//! Users' settings: one JSON document per user who saved any (the rest
//! have the defaults).

use chrono::{DateTime, Utc};
use parley_actors::domain::UserId;
use parley_actors::settings::UserSettings;
use parley_actors::store::{StoreError, StoreResult};

use crate::storage::rows::{parse_col, to_ms};

use super::{Fetch, Run, SqlStore};

/// A stored document. Reading is lenient (missing fields take their
/// defaults), so a document written by an older version still loads.
fn decode(text: &str) -> StoreResult<UserSettings> {
    serde_json::from_str(text)
        .map_err(|e| StoreError::Other(format!("stored user_settings.settings: {e}")))
}

impl SqlStore {
    /// A user's stored settings; `None` when they never saved any.
    pub(super) async fn user_settings(&self, id: UserId) -> StoreResult<Option<UserSettings>> {
        let row: Option<(String,)> =
            sqlx::query_as("select settings from user_settings where user_id = $1")
                .bind(id.to_string())
                .optional(&self.pool)
                .await?;
        row.map(|(text,)| decode(&text)).transpose()
    }

    /// Every stored settings document, to build the privacy view at start.
    pub(super) async fn all_user_settings(&self) -> StoreResult<Vec<(UserId, UserSettings)>> {
        let rows: Vec<(String, String)> =
            sqlx::query_as("select user_id, settings from user_settings")
                .all(&self.pool)
                .await?;
        rows.iter()
            .map(|(id, text)| Ok((parse_col("user_settings.user_id", id)?, decode(text)?)))
            .collect()
    }

    /// Stores a user's whole settings document (insert or replace).
    pub(super) async fn put_user_settings(
        &self,
        id: UserId,
        settings: &UserSettings,
        at: DateTime<Utc>,
    ) -> StoreResult<()> {
        let text = serde_json::to_string(settings)
            .map_err(|e| StoreError::Other(format!("settings did not serialise: {e}")))?;
        sqlx::query(
            "insert into user_settings (user_id, settings, updated_at) values ($1, $2, $3) \
             on conflict (user_id) do update set settings = $2, updated_at = $3",
        )
        .bind(id.to_string())
        .bind(text)
        .bind(to_ms(at))
        .run(&self.pool)
        .await?;
        Ok(())
    }
}
