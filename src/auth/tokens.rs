//! Access tokens (JWT, signed by the [`KeyRing`]: HS256 or EdDSA, with a
//! `kid`) and refresh tokens (opaque, stored hashed).

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Utc;
use jsonwebtoken::{Header, Validation};
use parley_actors::domain::{Role, SessionId, UserId};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::keys::{KeyRing, LEEWAY_SECS};
use crate::config::Secret;

/// The claims of an access token, exactly as the contract lists them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    /// The user's id.
    pub sub: UserId,
    pub username: String,
    pub role: Role,
    /// The session (device) the token belongs to.
    pub sid: SessionId,
    pub exp: i64,
    pub iat: i64,
    pub iss: String,
    pub aud: String,
    /// Unique per token.
    pub jti: String,
}

/// Why an access token was refused.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// Past `exp`.
    #[error("token expired")]
    Expired,
    /// Bad signature, shape, issuer or audience.
    #[error("token invalid: {0}")]
    Invalid(String),
}

/// Signs and checks access tokens.
#[derive(Clone)]
pub struct TokenKeys {
    ring: KeyRing,
    issuer: String,
    audience: String,
    ttl: Duration,
}

impl std::fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenKeys")
            .field("ring", &self.ring)
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("ttl", &self.ttl)
            .finish()
    }
}

impl TokenKeys {
    /// Keys for HS256 with the given secret alone.
    pub fn new(secret: &Secret, issuer: &str, audience: &str, ttl: Duration) -> Self {
        Self::with_ring(KeyRing::hs256(secret, ttl), issuer, audience, ttl)
    }

    /// Keys from a key ring.
    pub fn with_ring(ring: KeyRing, issuer: &str, audience: &str, ttl: Duration) -> Self {
        Self {
            ring,
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
            ttl,
        }
    }

    /// Access token lifetime.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// The key ring (for the JWKS document).
    pub fn ring(&self) -> &KeyRing {
        &self.ring
    }

    /// Mints an access token, signed by the current key and naming it in
    /// the header's `kid`.
    pub fn issue(
        &self,
        user: UserId,
        username: &str,
        role: Role,
        session: SessionId,
    ) -> Result<String, TokenError> {
        let now = Utc::now().timestamp();
        let claims = AccessClaims {
            sub: user,
            username: username.to_owned(),
            role,
            sid: session,
            iat: now,
            exp: now + i64::try_from(self.ttl.as_secs()).unwrap_or(i64::MAX / 2),
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            jti: Uuid::now_v7().to_string(),
        };
        let key = self.ring.signing_key();
        let mut header = Header::new(key.algorithm);
        header.kid = Some(key.kid);
        jsonwebtoken::encode(&header, &claims, &key.encoding)
            .map_err(|e| TokenError::Invalid(e.to_string()))
    }

    /// Checks the key named by `kid` (known and not dropped; its algorithm
    /// is the only one accepted), the signature, expiry, issuer and audience.
    pub fn verify(&self, token: &str) -> Result<AccessClaims, TokenError> {
        let header =
            jsonwebtoken::decode_header(token).map_err(|e| TokenError::Invalid(e.to_string()))?;
        let kid = header
            .kid
            .ok_or_else(|| TokenError::Invalid("no kid".to_owned()))?;
        let key = self
            .ring
            .verifying_key(&kid)
            .ok_or_else(|| TokenError::Invalid("unknown or dropped kid".to_owned()))?;
        let mut validation = Validation::new(key.algorithm);
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.audience]);
        validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
        validation.leeway = LEEWAY_SECS;
        jsonwebtoken::decode::<AccessClaims>(token, &key.decoding, &validation)
            .map(|data| data.claims)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => TokenError::Expired,
                _ => TokenError::Invalid(e.to_string()),
            })
    }
}

/// A new opaque refresh token (256 random bits, URL-safe).
pub fn new_refresh_token() -> String {
    let bytes: [u8; 32] = rand::random();
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The hex SHA-256 under which a refresh token is stored.
pub fn hash_refresh_token(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Reads the JWT secret from `<data_dir>/jwt_secret`, creating it (mode 0600)
/// on first start.
pub fn load_or_create_secret(data_dir: &Path) -> std::io::Result<Secret> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let path = data_dir.join("jwt_secret");
    match std::fs::read_to_string(&path) {
        Ok(existing) if existing.trim().len() >= 32 => {
            let mode = std::fs::metadata(&path)?.permissions().mode() & 0o777;
            if mode != 0o600 {
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))?;
            }
            return Ok(Secret::new(existing.trim()));
        }
        Ok(_) => {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{} is too short to be a secret", path.display()),
            ));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    std::fs::create_dir_all(data_dir)?;
    let bytes: [u8; 48] = rand::random();
    let secret = URL_SAFE_NO_PAD.encode(bytes);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)?;
    file.write_all(secret.as_bytes())?;
    file.sync_all()?;
    Ok(Secret::new(secret))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(ttl: Duration) -> TokenKeys {
        TokenKeys::new(&Secret::new("s".repeat(40)), "parley", "parley", ttl)
    }

    #[test]
    fn access_tokens_round_trip_with_every_claim() {
        let keys = keys(Duration::from_secs(900));
        let (user, session) = (UserId::new(), SessionId::new());
        let token = keys
            .issue(user, "alice", Role::User, session)
            .expect("issue");
        let claims = keys.verify(&token).expect("verify");
        assert_eq!(claims.sub, user);
        assert_eq!(claims.sid, session);
        assert_eq!(claims.username, "alice");
        assert_eq!(claims.exp - claims.iat, 900);
        assert_eq!(claims.iss, "parley");
        assert_eq!(claims.aud, "parley");
    }

    #[test]
    fn tampered_or_foreign_tokens_fail() {
        let keys = keys(Duration::from_secs(900));
        let token = keys
            .issue(UserId::new(), "a", Role::Admin, SessionId::new())
            .expect("issue");
        let other = TokenKeys::new(
            &Secret::new("t".repeat(40)),
            "parley",
            "parley",
            Duration::from_secs(900),
        );
        assert!(matches!(other.verify(&token), Err(TokenError::Invalid(_))));
        let wrong_aud = TokenKeys::new(
            &Secret::new("s".repeat(40)),
            "parley",
            "elsewhere",
            Duration::from_secs(900),
        );
        assert!(wrong_aud.verify(&token).is_err());
        assert!(keys.verify("not.a.token").is_err());
    }

    #[test]
    fn refresh_tokens_are_random_and_hashed() {
        let (a, b) = (new_refresh_token(), new_refresh_token());
        assert_ne!(a, b);
        assert_eq!(hash_refresh_token(&a).len(), 64);
        assert_eq!(hash_refresh_token(&a), hash_refresh_token(&a));
    }

    #[test]
    fn the_secret_file_is_private_and_reused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let first = load_or_create_secret(dir.path()).expect("create");
        let again = load_or_create_secret(dir.path()).expect("reuse");
        assert_eq!(first, again);
        let mode = std::fs::metadata(dir.path().join("jwt_secret"))
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
