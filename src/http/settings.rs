//! `/users/settings`: my settings as one typed document. `PUT` merges the
//! fields given into the stored document; unknown keys and bad values are
//! 422 naming the field (`privacy.dm_policy`). Privacy settings take effect
//! at once (see `parley_actors::settings`).

use axum::Json;
use axum::extract::State;
use parley_actors::settings::{
    DmPolicy, NotificationSettings, Privacy, RoomMessages, Theme, UserSettings,
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::dto::ErrorEnvelope;
use super::error::ApiError;
use super::extract::{ApiJson, AuthUser};
use super::state::AppState;
use crate::accounts::Client;

/// Routes (authenticated).
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_settings, put_settings))
}

/// My settings, every field present.
#[derive(Debug, Serialize, ToSchema)]
pub struct SettingsView {
    /// `light`, `dark` or `system`.
    #[schema(value_type = String, example = "system")]
    pub theme: Theme,
    /// A BCP 47 language tag.
    #[schema(example = "en")]
    pub locale: String,
    /// An IANA time zone name, or `UTC`.
    #[schema(example = "Europe/Berlin")]
    pub timezone: String,
    pub notifications: NotificationsView,
    pub privacy: PrivacyView,
}

/// Which notifications are created for me.
#[derive(Debug, Serialize, ToSchema)]
pub struct NotificationsView {
    pub direct_messages: bool,
    pub mentions: bool,
    /// `all`, `mentions` or `none`.
    #[schema(value_type = String, example = "mentions")]
    pub room_messages: RoomMessages,
}

/// What others may see of me and do to me.
#[derive(Debug, Serialize, ToSchema)]
pub struct PrivacyView {
    /// `everyone`, `shared_rooms` or `nobody`: who may open a direct room
    /// with me.
    #[schema(value_type = String, example = "everyone")]
    pub dm_policy: DmPolicy,
    /// `false`: I look offline to everyone else.
    pub show_presence: bool,
    /// `false`: my read markers reach only my own devices.
    pub read_receipts: bool,
}

impl From<UserSettings> for SettingsView {
    fn from(s: UserSettings) -> Self {
        Self {
            theme: s.theme,
            locale: s.locale,
            timezone: s.timezone,
            notifications: NotificationsView {
                direct_messages: s.notifications.direct_messages,
                mentions: s.notifications.mentions,
                room_messages: s.notifications.room_messages,
            },
            privacy: PrivacyView {
                dm_policy: s.privacy.dm_policy,
                show_presence: s.privacy.show_presence,
                read_receipts: s.privacy.read_receipts,
            },
        }
    }
}

/// `PUT /users/settings`: any subset of the document; what is omitted
/// stays as it is.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SettingsPatch {
    /// `light`, `dark` or `system`.
    #[schema(value_type = Option<String>, example = "dark")]
    pub theme: Option<Theme>,
    /// A BCP 47 language tag (`en`, `pt-BR`), at most 35 characters.
    pub locale: Option<String>,
    /// An IANA time zone name (`Europe/Berlin`) or `UTC`, at most 64
    /// characters.
    pub timezone: Option<String>,
    pub notifications: Option<NotificationsPatch>,
    pub privacy: Option<PrivacyPatch>,
}

/// Part of [`SettingsPatch`].
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NotificationsPatch {
    pub direct_messages: Option<bool>,
    pub mentions: Option<bool>,
    /// `all`, `mentions` or `none`.
    #[schema(value_type = Option<String>)]
    pub room_messages: Option<RoomMessages>,
}

/// Part of [`SettingsPatch`].
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PrivacyPatch {
    /// `everyone`, `shared_rooms` or `nobody`.
    #[schema(value_type = Option<String>)]
    pub dm_policy: Option<DmPolicy>,
    pub show_presence: Option<bool>,
    pub read_receipts: Option<bool>,
}

impl SettingsPatch {
    /// `settings` with the patch merged in; the free-text fields are
    /// checked here (the enums were checked when the body was parsed).
    fn apply(self, mut settings: UserSettings) -> Result<UserSettings, ApiError> {
        if let Some(theme) = self.theme {
            settings.theme = theme;
        }
        if let Some(locale) = self.locale {
            settings.locale = valid_locale(&locale)?;
        }
        if let Some(timezone) = self.timezone {
            settings.timezone = valid_timezone(&timezone)?;
        }
        if let Some(n) = self.notifications {
            let NotificationSettings {
                direct_messages,
                mentions,
                room_messages,
            } = settings.notifications;
            settings.notifications = NotificationSettings {
                direct_messages: n.direct_messages.unwrap_or(direct_messages),
                mentions: n.mentions.unwrap_or(mentions),
                room_messages: n.room_messages.unwrap_or(room_messages),
            };
        }
        if let Some(p) = self.privacy {
            let Privacy {
                dm_policy,
                show_presence,
                read_receipts,
            } = settings.privacy;
            settings.privacy = Privacy {
                dm_policy: p.dm_policy.unwrap_or(dm_policy),
                show_presence: p.show_presence.unwrap_or(show_presence),
                read_receipts: p.read_receipts.unwrap_or(read_receipts),
            };
        }
        Ok(settings)
    }
}

/// A BCP 47 tag in shape: a 2–3 letter language, then `-`-separated
/// alphanumeric subtags of 1–8 characters; at most 35 characters.
fn valid_locale(raw: &str) -> Result<String, ApiError> {
    let mut parts = raw.split('-');
    let language = parts.next().unwrap_or_default();
    let ok = raw.len() <= 35
        && (2..=3).contains(&language.len())
        && language.chars().all(|c| c.is_ascii_alphabetic())
        && parts
            .all(|p| (1..=8).contains(&p.len()) && p.chars().all(|c| c.is_ascii_alphanumeric()));
    if ok {
        Ok(raw.to_owned())
    } else {
        Err(ApiError::field(
            "locale",
            "invalid_value",
            "locale must be a BCP 47 language tag such as `en` or `pt-BR`",
        ))
    }
}

/// `UTC`, or an IANA zone name in shape: 1–3 `/`-separated parts of
/// letters, digits, `_`, `+` and `-`, the first starting with a capital
/// letter; at most 64 characters. (The server carries no zone database,
/// so the name's existence is the client's to get right.)
fn valid_timezone(raw: &str) -> Result<String, ApiError> {
    let parts: Vec<&str> = raw.split('/').collect();
    let ok = raw.len() <= 64
        && (1..=3).contains(&parts.len())
        && parts[0].starts_with(|c: char| c.is_ascii_uppercase())
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '+' | '-'))
        });
    if ok {
        Ok(raw.to_owned())
    } else {
        Err(ApiError::field(
            "timezone",
            "invalid_value",
            "timezone must be an IANA time zone name such as `Europe/Berlin`, or `UTC`",
        ))
    }
}

/// My settings (the defaults until I change any).
#[utoipa::path(get, path = "/users/settings", tag = "users", security(("bearer" = [])),
    responses((status = 200, body = SettingsView)))]
#[tracing::instrument(skip_all, fields(user = %auth.user_id))]
async fn get_settings(
    State(state): State<AppState>,
    auth: AuthUser,
) -> Result<Json<SettingsView>, ApiError> {
    Ok(Json(state.accounts.settings(auth.user_id).await?.into()))
}

/// Merges the given fields into my settings and answers the whole
/// document. Privacy changes take effect at once: presence shown to others,
/// read receipts, who may open a direct room with me.
#[utoipa::path(put, path = "/users/settings", tag = "users", security(("bearer" = [])), request_body = SettingsPatch,
    responses((status = 200, body = SettingsView),
        (status = 422, description = "unknown key or bad value; `details` names the field, e.g. `privacy.dm_policy`", body = ErrorEnvelope)))]
#[tracing::instrument(skip_all, fields(user = %auth.user_id))]
async fn put_settings(
    State(state): State<AppState>,
    auth: AuthUser,
    client: Client,
    ApiJson(patch): ApiJson<SettingsPatch>,
) -> Result<Json<SettingsView>, ApiError> {
    let old = state.accounts.settings(auth.user_id).await?;
    let new = patch.apply(old.clone())?;
    if new != old {
        state
            .accounts
            .save_settings(auth.user_id, &old, &new, &client)
            .await?;
        if new.privacy != old.privacy {
            state.realtime.apply_privacy(auth.user_id, new.privacy);
        }
    }
    Ok(Json(new.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locales_and_timezones_are_checked_for_shape() {
        for ok in ["en", "pt-BR", "zh-Hant-TW", "gsw"] {
            assert!(valid_locale(ok).is_ok(), "{ok}");
        }
        for bad in ["", "e", "english", "en_US", "en-", "en-toolongsubtag"] {
            assert!(valid_locale(bad).is_err(), "{bad}");
        }
        for ok in [
            "UTC",
            "Europe/Berlin",
            "America/Argentina/Buenos_Aires",
            "Etc/GMT+5",
        ] {
            assert!(valid_timezone(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "europe/berlin",
            "Europe//Berlin",
            "Europe/Berlin ",
            "A/B/C/D",
        ] {
            assert!(valid_timezone(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_patch_changes_only_what_it_names() {
        let patch = SettingsPatch {
            privacy: Some(PrivacyPatch {
                show_presence: Some(false),
                ..PrivacyPatch::default()
            }),
            ..SettingsPatch::default()
        };
        let merged = patch.apply(UserSettings::default()).expect("valid");
        assert!(!merged.privacy.show_presence);
        assert_eq!(
            UserSettings {
                privacy: Privacy::default(),
                ..merged
            },
            UserSettings::default()
        );
    }
}
