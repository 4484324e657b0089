//! Connecting, closing, migrating down and up, and the conversions every
//! record shares.

use std::sync::Arc;

use chrono::Duration as Span;
use parley_actors::domain::{RoomId, RoomName, Visibility};
use parley_actors::store::{NewRoom, Store, StoreError};

use super::{new_user, t};
use crate::storage::{Backend, connect, migrate_down, migrate_up, rows};

pub(super) async fn a_closed_store_is_unavailable(_: String, store: Arc<dyn Store>) {
    store.ping().await.expect("ping");
    store.close().await;
    let err = store.ping().await.expect_err("closed");
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
}

pub(super) async fn migrations_go_down_and_up_again(url: String, store: Arc<dyn Store>) {
    let id = store
        .create_user(new_user("mallory"))
        .await
        .expect("create")
        .id;
    let room = NewRoom {
        id: RoomId::new(),
        name: RoomName::parse("room").expect("name"),
        topic: None,
        visibility: Visibility::Public,
        owner: id,
        created_at: t(0),
    };
    let room_id = store.create_room(room.clone()).await.expect("room").id;

    // The migrations after the accounts: the chat tables (SQLite has a
    // third, which moved full-text search into a file of its own), 0004
    // (2FA, mailed tokens), users' settings and reports.
    let chat: Vec<i64> = match Backend::of(&url).expect("backend") {
        Backend::Sqlite => vec![6, 5, 4, 3, 2],
        Backend::Postgres => vec![6, 5, 4, 2],
    };
    let steps = u32::try_from(chat.len()).expect("few");
    // These steps take the chat tables and leave the accounts.
    assert_eq!(migrate_down(&url, steps).await.expect("down"), chat);
    let err = store.room_by_id(room_id).await.expect_err("no rooms table");
    assert!(matches!(err, StoreError::Other(_)), "{err:?}");
    migrate_up(&url).await.expect("up");
    assert!(
        store.user_by_id(id).await.expect("read").is_some(),
        "the account outlived the trip down and up"
    );
    assert_eq!(store.room_by_id(room_id).await.expect("read"), None);
    store.create_room(room).await.expect("room again");

    assert_eq!(migrate_down(&url, steps).await.expect("down"), chat);
    assert_eq!(migrate_down(&url, 1).await.expect("down"), vec![1]);
    let err = store.user_by_id(id).await.expect_err("no users table");
    assert!(matches!(err, StoreError::Other(_)), "{err:?}");
    assert!(
        migrate_down(&url, 1)
            .await
            .expect("nothing left")
            .is_empty()
    );

    migrate_up(&url).await.expect("up");
    migrate_up(&url).await.expect("up is idempotent");
    assert_eq!(store.user_by_id(id).await.expect("read"), None);
    store
        .create_user(new_user("mallory"))
        .await
        .expect("create again");
}

#[test]
fn the_backend_follows_the_url_scheme() {
    assert_eq!(
        Backend::of("sqlite:data/parley.db").ok(),
        Some(Backend::Sqlite)
    );
    assert_eq!(Backend::of("sqlite::memory:").ok(), Some(Backend::Sqlite));
    assert_eq!(Backend::of("postgres://h/db").ok(), Some(Backend::Postgres));
    assert_eq!(
        Backend::of("PostgreSQL://h/db").ok(),
        Some(Backend::Postgres)
    );
    assert!(Backend::of("mysql://h/db").is_err());
    assert!(Backend::of("data/parley.db").is_err());
}

#[tokio::test]
async fn unknown_schemes_are_refused_without_echoing_the_url() {
    let err = connect("mysql://root:hunter2@h/db", 1)
        .await
        .expect_err("unsupported");
    assert!(
        matches!(&err, StoreError::Other(msg) if !msg.contains("hunter2")),
        "{err:?}"
    );
}

#[test]
fn times_round_trip_at_millisecond_precision() {
    let at = t(123) + Span::microseconds(456);
    let back = rows::from_ms(rows::to_ms(at)).expect("in range");
    assert_eq!(back, t(123));
    assert!(rows::from_ms(i64::MAX).is_err());
}
