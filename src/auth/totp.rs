//! Time-based one-time passwords (RFC 6238): the second factor.
//!
//! Parley's codes are what every authenticator app expects: HMAC-SHA-1,
//! 6 digits, 30-second steps. A code is accepted for the current step and
//! its neighbours (one step of clock drift either way), and a step once
//! accepted is never accepted again for the same user: the caller keeps the
//! last accepted step and passes it back in.

use subtle::ConstantTimeEq;
use totp_rs::{Algorithm, Builder, Secret, Totp};

/// Seconds per step.
pub const STEP_SECS: u64 = 30;
/// Digits per code.
pub const DIGITS: u8 = 6;
/// Steps of clock drift allowed either way.
const SKEW_STEPS: u64 = 1;
/// Bytes of a generated secret (160 bits, RFC 4226's recommendation).
const SECRET_BYTES: usize = 20;

/// A new random secret, base32 (RFC 4648, no padding), as authenticator
/// apps take it.
pub fn generate_secret() -> String {
    let bytes: [u8; SECRET_BYTES] = rand::random();
    Secret::from(bytes.to_vec()).to_base32()
}

/// The `otpauth://` URL an authenticator app reads (usually from a QR code).
pub fn otpauth_url(secret: &str, issuer: &str, account: &str) -> Option<String> {
    let secret = Secret::try_from_base32(secret).ok()?;
    // `:` separates issuer and account in the label; neither may hold one.
    let issuer = issuer.replace(':', "");
    let account = account.replace(':', "");
    Builder::new()
        .with_algorithm(Algorithm::SHA1)
        .with_digits(DIGITS)
        .with_step_duration(STEP_SECS)
        .with_secret(secret)
        .with_issuer(Some(issuer))
        .with_account_name(account)
        .build()
        .ok()?
        .to_url()
        .ok()
}

fn totp(secret: &str) -> Option<Totp> {
    let secret = Secret::try_from_base32(secret).ok()?;
    Builder::new()
        .with_algorithm(Algorithm::SHA1)
        .with_digits(DIGITS)
        .with_step_duration(STEP_SECS)
        .with_secret(secret)
        .build()
        .ok()
}

/// The code for the step that `unix_secs` falls in (tests and clients).
pub fn code_at(secret: &str, unix_secs: u64) -> Option<String> {
    Some(totp(secret)?.generate(unix_secs).to_string())
}

/// The step `unix_secs` falls in.
pub fn step_of(unix_secs: u64) -> u64 {
    unix_secs / STEP_SECS
}

/// Checks `code` against the steps around `unix_secs`. Returns the step it
/// matched, but only a step later than `last_used_step` (a code is good
/// once). Every candidate is computed and compared in constant time, so the
/// answer's timing says nothing about how close a guess was.
pub fn verify(
    secret: &str,
    code: &str,
    unix_secs: u64,
    last_used_step: Option<u64>,
) -> Option<u64> {
    let totp = totp(secret)?;
    let code = code.trim();
    let well_formed = code.len() == usize::from(DIGITS) && code.bytes().all(|b| b.is_ascii_digit());
    let now = step_of(unix_secs);
    let mut matched = None;
    for step in now.saturating_sub(SKEW_STEPS)..=now + SKEW_STEPS {
        let expected = totp.generate(step * STEP_SECS).to_string();
        let equal: bool = expected.as_bytes().ct_eq(code.as_bytes()).into();
        if equal && last_used_step.is_none_or(|last| step > last) {
            matched = Some(step);
        }
    }
    matched.filter(|_| well_formed)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 appendix B: 8 digits, each algorithm with its own seed
    /// (the ASCII digits "1234567890" repeated to the hash's block size).
    fn rfc_totp(algorithm: Algorithm, seed_len: usize) -> Totp {
        let seed: Vec<u8> = b"1234567890"
            .iter()
            .copied()
            .cycle()
            .take(seed_len)
            .collect();
        Builder::new()
            .with_algorithm(algorithm)
            .with_digits(8)
            .with_step_duration(30)
            .with_secret(seed)
            .build()
            .expect("the RFC's parameters are valid")
    }

    #[test]
    fn codes_match_the_rfc_6238_test_vectors() {
        let vectors: [(u64, &str, &str, &str); 6] = [
            (59, "94287082", "46119246", "90693936"),
            (1_111_111_109, "07081804", "68084774", "25091201"),
            (1_111_111_111, "14050471", "67062674", "99943326"),
            (1_234_567_890, "89005924", "91819424", "93441116"),
            (2_000_000_000, "69279037", "90698825", "38618901"),
            (20_000_000_000, "65353130", "77737706", "47863826"),
        ];
        let sha1 = rfc_totp(Algorithm::SHA1, 20);
        let sha256 = rfc_totp(Algorithm::SHA256, 32);
        let sha512 = rfc_totp(Algorithm::SHA512, 64);
        for (time, c1, c256, c512) in vectors {
            assert_eq!(sha1.generate(time).to_string(), c1, "SHA-1 at {time}");
            assert_eq!(sha256.generate(time).to_string(), c256, "SHA-256 at {time}");
            assert_eq!(sha512.generate(time).to_string(), c512, "SHA-512 at {time}");
        }
    }

    #[test]
    fn parleys_codes_are_the_six_digit_sha1_ones() {
        // The RFC's SHA-1 seed in base32; the 6-digit code is the 8-digit
        // vector's last six digits (dynamic truncation mod 10^6).
        let secret = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";
        assert_eq!(code_at(secret, 59).as_deref(), Some("287082"));
        assert_eq!(code_at(secret, 1_111_111_109).as_deref(), Some("081804"));
    }

    #[test]
    fn a_code_verifies_in_its_step_and_its_neighbours_only() {
        let secret = generate_secret();
        let t = 1_700_000_000;
        let code = code_at(&secret, t).expect("code");
        assert_eq!(verify(&secret, &code, t, None), Some(step_of(t)));
        assert_eq!(verify(&secret, &code, t + 30, None), Some(step_of(t)));
        assert_eq!(verify(&secret, &code, t - 30, None), Some(step_of(t)));
        assert_eq!(verify(&secret, &code, t + 90, None), None);
        assert_eq!(verify(&secret, "12345", t, None), None);
        assert_eq!(verify(&secret, "abcdef", t, None), None);
    }

    #[test]
    fn a_step_once_used_is_never_accepted_again() {
        let secret = generate_secret();
        let t = 1_700_000_000;
        let code = code_at(&secret, t).expect("code");
        let step = verify(&secret, &code, t, None).expect("first use");
        assert_eq!(verify(&secret, &code, t, Some(step)), None);
        let earlier = code_at(&secret, t - 30).expect("code");
        assert_eq!(verify(&secret, &earlier, t, Some(step)), None);
        let later = code_at(&secret, t + 30).expect("code");
        assert_eq!(verify(&secret, &later, t, Some(step)), Some(step + 1));
    }

    #[test]
    fn generated_secrets_are_160_bit_base32_and_give_a_url() {
        let secret = generate_secret();
        assert_eq!(secret.len(), 32);
        let url = otpauth_url(&secret, "Parley", "alice").expect("url");
        assert!(url.starts_with("otpauth://totp/Parley:alice?"), "{url}");
        assert!(url.contains(&format!("secret={secret}")), "{url}");
    }
}
