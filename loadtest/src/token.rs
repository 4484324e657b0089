//! The latency token every load message carries in its body.
//!
//! Format: `lt1|p<publisher>|s<sequence>|t<unix nanos>|` followed by optional
//! padding (`.`) up to the requested body size. Plain ASCII, so the server
//! stores and echoes it unchanged, and a receiver can decode it without
//! allocating. The send time is wall-clock (unix nanos) rather than a
//! monotonic instant so that worker processes on the same machine can
//! compare each other's times.

use std::time::{SystemTime, UNIX_EPOCH};

/// What a message body tells its receivers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Token {
    /// The publishing slot (socket index, or REST worker index).
    pub publisher: u32,
    /// The publisher's own running count.
    pub sequence: u64,
    /// When the publisher sent it, nanoseconds since the unix epoch.
    pub sent_unix_nanos: u64,
}

const PREFIX: &str = "lt1|";

/// Now, in nanoseconds since the unix epoch.
pub fn unix_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Encodes a token; pads the body with `.` up to `body_len` bytes (a body is
/// never shorter than the token itself).
pub fn encode(token: Token, body_len: usize) -> String {
    let mut body = format!(
        "{PREFIX}p{}|s{}|t{}|",
        token.publisher, token.sequence, token.sent_unix_nanos
    );
    if body.len() < body_len {
        body.extend(std::iter::repeat_n('.', body_len - body.len()));
    }
    body
}

/// Decodes a body written by [`encode`]; `None` for anything else (a body
/// somebody else wrote, or one cut short).
pub fn decode(body: &str) -> Option<Token> {
    let rest = body.strip_prefix(PREFIX)?;
    let mut parts = rest.splitn(4, '|');
    let publisher = parts.next()?.strip_prefix('p')?.parse().ok()?;
    let sequence = parts.next()?.strip_prefix('s')?.parse().ok()?;
    let sent_unix_nanos = parts.next()?.strip_prefix('t')?.parse().ok()?;
    // The fourth part (padding) must exist: the token ends with `|`.
    parts.next()?;
    Some(Token {
        publisher,
        sequence,
        sent_unix_nanos,
    })
}

/// End-to-end latency in microseconds of a token received now (0 when the
/// clocks disagree, which on one machine means "less than a microsecond").
pub fn latency_us(token: &Token, now_unix_nanos: u64) -> u64 {
    now_unix_nanos.saturating_sub(token.sent_unix_nanos) / 1_000
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_round_trips_through_a_body() {
        let token = Token {
            publisher: 7,
            sequence: 123_456,
            sent_unix_nanos: 1_700_000_000_123_456_789,
        };
        let body = encode(token, 0);
        assert_eq!(body, "lt1|p7|s123456|t1700000000123456789|");
        assert_eq!(decode(&body), Some(token));
    }

    #[test]
    fn padding_reaches_the_requested_size_and_still_decodes() {
        let token = Token {
            publisher: 1,
            sequence: 2,
            sent_unix_nanos: 3,
        };
        let body = encode(token, 200);
        assert_eq!(body.len(), 200);
        assert!(body.ends_with("..."));
        assert_eq!(decode(&body), Some(token));
    }

    #[test]
    fn foreign_or_truncated_bodies_do_not_decode() {
        assert_eq!(decode("hello"), None);
        assert_eq!(decode("lt1|p1|s2|t3"), None, "missing the final bar");
        assert_eq!(decode("lt1|p1|sx|t3|"), None);
        assert_eq!(decode("lt2|p1|s2|t3|"), None);
        assert_eq!(decode(""), None);
    }

    #[test]
    fn latency_is_never_negative() {
        let token = Token {
            publisher: 0,
            sequence: 0,
            sent_unix_nanos: 5_000_000,
        };
        assert_eq!(latency_us(&token, 7_000_000), 2_000);
        assert_eq!(latency_us(&token, 1_000), 0);
    }
}
