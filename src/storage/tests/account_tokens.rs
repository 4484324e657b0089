//! Mailed one-time tokens: spent once, only before expiry, only for their
//! purpose; the verified mark.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use parley_actors::domain::UserId;
use parley_actors::store::{NewAccountToken, Store};

use super::{t, user};

fn new_token(
    hash: &str,
    user_id: UserId,
    purpose: &str,
    expires: DateTime<Utc>,
) -> NewAccountToken {
    NewAccountToken {
        token_hash: hash.to_owned(),
        user_id,
        purpose: purpose.to_owned(),
        password_stamp: "stamp".to_owned(),
        created_at: t(0),
        expires_at: expires,
    }
}

pub(super) async fn a_token_is_spent_once_before_expiry_for_its_purpose(
    _: String,
    store: Arc<dyn Store>,
) {
    let alice = user(store.as_ref(), "alice").await;
    for (hash, purpose) in [
        ("a", "verify_email"),
        ("b", "password_reset"),
        ("c", "password_reset"),
    ] {
        store
            .create_account_token(new_token(hash, alice, purpose, t(1000)))
            .await
            .expect("create");
    }

    let spend = |hash: &'static str, purpose: &'static str, at: i64| {
        let store = Arc::clone(&store);
        async move {
            store
                .consume_account_token(hash, purpose, t(at))
                .await
                .expect("consume")
        }
    };
    assert_eq!(
        spend("a", "password_reset", 10).await,
        None,
        "wrong purpose"
    );
    assert_eq!(
        spend("a", "verify_email", 10).await,
        Some((alice, "stamp".to_owned()))
    );
    assert_eq!(spend("a", "verify_email", 11).await, None, "spent");
    assert_eq!(spend("b", "password_reset", 1000).await, None, "expired");
    assert_eq!(
        spend("c", "password_reset", 999).await,
        Some((alice, "stamp".to_owned()))
    );
    assert_eq!(spend("zzz", "password_reset", 1).await, None, "unknown");
}

pub(super) async fn an_address_is_marked_verified(_: String, store: Arc<dyn Store>) {
    let alice = user(store.as_ref(), "alice").await;
    let before = store.user_by_id(alice).await.expect("read").expect("alice");
    assert!(!before.email_verified);

    store.mark_email_verified(alice, t(5)).await.expect("mark");
    store.mark_email_verified(alice, t(6)).await.expect("again");

    let after = store.user_by_id(alice).await.expect("read").expect("alice");
    assert!(after.email_verified);
    assert_eq!(
        store.user_by_login("alice").await.expect("by login"),
        Some(after)
    );
}
