//! Unread counts (a room's newest messages, minus own, deleted and blocked).

use std::collections::BTreeMap;
use std::sync::Arc;

use parley_actors::domain::{RoomRole, UserId};
use parley_actors::store::Store;

use super::{new_message, room_with, send, t, user};

pub(super) async fn unread_counts_look_at_the_newest_messages_only(
    _: String,
    store: Arc<dyn Store>,
) {
    let alice = user(&*store, "alice").await;
    let bob = user(&*store, "bob").await;
    let room = room_with(&*store, alice, &[bob]).await;
    let window = parley_actors::store::UNREAD_WINDOW;
    let batch = (0..window + 50)
        .map(|i| new_message(room.id, alice, &format!("m{i}")))
        .collect();
    store.create_messages(batch).await.expect("send");
    let unread = |user_id: UserId| {
        let store = Arc::clone(&store);
        async move { store.list_memberships(user_id).await.expect("rooms")[0].unread_count }
    };
    assert_eq!(unread(bob).await, window, "far behind: the window, no more");
    store
        .set_read_marker(room.id, bob, 100)
        .await
        .expect("read")
        .expect("a member");
    assert_eq!(
        unread(bob).await,
        window + 50 - 100,
        "within the window: exact"
    );
    assert_eq!(unread(alice).await, 0);
}

pub(super) async fn unread_counts_skip_own_deleted_and_blocked_messages(
    _: String,
    store: Arc<dyn Store>,
) {
    let alice = user(&*store, "alice").await;
    let bob = user(&*store, "bob").await;
    let carol = user(&*store, "carol").await;
    let room = room_with(&*store, alice, &[bob, carol]).await;
    let quiet = room_with(&*store, carol, &[]).await;
    let unread = |user_id: UserId| {
        let store = Arc::clone(&store);
        async move {
            store
                .list_memberships(user_id)
                .await
                .expect("memberships")
                .into_iter()
                .map(|m| (m.room.id, m.unread_count))
                .collect::<BTreeMap<_, _>>()
        }
    };

    let mut from_alice = Vec::new();
    for i in 0..3 {
        from_alice.push(send(&*store, room.id, alice, &format!("a{i}")).await);
    }
    assert_eq!(unread(alice).await, BTreeMap::from([(room.id, 0)]));
    assert_eq!(unread(bob).await, BTreeMap::from([(room.id, 3)]));
    // Sending moves the sender's marker to their message.
    send(&*store, room.id, bob, "b").await;
    assert_eq!(unread(bob).await, BTreeMap::from([(room.id, 0)]));
    assert_eq!(unread(alice).await, BTreeMap::from([(room.id, 1)]));
    assert_eq!(
        unread(carol).await,
        BTreeMap::from([(room.id, 4), (quiet.id, 0)])
    );

    let memberships = store.list_memberships(carol).await.expect("memberships");
    let mine = memberships
        .iter()
        .find(|m| m.room.id == room.id)
        .expect("room listed");
    assert_eq!(
        (mine.role, mine.last_read_seq, mine.room.last_seq),
        (RoomRole::Member, 0, 4)
    );
    let owned = memberships
        .iter()
        .find(|m| m.room.id == quiet.id)
        .expect("own room listed");
    assert_eq!(owned.role, RoomRole::Owner);

    store.create_block(carol, bob, t(30)).await.expect("block");
    assert_eq!(unread(carol).await[&room.id], 3);
    store
        .delete_message(from_alice[0].id, t(31))
        .await
        .expect("delete");
    assert_eq!(unread(carol).await[&room.id], 2);

    // The marker only moves forward and never past the last seq.
    assert_eq!(
        store
            .set_read_marker(room.id, carol, 2)
            .await
            .expect("read"),
        Some(2)
    );
    assert_eq!(unread(carol).await[&room.id], 1);
    assert_eq!(
        store
            .set_read_marker(room.id, carol, 1)
            .await
            .expect("back"),
        Some(2)
    );
    assert_eq!(
        store
            .set_read_marker(room.id, carol, 100)
            .await
            .expect("past"),
        Some(4)
    );
    assert_eq!(unread(carol).await[&room.id], 0);
    let member = store.member(room.id, carol).await.expect("member");
    assert_eq!(member.map(|m| m.last_read_seq), Some(4));
    let stranger = user(&*store, "stranger").await;
    assert_eq!(
        store
            .set_read_marker(room.id, stranger, 1)
            .await
            .expect("stranger"),
        None
    );
    assert!(unread(stranger).await.is_empty());
}
