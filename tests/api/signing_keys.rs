//! Signing keys: the `kid` header, EdDSA tokens that other services verify
//! with the JWKS document alone (checked here with an independent JWT
//! library), and `parley keys rotate` logging nobody out while a dropped
//! key's signatures stop counting.

use std::collections::HashSet;
use std::time::Duration;

use jwt_simple::prelude::{Ed25519PublicKey, EdDSAPublicKeyLike, VerificationOptions};
use parley::Settings;
use parley::config::JwtAlgorithm;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{PASSWORD, TestApp, base64url_decode, jwt_parts, spawn_app, spawn_app_with};
use crate::signing::sign_jwt;

/// The claims Parley adds beyond the registered ones.
#[derive(Debug, serde::Deserialize)]
struct ParleyClaims {
    username: String,
    sid: String,
}

/// The settings the test app runs with, for the CLI functions.
fn app_settings(app: &TestApp, tune: impl FnOnce(&mut Settings)) -> Settings {
    let mut settings = Settings {
        data_dir: app._tmp.path().to_path_buf(),
        database_url: app._db.as_ref().map(|db| db.url()),
        ..Settings::default()
    };
    tune(&mut settings);
    settings
}

/// The ring file's keys: `(kid, material bytes, retired)`.
fn ring_keys(app: &TestApp) -> Vec<(String, Vec<u8>, bool)> {
    let text = std::fs::read_to_string(app._tmp.path().join("signing_keys.json"))
        .expect("the key ring file");
    let ring: Value = serde_json::from_str(&text).expect("JSON");
    ring["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|k| {
            (
                k["kid"].as_str().expect("kid").to_owned(),
                base64url_decode(k["material"].as_str().expect("material")),
                !k["retired_at"].is_null(),
            )
        })
        .collect()
}

fn kid_of(token: &str) -> String {
    let (header, _) = jwt_parts(token);
    header["kid"].as_str().expect("a kid header").to_owned()
}

#[tokio::test]
async fn hs256_tokens_name_their_key_and_publish_no_public_keys() {
    let app = spawn_app().await;
    let alice = app.register_user("alice").await;

    let (header, _) = jwt_parts(&alice.access);
    assert_eq!(header["alg"], "HS256");
    assert!(
        header["kid"].as_str().is_some_and(|k| !k.is_empty()),
        "{header}"
    );
    let jwks = app.get_ops("/.well-known/jwks.json").await;
    jwks.assert_status(StatusCode::OK);
    assert_eq!(
        jwks.body,
        json!({"keys": []}),
        "a shared secret is never published"
    );
}

#[tokio::test]
async fn an_eddsa_token_verifies_against_the_jwks_with_an_independent_library() {
    let app = spawn_app_with(|s| s.jwt_algorithm = JwtAlgorithm::EdDsa).await;
    let alice = app.register_user("alice").await;
    let kid = kid_of(&alice.access);
    let (header, _) = jwt_parts(&alice.access);
    assert_eq!(header["alg"], "EdDSA");

    let jwks = app.get_ops("/.well-known/jwks.json").await;
    jwks.assert_status(StatusCode::OK);
    let jwk = jwks.body["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .find(|k| k["kid"] == kid.as_str())
        .unwrap_or_else(|| panic!("the token's kid {kid} is in {}", jwks.body))
        .clone();
    assert_eq!(
        (jwk["kty"].as_str(), jwk["crv"].as_str()),
        (Some("OKP"), Some("Ed25519"))
    );
    let public = Ed25519PublicKey::from_bytes(&base64url_decode(jwk["x"].as_str().expect("x")))
        .expect("an Ed25519 public key");

    let options = VerificationOptions {
        allowed_issuers: Some(HashSet::from(["parley".to_owned()])),
        allowed_audiences: Some(HashSet::from(["parley".to_owned()])),
        required_key_id: Some(kid.clone()),
        ..VerificationOptions::default()
    };
    let claims = public
        .verify_token::<ParleyClaims>(&alice.access, Some(options))
        .expect("jwt-simple verifies Parley's token with the published key");
    assert_eq!(claims.subject.as_deref(), alice.user["id"].as_str());
    assert_eq!(claims.custom.username, "alice");
    assert_eq!(claims.custom.sid, alice.session_id);

    let mut tampered = alice.access.clone();
    tampered.insert(tampered.find('.').expect("dot") + 2, 'x');
    assert!(
        public
            .verify_token::<ParleyClaims>(&tampered, None)
            .is_err()
    );
    assert_eq!(app.profile_status(&alice.access).await, StatusCode::OK);
}

#[tokio::test]
async fn the_eddsa_private_key_is_kept_in_a_private_file_across_restarts() {
    use std::os::unix::fs::PermissionsExt;
    let app = spawn_app_with(|s| s.jwt_algorithm = JwtAlgorithm::EdDsa).await;
    let alice = app.register_user("alice").await;

    let path = app._tmp.path().join("signing_keys.json");
    let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "{} is private", path.display());
    let settings = app_settings(&app, |s| s.jwt_algorithm = JwtAlgorithm::EdDsa);
    let again = parley::startup::signing_keys(&settings).expect("the keys load again");

    assert_eq!(again.ring().current_kid(), kid_of(&alice.access));
    assert_eq!(
        ring_keys(&app).len(),
        1,
        "the key pair is reused, not replaced"
    );
}

/// Logs in until the server signs with `kid` (it re-reads a rotated ring
/// within seconds).
async fn login_until_signed_by(app: &TestApp, kid: &str) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let tokens = app.login_ok("alice", PASSWORD).await;
        if kid_of(&tokens.access) == kid {
            return tokens.access;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the server never signed with the new key {kid}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[tokio::test]
async fn a_token_signed_before_keys_rotate_still_works_and_one_signed_with_a_dropped_key_does_not()
{
    const TTL: u64 = 4;
    let app = spawn_app_with(|s| s.access_token_ttl_secs = TTL).await;
    let alice = app.register_user("alice").await;
    let old_kid = kid_of(&alice.access);
    let (_, old_secret, _) = ring_keys(&app)
        .into_iter()
        .find(|(kid, _, _)| *kid == old_kid)
        .expect("the signing key is in the ring");

    let settings = app_settings(&app, |s| s.access_token_ttl_secs = TTL);
    let rotation = parley::cli::rotate_keys(&settings)
        .await
        .expect("keys rotate");
    assert_eq!(rotation.retired_kid.as_deref(), Some(old_kid.as_str()));
    let rotated_at = tokio::time::Instant::now();

    assert_eq!(
        app.profile_status(&alice.access).await,
        StatusCode::OK,
        "a token signed before the rotation still works"
    );
    let fresh = login_until_signed_by(&app, &rotation.new_kid).await;
    assert_eq!(app.profile_status(&fresh).await, StatusCode::OK);

    // Past the old key's last token's expiry (+ leeway), the key is dropped:
    // a signature by it no longer counts, however fresh the claims.
    tokio::time::sleep_until(rotated_at + Duration::from_secs(TTL + 6)).await;
    let (header, mut claims) = jwt_parts(&fresh);
    let now = chrono::Utc::now().timestamp();
    claims["iat"] = json!(now);
    claims["exp"] = json!(now + 60);
    let mut old_header = header.clone();
    old_header["kid"] = json!(old_kid);
    let by_dropped_key = sign_jwt(&old_secret, &old_header, &claims);
    let reply = app.get_authed("/users/profile", &by_dropped_key).await;
    reply.assert_error(StatusCode::UNAUTHORIZED, "invalid_token");

    let (_, new_secret, _) = ring_keys(&app)
        .into_iter()
        .find(|(kid, _, _)| *kid == rotation.new_kid)
        .expect("the new key is in the ring");
    let by_current_key = sign_jwt(&new_secret, &header, &claims);
    assert_eq!(
        app.profile_status(&by_current_key).await,
        StatusCode::OK,
        "the same claims signed by the current key pass (the refusal was the key)"
    );

    let audit = app
        .store
        .list_audit_entries(Some("key_rotation"), 10)
        .await
        .expect("audit entries");
    assert_eq!(audit.len(), 1, "the rotation is audited: {audit:?}");
    assert_eq!(
        audit[0].target_id.as_deref(),
        Some(rotation.new_kid.as_str())
    );
}

#[tokio::test]
async fn rotating_a_configured_secret_is_refused_with_a_reason() {
    let secret = "c".repeat(40);
    let app = spawn_app_with(|s| s.jwt_secret = Some(parley::config::Secret::new(&secret))).await;
    let settings = app_settings(&app, |s| {
        s.jwt_secret = Some(parley::config::Secret::new(&secret));
    });

    let error = parley::cli::rotate_keys(&settings)
        .await
        .expect_err("a configured secret is the operator's to rotate");

    assert!(error.to_string().contains("jwt_secret"), "{error}");
}

#[tokio::test]
async fn the_secret_can_come_from_a_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("secret");
    std::fs::write(&file, format!("{}\n", "f".repeat(40))).expect("write");
    let app = spawn_app_with(|s| s.jwt_secret_file = Some(file.clone())).await;
    let alice = app.register_user("alice").await;

    let (header, claims) = jwt_parts(&alice.access);
    let by_file_secret = sign_jwt("f".repeat(40).as_bytes(), &header, &claims);
    let by_other_secret = sign_jwt("g".repeat(40).as_bytes(), &header, &claims);

    assert_eq!(app.profile_status(&by_file_secret).await, StatusCode::OK);
    assert_eq!(
        app.profile_status(&by_other_secret).await,
        StatusCode::UNAUTHORIZED
    );
}
