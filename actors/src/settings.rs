//! A user's settings as one typed document, and the in-memory view of the
//! privacy part that fan-out consults.
//!
//! The document is stored whole (as JSON) by the store; a user who never
//! saved settings has the defaults. Reading is lenient (a field missing from
//! a stored document takes its default), so a later version can add fields
//! without a migration; what a client may *send* is checked by the server's
//! patch types, which refuse unknown keys.

use dashmap::DashMap;
use serde::{Deserialize, Serialize};

use crate::domain::UserId;

/// The colour scheme a client shows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Theme {
    /// Light.
    Light,
    /// Dark.
    Dark,
    /// Whatever the device prefers.
    #[default]
    System,
}

/// Which messages of a room notify me.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RoomMessages {
    /// Every message.
    All,
    /// Only messages that mention me.
    #[default]
    Mentions,
    /// None.
    None,
}

/// Who may open a direct room with me.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DmPolicy {
    /// Anyone (who is not blocked either way).
    #[default]
    Everyone,
    /// Only users who share a room with me.
    SharedRooms,
    /// Nobody (direct rooms that exist stay usable).
    Nobody,
}

/// Which notifications are created for me (kept for the notification
/// service; nothing reads them before it exists).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct NotificationSettings {
    /// A new direct message.
    pub direct_messages: bool,
    /// An `@username` mention.
    pub mentions: bool,
    /// Messages in my rooms.
    pub room_messages: RoomMessages,
}

impl Default for NotificationSettings {
    fn default() -> Self {
        Self {
            direct_messages: true,
            mentions: true,
            room_messages: RoomMessages::default(),
        }
    }
}

/// What others may see of me and do to me.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Privacy {
    /// Who may open a direct room with me.
    pub dm_policy: DmPolicy,
    /// `false`: I look offline to everyone else (my own devices still see
    /// my status).
    pub show_presence: bool,
    /// `false`: my read markers reach only my own devices.
    pub read_receipts: bool,
}

impl Default for Privacy {
    fn default() -> Self {
        Self {
            dm_policy: DmPolicy::default(),
            show_presence: true,
            read_receipts: true,
        }
    }
}

/// The whole settings document (`GET /users/settings`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct UserSettings {
    /// The colour scheme.
    pub theme: Theme,
    /// A BCP 47 language tag, e.g. `en` or `pt-BR`.
    pub locale: String,
    /// An IANA time zone name, e.g. `Europe/Berlin`, or `UTC`.
    pub timezone: String,
    /// Which notifications are created.
    pub notifications: NotificationSettings,
    /// Privacy.
    pub privacy: Privacy,
}

impl Default for UserSettings {
    fn default() -> Self {
        Self {
            theme: Theme::default(),
            locale: "en".to_owned(),
            timezone: "UTC".to_owned(),
            notifications: NotificationSettings::default(),
            privacy: Privacy::default(),
        }
    }
}

/// The privacy settings of users who changed them from the defaults; the
/// rest have [`Privacy::default`]. Loaded at start, updated after each
/// settings change is stored, read by presence, read receipts and direct
/// rooms without a database round trip.
#[derive(Debug, Default)]
pub struct PrivacyIndex {
    non_default: DashMap<UserId, Privacy>,
}

impl PrivacyIndex {
    /// Builds the view from stored documents.
    pub fn from_settings(all: impl IntoIterator<Item = (UserId, UserSettings)>) -> Self {
        let index = Self::default();
        for (user, settings) in all {
            index.set(user, settings.privacy);
        }
        index
    }

    /// A user's privacy settings.
    pub fn get(&self, user: UserId) -> Privacy {
        self.non_default
            .get(&user)
            .map_or_else(Privacy::default, |p| *p)
    }

    /// Records a user's privacy settings.
    pub fn set(&self, user: UserId, privacy: Privacy) {
        if privacy == Privacy::default() {
            self.non_default.remove(&user);
        } else {
            self.non_default.insert(user, privacy);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_document_missing_fields_reads_with_defaults() {
        let s: UserSettings =
            serde_json::from_str(r#"{"theme":"dark","privacy":{"show_presence":false}}"#)
                .expect("lenient read");
        assert_eq!(s.theme, Theme::Dark);
        assert_eq!(s.locale, "en");
        assert!(!s.privacy.show_presence);
        assert!(s.privacy.read_receipts);
        assert_eq!(s.privacy.dm_policy, DmPolicy::Everyone);
    }

    #[test]
    fn the_index_keeps_only_changed_users_and_answers_defaults_otherwise() {
        let (a, b) = (UserId::new(), UserId::new());
        let index = PrivacyIndex::default();
        let hidden = Privacy {
            show_presence: false,
            ..Privacy::default()
        };
        index.set(a, hidden);
        assert_eq!(index.get(a), hidden);
        assert_eq!(index.get(b), Privacy::default());
        index.set(a, Privacy::default());
        assert!(index.non_default.is_empty());
    }
}
