//! Invites.

use std::sync::Arc;

use parley_actors::domain::{InviteId, InviteStatus, RoomId};
use parley_actors::store::{NewInvite, Store, StoreError};

use super::{room_with, t, user};

pub(super) async fn invites_are_pending_once_until_answered(_: String, store: Arc<dyn Store>) {
    let alice = user(&*store, "alice").await;
    let bob = user(&*store, "bob").await;
    let first = room_with(&*store, alice, &[]).await;
    let second = room_with(&*store, alice, &[]).await;
    let invite = |room_id: RoomId, ms: i64| NewInvite {
        id: InviteId::new(),
        room_id,
        inviter_id: alice,
        invitee_id: bob,
        created_at: t(ms),
    };
    let new = invite(first.id, 10);
    let stored = store.create_invite(new.clone()).await.expect("invite");
    assert_eq!(
        (
            stored.id,
            stored.room_id,
            stored.inviter_id,
            stored.invitee_id
        ),
        (new.id, first.id, alice, bob)
    );
    assert_eq!(
        (stored.status, stored.created_at, stored.responded_at),
        (InviteStatus::Pending, t(10), None)
    );
    assert_eq!(
        store.invite_by_id(new.id).await.expect("read"),
        Some(stored.clone())
    );
    let err = store
        .create_invite(invite(first.id, 11))
        .await
        .expect_err("pending twice");
    assert!(
        matches!(err, StoreError::Conflict { field: "user_id" }),
        "{err:?}"
    );
    let later = store
        .create_invite(invite(second.id, 20))
        .await
        .expect("other room");
    assert_eq!(
        store.list_pending_invites(bob).await.expect("pending"),
        vec![later.clone(), stored.clone()]
    );
    assert!(
        store
            .list_pending_invites(alice)
            .await
            .expect("none")
            .is_empty()
    );

    assert!(
        store
            .respond_invite(new.id, InviteStatus::Accepted, t(30))
            .await
            .expect("accept")
    );
    assert!(
        !store
            .respond_invite(new.id, InviteStatus::Declined, t(31))
            .await
            .expect("answered")
    );
    let answered = store
        .invite_by_id(new.id)
        .await
        .expect("read")
        .expect("exists");
    assert_eq!(
        (answered.status, answered.responded_at),
        (InviteStatus::Accepted, Some(t(30)))
    );
    assert_eq!(
        store.list_pending_invites(bob).await.expect("pending"),
        vec![later]
    );
    // Once answered, the room may invite again.
    store
        .create_invite(invite(first.id, 40))
        .await
        .expect("invite again");
    assert!(
        !store
            .respond_invite(InviteId::new(), InviteStatus::Accepted, t(41))
            .await
            .expect("unknown")
    );
    assert_eq!(
        store.invite_by_id(InviteId::new()).await.expect("read"),
        None
    );
}
