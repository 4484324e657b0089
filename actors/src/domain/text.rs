//! Free text: bodies, room names and topics, bios, display names, emoji; the NUL checks.

use std::fmt;

use serde::Serialize;

use super::Invalid;

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
text_type!(
    /// What a reporter adds to a report: 0–1000 characters.
    ReportDetails, "details", 0, 1000
);
text_type!(
    /// A profile's biography: 0–500 characters (line breaks allowed; empty
    /// clears it).
    Bio, "bio", 0, 500
);

/// A profile's display name: 0–64 characters, trimmed, no control
/// characters at all (not even line breaks); empty clears it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct DisplayName(String);

impl DisplayName {
    /// Longest accepted length, in characters.
    pub const MAX_CHARS: usize = 64;

    /// Validates (trimmed; at most 64 characters; no control characters).
    pub fn parse(raw: &str) -> Result<Self, Invalid> {
        let text = bounded_text(raw, "display_name", 0, Self::MAX_CHARS)?;
        if text.chars().any(char::is_control) {
            return Err(Invalid::new(
                "invalid_characters",
                "display_name must not contain control characters",
            ));
        }
        Ok(Self(text))
    }

    /// The text, owned.
    pub fn into_inner(self) -> String {
        self.0
    }
}

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
