//! Account credentials: usernames, email addresses and passwords.

use std::fmt;

use serde::Serialize;

use super::Invalid;

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
const COMMON_PASSWORDS: &str = include_str!("../common_passwords.txt");

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
