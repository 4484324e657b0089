//! The caller's own profile and settings: validated, stored, audited.
//! Telling others (`user.updated`) and applying privacy settings to the
//! realtime core is the caller's part, once these have succeeded.

use chrono::Utc;
use parley_actors::domain::{Bio, DisplayName, UserId};
use parley_actors::settings::UserSettings;
use parley_actors::store::{ProfilePatch, User};
use serde_json::json;

use super::{AccountError, Accounts, Client, FieldError};

/// A requested profile change, before validation: `None` leaves a field
/// alone, `Some(None)` or an empty (after trimming) text clears it.
#[derive(Debug, Clone, Default)]
pub struct ProfileChange {
    /// The new display name.
    pub display_name: Option<Option<String>>,
    /// The new biography.
    pub bio: Option<Option<String>>,
}

impl Accounts {
    /// Validates and applies a profile change; every failing field is
    /// reported at once. Audited as `profile_update` with the fields that
    /// were given.
    pub async fn update_profile(
        &self,
        user: UserId,
        change: ProfileChange,
        client: &Client,
    ) -> Result<User, AccountError> {
        let mut failed = Vec::new();
        let display_name = change.display_name.map(|v| {
            v.and_then(|raw| match DisplayName::parse(&raw) {
                Ok(name) => Some(name.into_inner()).filter(|s| !s.is_empty()),
                Err(e) => {
                    failed.push(FieldError::new("display_name", e));
                    None
                }
            })
        });
        let bio = change.bio.map(|v| {
            v.and_then(|raw| match Bio::parse(&raw) {
                Ok(bio) => Some(bio.into_inner()).filter(|s| !s.is_empty()),
                Err(e) => {
                    failed.push(FieldError::new("bio", e));
                    None
                }
            })
        });
        if !failed.is_empty() {
            return Err(AccountError::Validation(failed));
        }
        let fields: Vec<&str> = [
            display_name.is_some().then_some("display_name"),
            bio.is_some().then_some("bio"),
        ]
        .into_iter()
        .flatten()
        .collect();
        let updated = self
            .store
            .update_user_profile(user, ProfilePatch { display_name, bio }, Utc::now())
            .await?
            .ok_or(AccountError::NotFound)?;
        self.audit(
            "profile_update",
            Some(user),
            Some(("user", user.to_string())),
            client,
            json!({ "fields": fields }),
        )
        .await;
        Ok(updated)
    }

    /// A user's settings (the defaults when they never saved any).
    pub async fn settings(&self, user: UserId) -> Result<UserSettings, AccountError> {
        Ok(self.store.user_settings(user).await?.unwrap_or_default())
    }

    /// Stores `new` as the user's whole settings document. Audited as
    /// `settings_update` with the top-level sections that changed from
    /// `old`.
    pub async fn save_settings(
        &self,
        user: UserId,
        old: &UserSettings,
        new: &UserSettings,
        client: &Client,
    ) -> Result<(), AccountError> {
        self.store.put_user_settings(user, new, Utc::now()).await?;
        let (old_doc, new_doc) = (json!(old), json!(new));
        let changed: Vec<&String> = new_doc
            .as_object()
            .map(|fields| {
                fields
                    .iter()
                    .filter(|(k, v)| old_doc.get(k.as_str()) != Some(*v))
                    .map(|(k, _)| k)
                    .collect()
            })
            .unwrap_or_default();
        self.audit(
            "settings_update",
            Some(user),
            Some(("user", user.to_string())),
            client,
            json!({ "changed": changed }),
        )
        .await;
        Ok(())
    }
}
