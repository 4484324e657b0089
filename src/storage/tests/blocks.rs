//! Blocks.

use std::sync::Arc;

use parley_actors::store::Store;

use super::{t, user};

pub(super) async fn blocks_are_created_listed_and_lifted(_: String, store: Arc<dyn Store>) {
    let alice = user(&*store, "alice").await;
    let bob = user(&*store, "bob").await;
    let carol = user(&*store, "carol").await;
    assert!(store.create_block(alice, bob, t(1)).await.expect("block"));
    assert!(!store.create_block(alice, bob, t(2)).await.expect("again"));
    assert!(store.create_block(alice, carol, t(3)).await.expect("block"));
    assert!(store.create_block(carol, alice, t(4)).await.expect("block"));

    let listed = store.list_blocks(alice).await.expect("list");
    assert_eq!(
        listed
            .iter()
            .map(|b| (b.blocker_id, b.blocked_id, b.created_at))
            .collect::<Vec<_>>(),
        vec![(alice, carol, t(3)), (alice, bob, t(1))]
    );
    assert!(store.list_blocks(bob).await.expect("none").is_empty());
    let mut all = store.all_blocks().await.expect("all");
    all.sort();
    let mut expected = vec![(alice, bob), (alice, carol), (carol, alice)];
    expected.sort();
    assert_eq!(all, expected);

    assert!(store.delete_block(alice, bob).await.expect("unblock"));
    assert!(!store.delete_block(alice, bob).await.expect("again"));
    assert_eq!(store.list_blocks(alice).await.expect("list").len(), 1);
    assert_eq!(store.all_blocks().await.expect("all").len(), 2);
}
