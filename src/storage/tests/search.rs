//! Message search on both backends.

use std::sync::Arc;

use parley_actors::domain::{MessageBody, RoomId, UserId};
use parley_actors::store::{Message, Store};

use super::{room_with, send, t, user};

pub(super) async fn search_covers_my_rooms_and_tolerates_any_input(
    _: String,
    store: Arc<dyn Store>,
) {
    let alice = user(&*store, "alice").await;
    let bob = user(&*store, "bob").await;
    let carol = user(&*store, "carol").await;
    let shared = room_with(&*store, alice, &[bob]).await;
    let other = room_with(&*store, alice, &[]).await;
    let secret = room_with(&*store, carol, &[]).await;
    let fox = send(&*store, shared.id, alice, "The quick brown fox").await;
    let triple = send(&*store, shared.id, bob, "quick quick quick").await;
    send(&*store, shared.id, bob, "a lazy dog").await;
    let elsewhere = send(&*store, other.id, alice, "Quick thinking").await;
    send(&*store, secret.id, carol, "quick secret").await;

    let search = |user_id: UserId, q: &'static str, room_id: Option<RoomId>| {
        let store = Arc::clone(&store);
        async move {
            store
                .search_messages(user_id, q, room_id, 20)
                .await
                .unwrap_or_else(|e| panic!("search {q:?}: {e:?}"))
        }
    };
    let ids = |found: Vec<Message>| found.into_iter().map(|m| m.id).collect::<Vec<_>>();

    // Best match first: the message that says it three times.
    let found = search(alice, "QUICK", None).await;
    assert_eq!(found.len(), 3, "{found:?}");
    assert_eq!(found[0].id, triple.id);
    let mut rest = ids(found[1..].to_vec());
    rest.sort();
    let mut expected = vec![fox.id, elsewhere.id];
    expected.sort();
    assert_eq!(rest, expected);
    // Only rooms I am in; a room filter narrows further.
    assert_eq!(ids(search(bob, "quick", None).await).len(), 2);
    assert_eq!(
        ids(search(alice, "quick", Some(other.id)).await),
        vec![elsewhere.id]
    );
    assert!(search(alice, "quick", Some(secret.id)).await.is_empty());
    assert!(search(alice, "secret", None).await.is_empty());
    // Every word must match.
    assert_eq!(ids(search(alice, "brown quick", None).await), vec![fox.id]);
    assert!(search(alice, "brown lazy", None).await.is_empty());

    // Blocked authors and deleted messages are left out; edits are
    // searched by their new text.
    store.create_block(alice, bob, t(40)).await.expect("block");
    assert_eq!(search(alice, "quick", None).await.len(), 2);
    assert!(search(alice, "lazy", None).await.is_empty());
    store.delete_message(fox.id, t(41)).await.expect("delete");
    assert_eq!(ids(search(alice, "quick", None).await), vec![elsewhere.id]);
    store
        .update_message_body(
            elsewhere.id,
            MessageBody::parse("slow thinking").expect("body"),
            t(42),
        )
        .await
        .expect("edit");
    assert!(search(alice, "quick", None).await.is_empty());
    assert_eq!(ids(search(alice, "slow", None).await), vec![elsewhere.id]);

    // Operators and punctuation are text, never a syntax error.
    for q in [
        "\"",
        "\"\"",
        "*",
        "NEAR(",
        "NEAR(a b)",
        "-",
        "OR",
        "AND",
        "NOT",
        "a OR",
        "(",
        ")",
        "^",
        ":",
        "body:slow",
        "'",
        "\\",
        "%",
        "_",
        "{}",
        "[",
        "+",
        "-slow",
        "slow*",
        "\"slow",
        "sl\"ow",
        "",
        "   ",
        "🙂",
    ] {
        search(alice, q, None).await;
    }
    // Quotes around a word do not hide it.
    assert_eq!(
        ids(search(alice, "\"slow\"", None).await),
        vec![elsewhere.id]
    );
    assert_eq!(ids(search(alice, "slow!", None).await), vec![elsewhere.id]);
}
