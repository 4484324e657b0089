//! Two-factor state: setup, enable with recovery codes, steps claimed once,
//! recovery codes spent once, disable.

use std::sync::Arc;

use parley_actors::store::{Store, TotpState};

use super::{t, user};

pub(super) async fn totp_is_set_up_enabled_and_disabled(_: String, store: Arc<dyn Store>) {
    let alice = user(store.as_ref(), "alice").await;
    let state = store.totp_state(alice).await.expect("state");
    assert_eq!(
        state,
        Some(TotpState {
            secret: None,
            enabled: false,
            last_step: None
        })
    );
    assert!(
        !store
            .enable_totp(alice, 5, &[], t(1))
            .await
            .expect("enable"),
        "no secret yet"
    );

    assert!(
        store
            .set_totp_secret(alice, "SECRET", t(1))
            .await
            .expect("setup")
    );
    let codes = vec!["h1".to_owned(), "h2".to_owned()];
    assert!(
        store
            .enable_totp(alice, 7, &codes, t(2))
            .await
            .expect("enable")
    );
    assert!(
        !store
            .enable_totp(alice, 8, &codes, t(2))
            .await
            .expect("again")
    );
    assert!(
        !store
            .set_totp_secret(alice, "OTHER", t(3))
            .await
            .expect("setup while on"),
        "a secret in use is not replaced"
    );
    let on = store.totp_state(alice).await.expect("state").expect("user");
    assert_eq!(
        (on.secret.as_deref(), on.enabled, on.last_step),
        (Some("SECRET"), true, Some(7))
    );
    let user_row = store.user_by_id(alice).await.expect("user").expect("alice");
    assert!(user_row.two_factor_enabled);
    assert_eq!(store.recovery_codes_left(alice).await.expect("left"), 2);

    store.disable_totp(alice, t(4)).await.expect("disable");
    let off = store.totp_state(alice).await.expect("state").expect("user");
    assert_eq!(
        (off.secret, off.enabled, off.last_step),
        (None, false, None)
    );
    assert_eq!(store.recovery_codes_left(alice).await.expect("left"), 0);
    assert!(
        !store
            .use_recovery_code(alice, "h1", t(5))
            .await
            .expect("use")
    );
}

pub(super) async fn a_totp_step_and_a_recovery_code_are_good_once(
    _: String,
    store: Arc<dyn Store>,
) {
    let alice = user(store.as_ref(), "alice").await;
    let bob = user(store.as_ref(), "bob").await;
    store
        .set_totp_secret(alice, "S", t(0))
        .await
        .expect("setup");
    store
        .enable_totp(alice, 10, &["code".to_owned()], t(0))
        .await
        .expect("enable");

    assert!(!store.claim_totp_step(alice, 10).await.expect("same step"));
    assert!(!store.claim_totp_step(alice, 9).await.expect("older step"));
    assert!(store.claim_totp_step(alice, 11).await.expect("newer step"));
    assert!(!store.claim_totp_step(alice, 11).await.expect("replay"));
    assert!(!store.claim_totp_step(bob, 12).await.expect("2FA off"));

    assert!(
        !store
            .use_recovery_code(bob, "code", t(1))
            .await
            .expect("not bob's")
    );
    assert!(
        store
            .use_recovery_code(alice, "code", t(1))
            .await
            .expect("first")
    );
    assert!(
        !store
            .use_recovery_code(alice, "code", t(2))
            .await
            .expect("second")
    );
    assert_eq!(store.recovery_codes_left(alice).await.expect("left"), 0);
}
