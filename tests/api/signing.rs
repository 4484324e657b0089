//! Signing tokens like the server does, with the secret from its data dir,
//! and starting a second server on the same data (restart tests).

use std::path::{Path, PathBuf};

use parley::{Application, Settings};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::helpers::{TestApp, base64url_encode};

/// Where the server keeps its generated JWT secret.
pub fn secret_file(data_dir: &Path) -> PathBuf {
    data_dir.join("jwt_secret")
}

/// HMAC-SHA256 (RFC 2104) over the server's own `sha2`.
fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    const BLOCK: usize = 64;
    let mut block = [0u8; BLOCK];
    if key.len() > BLOCK {
        block[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha256::new();
    inner.update(block.map(|b| b ^ 0x36));
    inner.update(message);
    let mut outer = Sha256::new();
    outer.update(block.map(|b| b ^ 0x5c));
    outer.update(inner.finalize());
    outer.finalize().into()
}

/// An HS256 JWT of `header` and `claims`, signed with `secret`.
pub fn sign_jwt(secret: &[u8], header: &Value, claims: &Value) -> String {
    let encode = |v: &Value| base64url_encode(&serde_json::to_vec(v).expect("JSON"));
    let input = format!("{}.{}", encode(header), encode(claims));
    let signature = hmac_sha256(secret, input.as_bytes());
    format!("{input}.{}", base64url_encode(&signature))
}

impl TestApp {
    /// The server's JWT secret, as it signs with it.
    pub fn jwt_secret(&self) -> Vec<u8> {
        std::fs::read_to_string(secret_file(self._tmp.path()))
            .expect("the secret file")
            .trim()
            .as_bytes()
            .to_vec()
    }

    /// Starts a second server on the same data dir and database (as after a
    /// restart); returns its `/api/v1` base URL.
    pub async fn spawn_sibling(&self) -> String {
        let settings = Settings {
            listen: "127.0.0.1:0".parse().expect("a socket address"),
            data_dir: self._tmp.path().to_path_buf(),
            database_url: self._db.as_ref().map(|db| db.url()),
            ..Settings::default()
        };
        let app = Box::pin(Application::build(settings))
            .await
            .expect("the sibling builds");
        let addr = app.local_addr();
        tokio::spawn(async move {
            if let Err(e) = app.run_until_stopped().await {
                eprintln!("sibling stopped with an error: {e:#}");
            }
        });
        format!("http://{addr}/api/v1")
    }
}

#[test]
fn hmac_matches_rfc_4231_case_2() {
    let mac = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
    let hex: String = mac.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(
        hex,
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    );
}
