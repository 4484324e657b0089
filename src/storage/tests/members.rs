//! Members, roles and bans.

use std::sync::Arc;

use parley_actors::domain::{RoomRole, Visibility};
use parley_actors::store::Store;

use super::{new_room, room_with, t, user};

pub(super) async fn members_are_added_promoted_removed_and_banned(
    _: String,
    store: Arc<dyn Store>,
) {
    let alice = user(&*store, "alice").await;
    let bob = user(&*store, "bob").await;
    let carol = user(&*store, "carol").await;
    let room = store
        .create_room(new_room(alice, "room", Visibility::Public, 0))
        .await
        .expect("room");
    assert!(
        store
            .add_member(room.id, bob, RoomRole::Member, t(1))
            .await
            .expect("add")
    );
    assert!(
        !store
            .add_member(room.id, bob, RoomRole::Admin, t(2))
            .await
            .expect("again")
    );
    let member = store
        .member(room.id, bob)
        .await
        .expect("member")
        .expect("exists");
    assert_eq!(
        (
            member.room_id,
            member.user_id,
            member.role,
            member.joined_at
        ),
        (room.id, bob, RoomRole::Member, t(1))
    );
    let members = store.list_members(room.id).await.expect("members");
    assert_eq!(
        members.iter().map(|m| m.user_id).collect::<Vec<_>>(),
        vec![alice, bob]
    );

    assert!(
        store
            .update_member_role(room.id, bob, RoomRole::Admin)
            .await
            .expect("promote")
    );
    let member = store.member(room.id, bob).await.expect("member");
    assert_eq!(member.map(|m| m.role), Some(RoomRole::Admin));
    assert!(
        !store
            .update_member_role(room.id, carol, RoomRole::Admin)
            .await
            .expect("not a member")
    );

    // Room mates, each once, never oneself.
    let other = room_with(&*store, carol, &[bob, alice]).await;
    assert_eq!(store.users_sharing_rooms(alice).await.expect("mates"), {
        let mut v = vec![bob, carol];
        v.sort();
        v
    });
    assert!(store.remove_member(other.id, alice).await.expect("remove"));
    assert!(!store.remove_member(other.id, alice).await.expect("again"));
    assert_eq!(
        store.users_sharing_rooms(alice).await.expect("mates"),
        vec![bob]
    );
    let loner = user(&*store, "loner").await;
    assert!(
        store
            .users_sharing_rooms(loner)
            .await
            .expect("none")
            .is_empty()
    );

    // A ban removes the membership; it is recorded once.
    assert!(
        store
            .ban_member(room.id, bob, alice, t(5))
            .await
            .expect("ban")
    );
    assert_eq!(store.member(room.id, bob).await.expect("member"), None);
    assert!(store.is_banned(room.id, bob).await.expect("banned"));
    assert!(!store.is_banned(room.id, carol).await.expect("not banned"));
    assert!(
        !store
            .ban_member(room.id, bob, alice, t(6))
            .await
            .expect("again")
    );
    assert!(store.unban_member(room.id, bob).await.expect("unban"));
    assert!(!store.unban_member(room.id, bob).await.expect("again"));
    assert!(!store.is_banned(room.id, bob).await.expect("lifted"));
    // Banning a non-member just records the ban.
    assert!(
        store
            .ban_member(room.id, carol, alice, t(7))
            .await
            .expect("ban")
    );
}
