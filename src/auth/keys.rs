//! Signing keys for access tokens: a small key ring with a `kid` per key.
//!
//! Every access token names its key in the JWT header's `kid`. The ring
//! holds one *current* key (the one that signs) and the *retired* keys whose
//! tokens may still be alive: a key retired at time R verifies tokens until
//! R + the access-token lifetime (+ a few seconds of clock leeway), and is
//! then *dropped* — refused, and removed from the ring file at the next
//! rotation or start. So `parley keys rotate` logs nobody out.
//!
//! Where keys come from:
//! * `jwt_algorithm = "HS256"` with `jwt_secret` or `jwt_secret_file` set:
//!   that one secret, never rotated by Parley (the operator owns it).
//! * otherwise the ring file `<data_dir>/signing_keys.json` (mode 0600),
//!   created at first start. For HS256 its first key is the secret in
//!   `<data_dir>/jwt_secret` (created as before, so data dirs from before
//!   the ring keep their tokens valid); for EdDSA a fresh Ed25519 key pair.
//!   When the configured algorithm differs from the current key's, the ring
//!   rotates to a new key of that algorithm at start.
//!
//! The server re-reads the ring file when it changes (a rotation done by
//! the CLI while the server runs), at most every few seconds, and at once
//! when a token names a `kid` it does not know.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use ed25519_dalek::pkcs8::EncodePrivateKey;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::{JwtAlgorithm, Secret};

/// The ring file's name in the data dir.
pub const RING_FILE: &str = "signing_keys.json";
/// Clock leeway, seconds, allowed on `exp` (and on dropping a retired key).
pub const LEEWAY_SECS: u64 = 5;
/// How often a file-backed ring looks for a changed file when signing.
const RELOAD_EVERY: Duration = Duration::from_secs(2);

/// Why keys could not be loaded or rotated.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Reading or writing a key file failed.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A key file is not what Parley wrote.
    #[error("{path}: {message}")]
    Corrupt { path: PathBuf, message: String },
    /// The signing secret is configured, so Parley may not replace it.
    #[error(
        "the HS256 secret is configured (jwt_secret or jwt_secret_file); rotate it there, or unset it to let Parley keep a key ring in the data dir"
    )]
    Configured,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> KeyError + '_ {
    move |source| KeyError::Io {
        path: path.to_owned(),
        source,
    }
}

/// One key as the ring file stores it.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredKey {
    kid: String,
    alg: JwtAlgorithm,
    /// HS256: the secret's bytes; EdDSA: the Ed25519 seed (32 bytes).
    /// Base64url without padding.
    material: String,
    created_at: DateTime<Utc>,
    /// When another key took over signing; `None` for the current key.
    retired_at: Option<DateTime<Utc>>,
}

/// The ring file.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct RingFile {
    keys: Vec<StoredKey>,
}

/// A key ready to sign and verify.
#[derive(Clone)]
struct LiveKey {
    kid: String,
    algorithm: Algorithm,
    encoding: EncodingKey,
    decoding: DecodingKey,
    /// Ed25519 public key (for the JWKS document).
    public: Option<[u8; 32]>,
    retired_at: Option<DateTime<Utc>>,
}

/// The keys in force.
#[derive(Clone)]
struct Ring {
    current: LiveKey,
    by_kid: HashMap<String, LiveKey>,
}

/// A key's id: for HS256 a digest of the secret (so every node configured
/// with the same secret names it alike); for Ed25519 the RFC 7638 JWK
/// thumbprint of the public key.
fn kid_of(alg: JwtAlgorithm, material: &[u8]) -> String {
    match alg {
        JwtAlgorithm::Hs256 => {
            let digest = Sha256::digest([b"parley-hs256:".as_slice(), material].concat());
            URL_SAFE_NO_PAD.encode(&digest[..12])
        }
        JwtAlgorithm::EdDsa => {
            let public = ed25519_public(material).unwrap_or([0; 32]);
            let jwk = format!(
                r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#,
                URL_SAFE_NO_PAD.encode(public)
            );
            URL_SAFE_NO_PAD.encode(Sha256::digest(jwk.as_bytes()))
        }
    }
}

fn ed25519_seed(material: &[u8]) -> Option<[u8; 32]> {
    material.try_into().ok()
}

fn ed25519_public(material: &[u8]) -> Option<[u8; 32]> {
    let seed = ed25519_seed(material)?;
    Some(
        ed25519_dalek::SigningKey::from_bytes(&seed)
            .verifying_key()
            .to_bytes(),
    )
}

impl LiveKey {
    fn from_stored(key: &StoredKey, path: &Path) -> Result<Self, KeyError> {
        let corrupt = |message: String| KeyError::Corrupt {
            path: path.to_owned(),
            message,
        };
        let material = URL_SAFE_NO_PAD
            .decode(&key.material)
            .map_err(|_| corrupt(format!("key {} is not base64url", key.kid)))?;
        let mut live = Self::from_material(key.alg, &material)
            .ok_or_else(|| corrupt(format!("key {} is not a valid key", key.kid)))?;
        live.kid.clone_from(&key.kid);
        live.retired_at = key.retired_at;
        Ok(live)
    }

    fn from_material(alg: JwtAlgorithm, material: &[u8]) -> Option<Self> {
        let kid = kid_of(alg, material);
        match alg {
            JwtAlgorithm::Hs256 => Some(Self {
                kid,
                algorithm: Algorithm::HS256,
                encoding: EncodingKey::from_secret(material),
                decoding: DecodingKey::from_secret(material),
                public: None,
                retired_at: None,
            }),
            JwtAlgorithm::EdDsa => {
                let seed = ed25519_seed(material)?;
                let signing = ed25519_dalek::SigningKey::from_bytes(&seed);
                let der = signing.to_pkcs8_der().ok()?;
                let public = signing.verifying_key().to_bytes();
                Some(Self {
                    kid,
                    algorithm: Algorithm::EdDSA,
                    encoding: EncodingKey::from_ed_der(der.as_bytes()),
                    decoding: DecodingKey::from_ed_der(&public),
                    public: Some(public),
                    retired_at: None,
                })
            }
        }
    }

    /// Whether a retired key has outlived every token it signed.
    fn dropped(&self, token_ttl: Duration, now: DateTime<Utc>) -> bool {
        self.retired_at
            .is_some_and(|at| now > at + grace(token_ttl))
    }
}

fn grace(token_ttl: Duration) -> chrono::Duration {
    chrono::Duration::from_std(token_ttl + Duration::from_secs(LEEWAY_SECS))
        .unwrap_or(chrono::Duration::MAX)
}

impl Ring {
    fn single(key: LiveKey) -> Self {
        let by_kid = HashMap::from([(key.kid.clone(), key.clone())]);
        Self {
            current: key,
            by_kid,
        }
    }

    fn from_file(file: &RingFile, path: &Path) -> Result<Self, KeyError> {
        let mut by_kid = HashMap::new();
        let mut current = None;
        for stored in &file.keys {
            let live = LiveKey::from_stored(stored, path)?;
            if live.retired_at.is_none() {
                current = Some(live.clone());
            }
            by_kid.insert(live.kid.clone(), live);
        }
        let current = current.ok_or_else(|| KeyError::Corrupt {
            path: path.to_owned(),
            message: "no current key".to_owned(),
        })?;
        Ok(Self { current, by_kid })
    }
}

/// Where the ring comes from, for reloads.
#[derive(Debug, Clone)]
struct RingSource {
    path: PathBuf,
    /// The file's modification time and length when last read.
    seen: Option<(SystemTime, u64)>,
    checked: Instant,
}

/// The signing keys in force, shared by every clone.
#[derive(Clone)]
pub struct KeyRing {
    ring: Arc<RwLock<Ring>>,
    source: Option<Arc<Mutex<RingSource>>>,
    token_ttl: Duration,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRing")
            .field("current", &self.current_kid())
            .field("file", &self.source.is_some())
            .finish_non_exhaustive()
    }
}

/// A key the ring found for a token.
pub(crate) struct FoundKey {
    pub algorithm: Algorithm,
    pub decoding: DecodingKey,
}

/// The key to sign with.
pub(crate) struct SigningKey {
    pub kid: String,
    pub algorithm: Algorithm,
    pub encoding: EncodingKey,
}

impl KeyRing {
    /// One HS256 secret, never rotated (a configured `jwt_secret`, and tests).
    pub fn hs256(secret: &Secret, token_ttl: Duration) -> Self {
        let key = LiveKey::from_material(JwtAlgorithm::Hs256, secret.expose().as_bytes())
            .unwrap_or_else(|| unreachable!("any bytes are an HS256 key"));
        Self {
            ring: Arc::new(RwLock::new(Ring::single(key))),
            source: None,
            token_ttl,
        }
    }

    /// The ring the settings ask for (see the module docs), creating the
    /// ring file on first start.
    pub fn load(
        data_dir: &Path,
        algorithm: JwtAlgorithm,
        configured: Option<&Secret>,
        token_ttl: Duration,
    ) -> Result<Self, KeyError> {
        if let (JwtAlgorithm::Hs256, Some(secret)) = (algorithm, configured) {
            return Ok(Self::hs256(secret, token_ttl));
        }
        if configured.is_some() {
            tracing::warn!("jwt_secret is ignored: jwt_algorithm is EdDSA");
        }
        let path = data_dir.join(RING_FILE);
        let mut file = read_ring(&path)?.unwrap_or_default();
        let mut changed = false;
        if file.keys.is_empty() {
            let first = match algorithm {
                JwtAlgorithm::Hs256 => {
                    let legacy = super::tokens::load_or_create_secret(data_dir)
                        .map_err(io_err(&data_dir.join("jwt_secret")))?;
                    new_stored(JwtAlgorithm::Hs256, legacy.expose().as_bytes().to_vec())
                }
                JwtAlgorithm::EdDsa => generate(JwtAlgorithm::EdDsa),
            };
            file.keys.push(first);
            changed = true;
        }
        let current_alg = file
            .keys
            .iter()
            .find(|k| k.retired_at.is_none())
            .map(|k| k.alg);
        if current_alg != Some(algorithm) {
            tracing::info!(?algorithm, "jwt_algorithm changed: rotating to a new key");
            rotate_file(&mut file, algorithm, token_ttl);
            changed = true;
        }
        changed |= drop_expired(&mut file, token_ttl);
        if changed {
            write_ring(&path, &file)?;
        }
        let ring = Ring::from_file(&file, &path)?;
        let seen = stamp(&path);
        Ok(Self {
            ring: Arc::new(RwLock::new(ring)),
            source: Some(Arc::new(Mutex::new(RingSource {
                path,
                seen,
                checked: Instant::now(),
            }))),
            token_ttl,
        })
    }

    /// The `kid` that signs new tokens.
    pub fn current_kid(&self) -> String {
        self.read().current.kid.clone()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Ring> {
        // A poisoned lock still holds a consistent ring: it is only ever
        // replaced whole.
        self.ring.read().unwrap_or_else(|e| e.into_inner())
    }

    /// The key that signs now (re-reading a changed ring file first).
    pub(crate) fn signing_key(&self) -> SigningKey {
        self.reload_if_changed(false);
        let ring = self.read();
        SigningKey {
            kid: ring.current.kid.clone(),
            algorithm: ring.current.algorithm,
            encoding: ring.current.encoding.clone(),
        }
    }

    /// The key named `kid`, unless it is unknown or dropped.
    pub(crate) fn verifying_key(&self, kid: &str) -> Option<FoundKey> {
        let found = self.lookup(kid).or_else(|| {
            self.reload_if_changed(true);
            self.lookup(kid)
        })?;
        (!found.dropped(self.token_ttl, Utc::now())).then(|| FoundKey {
            algorithm: found.algorithm,
            decoding: found.decoding,
        })
    }

    fn lookup(&self, kid: &str) -> Option<LiveKey> {
        self.read().by_kid.get(kid).cloned()
    }

    /// Re-reads the ring file if it changed since it was read; at most once
    /// per [`RELOAD_EVERY`] unless `now` (an unknown kid: at most once a
    /// second, so garbage kids cannot make every request read a file).
    fn reload_if_changed(&self, now: bool) {
        let Some(source) = &self.source else { return };
        let Ok(mut source) = source.lock() else {
            return;
        };
        let every = if now {
            Duration::from_secs(1)
        } else {
            RELOAD_EVERY
        };
        if source.checked.elapsed() < every {
            return;
        }
        source.checked = Instant::now();
        let seen = stamp(&source.path);
        if seen == source.seen {
            return;
        }
        match read_ring(&source.path).and_then(|file| {
            let file = file.ok_or_else(|| KeyError::Corrupt {
                path: source.path.clone(),
                message: "the ring file is gone".to_owned(),
            })?;
            Ring::from_file(&file, &source.path)
        }) {
            Ok(ring) => {
                tracing::info!(kid = %ring.current.kid, "signing keys reloaded");
                *self.ring.write().unwrap_or_else(|e| e.into_inner()) = ring;
                source.seen = seen;
            }
            Err(e) => {
                tracing::error!(error = %e, "signing keys not reloaded; keeping the old ones")
            }
        }
    }

    /// The JSON Web Key Set of the public keys still in force (EdDSA keys;
    /// an HS256 secret is never published, so an HS256 ring's set is empty).
    pub fn jwks(&self) -> serde_json::Value {
        self.reload_if_changed(false);
        let now = Utc::now();
        let ring = self.read();
        let mut keys: Vec<_> = ring
            .by_kid
            .values()
            .filter(|k| !k.dropped(self.token_ttl, now))
            .filter_map(|k| {
                let public = k.public?;
                Some(serde_json::json!({
                    "kty": "OKP",
                    "crv": "Ed25519",
                    "use": "sig",
                    "alg": "EdDSA",
                    "kid": k.kid,
                    "x": URL_SAFE_NO_PAD.encode(public),
                }))
            })
            .collect();
        keys.sort_by(|a, b| a["kid"].as_str().cmp(&b["kid"].as_str()));
        serde_json::json!({ "keys": keys })
    }
}

/// What `parley keys rotate` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotation {
    /// The new current key.
    pub new_kid: String,
    /// The key it replaced (valid until its tokens expire).
    pub retired_kid: Option<String>,
    /// Retired keys removed because every token they signed has expired.
    pub dropped: Vec<String>,
}

/// Adds a new signing key of `algorithm` to the ring in `data_dir`; the
/// previous key stays valid until its tokens expire (`token_ttl`). A running
/// server picks the new key up within seconds.
pub fn rotate(
    data_dir: &Path,
    algorithm: JwtAlgorithm,
    configured: Option<&Secret>,
    token_ttl: Duration,
) -> Result<Rotation, KeyError> {
    if let (JwtAlgorithm::Hs256, Some(_)) = (algorithm, configured) {
        return Err(KeyError::Configured);
    }
    // Creates the ring as the server would, when it does not exist yet.
    KeyRing::load(data_dir, algorithm, configured, token_ttl)?;
    let path = data_dir.join(RING_FILE);
    let mut file = read_ring(&path)?.unwrap_or_default();
    let retired_kid = file
        .keys
        .iter()
        .find(|k| k.retired_at.is_none())
        .map(|k| k.kid.clone());
    let new_kid = rotate_file(&mut file, algorithm, token_ttl);
    let before: Vec<String> = file.keys.iter().map(|k| k.kid.clone()).collect();
    drop_expired(&mut file, token_ttl);
    let dropped = before
        .into_iter()
        .filter(|kid| !file.keys.iter().any(|k| &k.kid == kid))
        .collect();
    write_ring(&path, &file)?;
    Ok(Rotation {
        new_kid,
        retired_kid,
        dropped,
    })
}

fn new_stored(alg: JwtAlgorithm, material: Vec<u8>) -> StoredKey {
    StoredKey {
        kid: kid_of(alg, &material),
        alg,
        material: URL_SAFE_NO_PAD.encode(&material),
        created_at: Utc::now(),
        retired_at: None,
    }
}

fn generate(alg: JwtAlgorithm) -> StoredKey {
    let material: Vec<u8> = match alg {
        // 384 bits, like the generated `jwt_secret`.
        JwtAlgorithm::Hs256 => rand::random::<[u8; 48]>().to_vec(),
        JwtAlgorithm::EdDsa => rand::random::<[u8; 32]>().to_vec(),
    };
    new_stored(alg, material)
}

/// Retires the current key(s) and adds a new one; returns its kid.
fn rotate_file(file: &mut RingFile, alg: JwtAlgorithm, _token_ttl: Duration) -> String {
    let now = Utc::now();
    for key in &mut file.keys {
        if key.retired_at.is_none() {
            key.retired_at = Some(now);
        }
    }
    let key = generate(alg);
    let kid = key.kid.clone();
    file.keys.push(key);
    kid
}

/// Removes retired keys whose tokens have all expired; true if any went.
fn drop_expired(file: &mut RingFile, token_ttl: Duration) -> bool {
    let now = Utc::now();
    let before = file.keys.len();
    file.keys
        .retain(|k| k.retired_at.is_none_or(|at| now <= at + grace(token_ttl)));
    file.keys.len() != before
}

fn stamp(path: &Path) -> Option<(SystemTime, u64)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

fn read_ring(path: &Path) -> Result<Option<RingFile>, KeyError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err(path)(e)),
    };
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| KeyError::Corrupt {
            path: path.to_owned(),
            message: e.to_string(),
        })
}

/// Writes the ring atomically (a private temporary file renamed over it),
/// so a server reading it never sees half a file.
fn write_ring(path: &Path, file: &RingFile) -> Result<(), KeyError> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    std::fs::create_dir_all(dir).map_err(io_err(dir))?;
    let tmp = dir.join(format!(".{RING_FILE}.{}", uuid::Uuid::new_v4().simple()));
    let json = serde_json::to_vec_pretty(file).map_err(|e| KeyError::Corrupt {
        path: path.to_owned(),
        message: e.to_string(),
    })?;
    let written = (|| {
        let mut out = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        out.write_all(&json)?;
        out.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if written.is_err() {
        // Best effort: the temporary file holds secrets.
        if let Err(e) = std::fs::remove_file(&tmp) {
            tracing::debug!(error = %e, "temporary key file not removed");
        }
    }
    written.map_err(io_err(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: Duration = Duration::from_secs(900);

    fn mode(path: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(path).expect("meta").permissions().mode() & 0o777
    }

    #[test]
    fn an_hs256_ring_starts_from_the_legacy_secret_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let legacy = super::super::tokens::load_or_create_secret(dir.path()).expect("secret");
        let ring = KeyRing::load(dir.path(), JwtAlgorithm::Hs256, None, TTL).expect("ring");
        assert_eq!(
            ring.current_kid(),
            kid_of(JwtAlgorithm::Hs256, legacy.expose().as_bytes())
        );
        assert_eq!(mode(&dir.path().join(RING_FILE)), 0o600);
        assert_eq!(ring.jwks()["keys"], serde_json::json!([]));
    }

    #[test]
    fn an_eddsa_ring_publishes_its_public_key() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ring = KeyRing::load(dir.path(), JwtAlgorithm::EdDsa, None, TTL).expect("ring");
        let jwks = ring.jwks();
        let keys = jwks["keys"].as_array().expect("keys");
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0]["kid"], ring.current_kid());
        assert_eq!(keys[0]["crv"], "Ed25519");
        assert_eq!(mode(&dir.path().join(RING_FILE)), 0o600);
        let again = KeyRing::load(dir.path(), JwtAlgorithm::EdDsa, None, TTL).expect("again");
        assert_eq!(
            again.current_kid(),
            ring.current_kid(),
            "kept across restarts"
        );
    }

    #[test]
    fn rotation_keeps_the_old_key_until_its_tokens_expire_then_drops_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ttl = Duration::from_secs(1);
        let ring = KeyRing::load(dir.path(), JwtAlgorithm::EdDsa, None, ttl).expect("ring");
        let old = ring.current_kid();
        let rotation = rotate(dir.path(), JwtAlgorithm::EdDsa, None, ttl).expect("rotate");
        assert_eq!(rotation.retired_kid.as_deref(), Some(old.as_str()));
        assert_ne!(rotation.new_kid, old);
        let ring = KeyRing::load(dir.path(), JwtAlgorithm::EdDsa, None, ttl).expect("reload");
        assert_eq!(ring.current_kid(), rotation.new_kid);
        assert!(ring.verifying_key(&old).is_some(), "still valid");
        assert_eq!(ring.jwks()["keys"].as_array().map(Vec::len), Some(2));
        // Pretend the rotation happened long ago.
        let mut file = read_ring(&dir.path().join(RING_FILE))
            .expect("read")
            .expect("file");
        for key in &mut file.keys {
            if key.kid == old {
                key.retired_at = Some(Utc::now() - chrono::Duration::hours(1));
            }
        }
        write_ring(&dir.path().join(RING_FILE), &file).expect("write");
        let ring = KeyRing::load(dir.path(), JwtAlgorithm::EdDsa, None, ttl).expect("reload");
        assert!(ring.verifying_key(&old).is_none(), "dropped");
        assert_eq!(ring.jwks()["keys"].as_array().map(Vec::len), Some(1));
    }

    #[test]
    fn a_configured_secret_is_not_rotated_by_parley() {
        let dir = tempfile::tempdir().expect("tempdir");
        let secret = Secret::new("s".repeat(40));
        assert!(matches!(
            rotate(dir.path(), JwtAlgorithm::Hs256, Some(&secret), TTL),
            Err(KeyError::Configured)
        ));
        assert!(!dir.path().join(RING_FILE).exists());
    }

    #[test]
    fn switching_the_algorithm_rotates_to_a_key_of_the_new_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let hs = KeyRing::load(dir.path(), JwtAlgorithm::Hs256, None, TTL).expect("hs");
        let ed = KeyRing::load(dir.path(), JwtAlgorithm::EdDsa, None, TTL).expect("ed");
        assert_ne!(hs.current_kid(), ed.current_kid());
        assert!(
            ed.verifying_key(&hs.current_kid()).is_some(),
            "HS256 tokens live on"
        );
        assert!(ed.signing_key().algorithm == Algorithm::EdDSA);
    }
}
