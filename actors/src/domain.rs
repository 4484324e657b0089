//! Domain types, validated when parsed.
//!
//! Handlers and actors see `Username`, `Email`, `Password`, never a raw
//! `String`: once a value of these types exists it is known to satisfy the
//! API's rules (`docs/api.md`, "Field rules").

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Why a value was refused: a short machine code plus a human sentence.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Invalid {
    /// snake_case code, e.g. `too_short`.
    pub code: &'static str,
    /// Human sentence for the client.
    pub message: String,
}

impl Invalid {
    fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

macro_rules! uuid_id {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            /// A fresh, time-sortable id (UUIDv7).
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }
            /// The underlying UUID.
            pub fn as_uuid(&self) -> Uuid {
                self.0
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl From<Uuid> for $name {
            fn from(id: Uuid) -> Self {
                Self(id)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }
    };
}

uuid_id!(
    /// A user's id.
    UserId
);
uuid_id!(
    /// A login session's id (the `sid` claim).
    SessionId
);
uuid_id!(
    /// An audit log entry's id.
    AuditId
);
uuid_id!(
    /// A room's id.
    RoomId
);
uuid_id!(
    /// A message's id.
    MessageId
);
uuid_id!(
    /// An invite's id.
    InviteId
);
uuid_id!(
    /// A WebSocket connection's id (never stored).
    ConnectionId
);

/// A username: 3–32 characters of `[a-z0-9_.-]`.
///
/// Input is folded to lowercase before it is checked, so `Alice` and `alice`
/// are the same name (the contract makes usernames unique case-insensitively).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct Username(String);

impl Username {
    /// Validates and normalises a username.
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let name = raw.trim().to_ascii_lowercase();
        let len = name.chars().count();
        if len < 3 {
            return Err(Invalid::new(
                "too_short",
                "username must be at least 3 characters",
            ));
        }
        if len > 32 {
            return Err(Invalid::new(
                "too_long",
                "username must be at most 32 characters",
            ));
        }
        if !name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '.' | '-'))
        {
            return Err(Invalid::new(
                "invalid_characters",
                "username may contain only a-z, 0-9, '_', '.' and '-'",
            ));
        }
        Ok(Self(name))
    }

    /// The normalised name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An email address, folded to lowercase so uniqueness is case-insensitive.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct Email(String);

impl Email {
    /// Checks the address's shape (one `@`, a dotted domain, no spaces, ≤ 254).
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let email = raw.trim().to_lowercase();
        let bad = || Invalid::new("invalid_email", "email must be a valid address");
        if email.len() > 254 {
            return Err(Invalid::new(
                "too_long",
                "email must be at most 254 characters",
            ));
        }
        let (local, domain) = email.split_once('@').ok_or_else(bad)?;
        let domain_ok = domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && !domain.contains("..")
            && domain
                .chars()
                .all(|c| c.is_alphanumeric() || c == '.' || c == '-');
        let local_ok = !local.is_empty()
            && local.len() <= 64
            && !local.contains('@')
            && !local.chars().any(|c| c.is_whitespace() || c.is_control());
        if !(domain_ok && local_ok) {
            return Err(bad());
        }
        Ok(Self(email))
    }

    /// The normalised address.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The most common passwords that would otherwise pass the character rules,
/// compared case-insensitively.
const COMMON_PASSWORDS: &str = include_str!("common_passwords.txt");

/// A new password that meets the contract's rules. Never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(***)")
    }
}

impl Password {
    /// 8–128 characters with an uppercase letter, a lowercase letter and a
    /// digit, and not on the common-password list.
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let len = raw.chars().count();
        if len < 8 {
            return Err(Invalid::new(
                "too_short",
                "password must be at least 8 characters",
            ));
        }
        if len > 128 {
            return Err(Invalid::new(
                "too_long",
                "password must be at most 128 characters",
            ));
        }
        let upper = raw.chars().any(char::is_uppercase);
        let lower = raw.chars().any(char::is_lowercase);
        let digit = raw.chars().any(|c| c.is_ascii_digit());
        if !(upper && lower && digit) {
            return Err(Invalid::new(
                "too_weak",
                "password must contain an uppercase letter, a lowercase letter and a digit",
            ));
        }
        if is_common_password(raw) {
            return Err(Invalid::new(
                "common_password",
                "password is too common; choose another",
            ));
        }
        Ok(Self(raw.to_owned()))
    }

    /// The password's text, for hashing.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

fn is_common_password(raw: &str) -> bool {
    let lowered = raw.to_lowercase();
    COMMON_PASSWORDS
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .any(|common| common == lowered)
}

macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $($(#[$vmeta])* $variant),+
        }

        impl $name {
            /// The wire and storage spelling.
            pub fn as_str(&self) -> &'static str {
                match self {
                    $(Self::$variant => $text),+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = Invalid;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok(Self::$variant),)+
                    _ => Err(Invalid::new("invalid_value", format!("unknown {} `{s}`", stringify!($name)))),
                }
            }
        }
    };
}

string_enum!(
    /// A user's server-wide role.
    Role {
        /// An ordinary account.
        #[default]
        User = "user",
        /// May act on reports.
        Moderator = "moderator",
        /// May use the admin API.
        Admin = "admin",
    }
);

string_enum!(
    /// Whether an account may sign in.
    UserStatus {
        /// May sign in.
        #[default]
        Active = "active",
        /// Temporarily barred.
        Suspended = "suspended",
        /// Permanently barred.
        Banned = "banned",
    }
);

/// Line endings as stored: CRLF and a lone CR become LF.
fn normalise_line_endings(raw: &str) -> std::borrow::Cow<'_, str> {
    if raw.contains('\r') {
        std::borrow::Cow::Owned(raw.replace("\r\n", "\n").replace('\r', "\n"))
    } else {
        std::borrow::Cow::Borrowed(raw)
    }
}

/// Checks a bounded, trimmed text (CRLF and lone CR taken as LF); `field`
/// names it in the message.
fn bounded_text(raw: &str, field: &str, min: usize, max: usize) -> Result<String, Invalid> {
    let normalised = normalise_line_endings(raw);
    let text = normalised.trim();
    let len = text.chars().count();
    if len < min {
        return Err(Invalid::new(
            if len == 0 { "required" } else { "too_short" },
            format!("{field} must be at least {min} characters"),
        ));
    }
    if len > max {
        return Err(Invalid::new(
            "too_long",
            format!("{field} must be at most {max} characters"),
        ));
    }
    if text
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t')
    {
        return Err(Invalid::new(
            "invalid_characters",
            format!("{field} must not contain control characters"),
        ));
    }
    Ok(text.to_owned())
}

/// The first text in `value` (a key or a string, at any depth) that holds
/// a NUL character, named by its path (`client_id`, `rooms.0`): PostgreSQL
/// refuses NUL in text, so no database sees one, whatever the field.
pub fn nul_field(value: &serde_json::Value) -> Option<String> {
    fn join(parent: &str, name: &str) -> String {
        if parent.is_empty() {
            name.to_owned()
        } else {
            format!("{parent}.{name}")
        }
    }
    fn walk(value: &serde_json::Value, path: &str) -> Option<String> {
        match value {
            serde_json::Value::String(text) if text.contains('\0') => {
                Some(if path.is_empty() { "body" } else { path }.to_owned())
            }
            serde_json::Value::Array(items) => items
                .iter()
                .enumerate()
                .find_map(|(i, item)| walk(item, &join(path, &i.to_string()))),
            serde_json::Value::Object(fields) => fields.iter().find_map(|(name, item)| {
                if name.contains('\0') {
                    return Some(join(path, &name.replace('\0', "\\0")));
                }
                walk(item, &join(path, name))
            }),
            _ => None,
        }
    }
    walk(value, "")
}

/// Refuses a text with a NUL character (which PostgreSQL cannot store).
pub fn refuse_nul(field: &str, text: &str) -> Result<(), Invalid> {
    if text.contains('\0') {
        return Err(Invalid::new(
            "invalid_characters",
            format!("{field} must not contain NUL characters"),
        ));
    }
    Ok(())
}

macro_rules! text_type {
    ($(#[$meta:meta])* $name:ident, $field:literal, $min:expr, $max:expr) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Longest accepted length, in characters.
            pub const MAX_CHARS: usize = $max;

            /// Validates (CRLF and lone CR become LF; trimmed; length in
            /// characters; no control characters but `\n` and `\t`).
            pub fn parse(raw: &str) -> Result<Self, Invalid> {
                bounded_text(raw, $field, $min, $max).map(Self)
            }

            /// Validates with a stricter maximum than [`Self::MAX_CHARS`]
            /// (a configured limit; larger values are capped).
            pub fn parse_max(raw: &str, max_chars: usize) -> Result<Self, Invalid> {
                bounded_text(raw, $field, $min, max_chars.min($max)).map(Self)
            }

            /// The text.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// The text, owned.
            pub fn into_inner(self) -> String {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

text_type!(
    /// A message body: 1–4000 characters.
    MessageBody, "body", 1, 4000
);
text_type!(
    /// A room name: 1–100 characters.
    RoomName, "name", 1, 100
);
text_type!(
    /// A room topic: 0–500 characters.
    RoomTopic, "topic", 0, 500
);

/// A reaction: one emoji (or short emoji sequence), at most 32 bytes, no
/// whitespace, no ASCII letters or digits (so `:)`-style text is refused
/// but ZWJ sequences and skin tones pass).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct Emoji(String);

impl Emoji {
    /// Validates a reaction.
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let ok = !raw.is_empty()
            && raw.len() <= 32
            && !raw.chars().any(|c| {
                c.is_whitespace()
                    || c.is_control()
                    || c.is_ascii_alphanumeric()
                    || c.is_ascii_punctuation()
            });
        if ok {
            Ok(Self(raw.to_owned()))
        } else {
            Err(Invalid::new(
                "invalid_emoji",
                "emoji must be a single emoji",
            ))
        }
    }

    /// The emoji.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Emoji {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

string_enum!(
    /// Who may find and join a room.
    Visibility {
        /// Listed in `/rooms/public`; anyone may join.
        #[default]
        Public = "public",
        /// By invite only.
        Private = "private",
        /// A direct room between two users.
        Direct = "direct",
    }
);

string_enum!(
    /// A member's role in a room. Ordered: owner > admin > member.
    RoomRole {
        /// An ordinary member.
        #[default]
        Member = "member",
        /// May moderate members below admin and edit the room.
        Admin = "admin",
        /// Created the room; may delete it and set roles.
        Owner = "owner",
    }
);

impl RoomRole {
    /// Rank for comparisons: owner 2, admin 1, member 0.
    pub fn rank(self) -> u8 {
        match self {
            Self::Member => 0,
            Self::Admin => 1,
            Self::Owner => 2,
        }
    }

    /// Admin or owner.
    pub fn is_admin(self) -> bool {
        self.rank() >= 1
    }
}

string_enum!(
    /// An invite's state.
    InviteStatus {
        /// Waiting for the invitee.
        #[default]
        Pending = "pending",
        /// The invitee joined.
        Accepted = "accepted",
        /// The invitee said no.
        Declined = "declined",
    }
);

string_enum!(
    /// What a user shows to others.
    PresenceStatus {
        /// Connected.
        #[default]
        Online = "online",
        /// Connected, away.
        Away = "away",
        /// Connected, do not disturb.
        Dnd = "dnd",
        /// Connected, shown as offline.
        Invisible = "invisible",
        /// Not connected.
        Offline = "offline",
    }
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_take_crlf_and_lone_cr_as_lf_and_refuse_other_controls() {
        let body = MessageBody::parse("one\r\ntwo\rthree\r\n").unwrap();
        assert_eq!(body.as_str(), "one\ntwo\nthree");
        assert_eq!(MessageBody::parse("\r\n").unwrap_err().code, "required");
        assert_eq!(
            MessageBody::parse("a\u{0}b").unwrap_err().code,
            "invalid_characters"
        );
        assert_eq!(
            MessageBody::parse("a\u{7}b").unwrap_err().code,
            "invalid_characters"
        );
    }

    #[test]
    fn a_nul_anywhere_in_a_json_value_is_found_by_its_path() {
        let value = serde_json::json!({"body": "ok", "rooms": ["a", "b\u{0}"]});
        assert_eq!(nul_field(&value).as_deref(), Some("rooms.1"));
        let value = serde_json::json!({"client_id": "x\u{0}"});
        assert_eq!(nul_field(&value).as_deref(), Some("client_id"));
        let escaped = serde_json::json!({"body": "a literal \\u0000"});
        assert_eq!(nul_field(&escaped), None);
        assert!(refuse_nul("q", "a\u{0}").is_err());
        assert!(refuse_nul("q", "fine").is_ok());
    }

    #[test]
    fn usernames_are_folded_and_checked() {
        assert_eq!(Username::parse("Alice_1").unwrap().as_str(), "alice_1");
        assert_eq!(Username::parse("ab").unwrap_err().code, "too_short");
        assert_eq!(
            Username::parse(&"a".repeat(33)).unwrap_err().code,
            "too_long"
        );
        assert_eq!(
            Username::parse("bad name").unwrap_err().code,
            "invalid_characters"
        );
        assert_eq!(
            Username::parse("émile").unwrap_err().code,
            "invalid_characters"
        );
    }

    #[test]
    fn emails_need_a_dotted_domain() {
        assert_eq!(
            Email::parse("Bob@Example.COM").unwrap().as_str(),
            "bob@example.com"
        );
        for bad in [
            "bob",
            "bob@",
            "@x.io",
            "bob@localhost",
            "a b@x.io",
            "a@b@c.io",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn passwords_follow_the_rules() {
        assert!(Password::parse("Correct7Horse").is_ok());
        assert_eq!(Password::parse("Ab1").unwrap_err().code, "too_short");
        assert_eq!(Password::parse("alllower1").unwrap_err().code, "too_weak");
        assert_eq!(
            Password::parse("NoDigitsHere").unwrap_err().code,
            "too_weak"
        );
        assert_eq!(
            Password::parse("Password1").unwrap_err().code,
            "common_password"
        );
        assert_eq!(
            Password::parse(&format!("Aa1{}", "x".repeat(126)))
                .unwrap_err()
                .code,
            "too_long"
        );
        assert_eq!(
            format!("{:?}", Password::parse("Correct7Horse").unwrap()),
            "Password(***)"
        );
    }

    #[test]
    fn texts_are_trimmed_and_bounded() {
        assert_eq!(MessageBody::parse("  hi  ").unwrap().as_str(), "hi");
        assert_eq!(MessageBody::parse("   ").unwrap_err().code, "required");
        assert!(MessageBody::parse(&"é".repeat(4000)).is_ok());
        assert_eq!(
            MessageBody::parse(&"é".repeat(4001)).unwrap_err().code,
            "too_long"
        );
        assert_eq!(
            MessageBody::parse("a\u{0}b").unwrap_err().code,
            "invalid_characters"
        );
        assert!(MessageBody::parse("line\nbreak").is_ok());
        assert!(RoomTopic::parse("").is_ok());
        assert!(RoomName::parse("").is_err());
    }

    #[test]
    fn emojis_are_short_and_not_text() {
        for ok in ["👍", "❤️", "👩‍👩‍👧", "👍🏽"] {
            assert!(Emoji::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["", "ok", ":)", "👍 👍", &"👍".repeat(9)] {
            assert!(Emoji::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn room_roles_are_ranked() {
        assert!(RoomRole::Owner.rank() > RoomRole::Admin.rank());
        assert!(RoomRole::Admin.is_admin());
        assert!(!RoomRole::Member.is_admin());
    }

    #[test]
    fn enums_round_trip_their_spelling() {
        assert_eq!("admin".parse::<Role>().unwrap(), Role::Admin);
        assert_eq!(UserStatus::Banned.as_str(), "banned");
        assert!("root".parse::<Role>().is_err());
    }
}
