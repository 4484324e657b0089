//! The suite on SQLite (a fresh file per test), and what only SQLite has:
//! in-memory databases, WAL, and the full-text index in a file of its own.

use crate::storage::search::index_path;
use crate::storage::sqlite::{SqliteStore, fts_query, is_in_memory, open};
use crate::storage::tests::TestDb;

/// A fresh database file in a temporary directory, removed afterwards.
async fn fresh_db() -> Option<TestDb> {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite:{}", dir.path().join("parley.db").display());
    let store = crate::storage::connect(&url, 4)
        .await
        .expect("connect to a fresh SQLite file");
    Some(TestDb::new(url, store, Box::new(dir)))
}

crate::storage::tests::store_test_suite!(fresh_db);

#[tokio::test]
async fn in_memory_databases_keep_their_data_across_calls() {
    let store = crate::storage::connect("sqlite::memory:", 8)
        .await
        .expect("in-memory database");
    let user = crate::storage::tests::new_user("memo");
    let id = user.id;
    store.create_user(user).await.expect("create");
    // A second pooled connection would see an empty database.
    for _ in 0..3 {
        assert!(store.user_by_id(id).await.expect("read").is_some());
    }
    assert!(is_in_memory("sqlite::memory:"));
    assert!(is_in_memory("sqlite://?mode=memory"));
    assert!(!is_in_memory("sqlite:data/parley.db"));
}

#[test]
fn search_input_becomes_quoted_phrases() {
    assert_eq!(fts_query(""), None);
    assert_eq!(fts_query("  \t "), None);
    assert_eq!(fts_query("\" * - ( )"), None);
    assert_eq!(
        fts_query("quick OR NEAR(fox"),
        Some("\"quick\" \"OR\" \"NEAR(fox\"".to_owned())
    );
    assert_eq!(
        fts_query("say \"hi\""),
        Some("\"say\" \"\"\"hi\"\"\"".to_owned())
    );
}

/// A store on a new file, with one user and one room of theirs.
async fn store_with_room(
    dir: &tempfile::TempDir,
) -> (
    SqliteStore,
    parley_actors::domain::UserId,
    parley_actors::domain::RoomId,
) {
    use parley_actors::domain::{RoomId, RoomName, Visibility};
    use parley_actors::store::{ChatStore, NewRoom, Store};

    let url = format!("sqlite:{}", dir.path().join("fts.db").display());
    let store = SqliteStore::connect(&url, 2).await.expect("connect");
    let owner = store
        .create_user(crate::storage::tests::new_user("owner"))
        .await
        .expect("user")
        .id;
    let room = store
        .create_room(NewRoom {
            id: RoomId::new(),
            name: RoomName::parse("room").expect("name"),
            topic: None,
            visibility: Visibility::Public,
            owner,
            created_at: crate::storage::tests::t(0),
        })
        .await
        .expect("room");
    (store, owner, room.id)
}

async fn send(
    store: &SqliteStore,
    owner: parley_actors::domain::UserId,
    room: parley_actors::domain::RoomId,
    body: &str,
) -> parley_actors::domain::MessageId {
    use parley_actors::domain::{MessageBody, MessageId};
    use parley_actors::store::{ChatStore, NewMessage};

    let new = NewMessage {
        id: MessageId::new(),
        room_id: room,
        author_id: owner,
        body: MessageBody::parse(body).expect("body"),
        reply_to: None,
        client_id: None,
        created_at: crate::storage::tests::t(0),
    };
    store
        .create_message(new)
        .await
        .expect("send")
        .into_inner()
        .id
}

/// The bodies a search finds, sorted.
async fn found(
    store: &SqliteStore,
    owner: parley_actors::domain::UserId,
    words: &str,
) -> Vec<String> {
    use parley_actors::store::ChatStore;

    let mut bodies: Vec<String> = store
        .search_messages(owner, words, None, 50)
        .await
        .expect("search")
        .into_iter()
        .map(|m| m.body.as_str().to_owned())
        .collect();
    bodies.sort();
    bodies
}

#[tokio::test]
async fn the_search_index_follows_edits_deletes_and_cascades() {
    use parley_actors::domain::MessageBody;
    use parley_actors::store::ChatStore;

    let dir = tempfile::tempdir().expect("temp dir");
    let (store, owner, room) = store_with_room(&dir).await;
    let at = crate::storage::tests::t(0);
    let alpha = send(&store, owner, room, "alpha beta").await;
    let gamma = send(&store, owner, room, "gamma beta").await;
    send(&store, owner, room, "delta").await;
    // Found at once: a search brings the index up to date first.
    assert_eq!(
        found(&store, owner, "beta").await,
        ["alpha beta", "gamma beta"]
    );
    store
        .update_message_body(alpha, MessageBody::parse("epsilon").expect("body"), at)
        .await
        .expect("edit");
    store.delete_message(gamma, at).await.expect("delete");
    assert!(found(&store, owner, "beta").await.is_empty());
    assert!(found(&store, owner, "alpha").await.is_empty());
    assert_eq!(found(&store, owner, "epsilon").await, ["epsilon"]);
    // The vacuum would renumber implicit rowids; `num` keeps them.
    sqlx::query("vacuum")
        .execute(&store.pool)
        .await
        .expect("vacuum");
    assert_eq!(found(&store, owner, "delta").await, ["delta"]);
    store.delete_room(room).await.expect("delete room");
    assert!(store.search.catch_up(10).await.expect("index"));
    let left: (i64,) = sqlx::query_as(
        "select count(*) from search.messages_fts where messages_fts match 'epsilon OR delta'",
    )
    .fetch_one(&store.pool)
    .await
    .expect("count");
    assert_eq!(left.0, 0, "the room's rows left the index with it");
    let pending: (i64,) = sqlx::query_as("select count(*) from search_dirty")
        .fetch_one(&store.pool)
        .await
        .expect("count");
    assert_eq!(pending.0, 0, "processed changes are cleared");
}

#[tokio::test]
async fn a_reused_row_number_is_indexed_as_the_new_row() {
    use parley_actors::store::ChatStore;

    let dir = tempfile::tempdir().expect("temp dir");
    let (store, owner, room) = store_with_room(&dir).await;
    send(&store, owner, room, "kept").await;
    assert_eq!(found(&store, owner, "kept").await, ["kept"]);
    // The newest row goes (with its room), so SQLite hands its number
    // to the next row.
    let second = store
        .create_room(parley_actors::store::NewRoom {
            id: parley_actors::domain::RoomId::new(),
            name: parley_actors::domain::RoomName::parse("second").expect("name"),
            topic: None,
            visibility: parley_actors::domain::Visibility::Public,
            owner,
            created_at: crate::storage::tests::t(0),
        })
        .await
        .expect("room")
        .id;
    send(&store, owner, second, "doomed").await;
    assert_eq!(found(&store, owner, "doomed").await, ["doomed"]);
    let (top_before,): (i64,) = sqlx::query_as("select max(num) from messages")
        .fetch_one(&store.pool)
        .await
        .expect("max");
    store.delete_room(second).await.expect("delete room");
    send(&store, owner, room, "reborn").await;
    let (top_after,): (i64,) = sqlx::query_as("select max(num) from messages")
        .fetch_one(&store.pool)
        .await
        .expect("max");
    assert_eq!(top_after, top_before, "SQLite reused the number");
    assert_eq!(found(&store, owner, "reborn").await, ["reborn"]);
    assert!(found(&store, owner, "doomed").await.is_empty());
    assert_eq!(found(&store, owner, "kept").await, ["kept"]);
}

#[tokio::test]
async fn a_lost_index_file_is_rebuilt_from_the_messages() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (store, owner, room) = store_with_room(&dir).await;
    for i in 0..5 {
        send(&store, owner, room, &format!("note {i}")).await;
    }
    assert_eq!(found(&store, owner, "note").await.len(), 5);
    store.pool.close().await;
    store.writer.close().await;
    let index = dir.path().join("fts.search.db");
    assert!(index.exists(), "the index is a file of its own");
    for suffix in ["", "-wal", "-shm"] {
        let path = format!("{}{suffix}", index.display());
        if std::path::Path::new(&path).exists() {
            std::fs::remove_file(&path).expect("remove index");
        }
    }
    let url = format!("sqlite:{}", dir.path().join("fts.db").display());
    let store = SqliteStore::connect(&url, 2).await.expect("reopen");
    assert_eq!(found(&store, owner, "note").await.len(), 5);
}

#[tokio::test]
async fn an_index_from_before_a_trip_back_to_0002_is_rebuilt() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (store, owner, room) = store_with_room(&dir).await;
    let id = send(&store, owner, room, "original words").await;
    assert_eq!(found(&store, owner, "original").await, ["original words"]);
    store.pool.close().await;
    store.writer.close().await;
    let url = format!("sqlite:{}", dir.path().join("fts.db").display());
    // An older binary's schema (before 0003, so also before 0004 to
    // 0006), and a change it makes without listing it for the indexer.
    assert_eq!(
        crate::storage::migrate_down(&url, 4).await.expect("down"),
        vec![6, 5, 4, 3]
    );
    let pool = open(&url, 1).await.expect("open");
    sqlx::query("update messages set body = 'edited words' where id = $1")
        .bind(id.to_string())
        .execute(&pool)
        .await
        .expect("edit");
    pool.close().await;
    let store = SqliteStore::connect(&url, 2).await.expect("forward again");
    assert!(found(&store, owner, "original").await.is_empty());
    assert_eq!(found(&store, owner, "edited").await, ["edited words"]);
}

#[tokio::test]
async fn the_database_file_is_created_with_wal() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("new.db");
    let url = format!("sqlite://{}", path.display());
    let store = SqliteStore::connect(&url, 2).await.expect("connect");
    assert!(path.exists());
    let mode: (String,) = sqlx::query_as("pragma journal_mode")
        .fetch_one(&store.pool)
        .await
        .expect("pragma");
    assert_eq!(mode.0, "wal");
    let fk: (i64,) = sqlx::query_as("pragma foreign_keys")
        .fetch_one(&store.pool)
        .await
        .expect("pragma");
    assert_eq!(fk.0, 1);
}

#[test]
fn the_index_sits_beside_the_database() {
    assert_eq!(
        index_path(std::path::Path::new("/data/parley.db")),
        std::path::PathBuf::from("/data/parley.search.db")
    );
    assert_eq!(
        index_path(std::path::Path::new("chat")),
        std::path::PathBuf::from("chat.search.db")
    );
}
