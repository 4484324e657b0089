//! Domain types, validated when parsed.
//!
//! Handlers and actors see `Username`, `Email`, `Password`, never a raw
//! `String`: once a value of these types exists it is known to satisfy the
//! contract's rules (`shared/API.md`, "Accounts and sessions").

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

#[cfg(test)]
mod tests {
    use super::*;

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
    fn enums_round_trip_their_spelling() {
        assert_eq!("admin".parse::<Role>().unwrap(), Role::Admin);
        assert_eq!(UserStatus::Banned.as_str(), "banned");
        assert!("root".parse::<Role>().is_err());
    }
}
