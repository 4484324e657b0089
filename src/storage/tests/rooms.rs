//! Rooms: lifecycle, the public directory, direct rooms; name patterns and
//! direct-room keys.

use std::sync::Arc;

use parley_actors::domain::{InviteId, RoomId, RoomName, RoomRole, RoomTopic, UserId, Visibility};
use parley_actors::store::{NewInvite, Room, RoomPatch, Store, StoreError};

use super::{emoji, new_room, send, t, user};
use crate::storage::rows;

pub(super) async fn rooms_are_created_updated_and_deleted_with_their_contents(
    _: String,
    store: Arc<dyn Store>,
) {
    let alice = user(&*store, "alice").await;
    let bob = user(&*store, "bob").await;
    let carol = user(&*store, "carol").await;
    let mut new = new_room(alice, "General", Visibility::Public, 0);
    new.topic = Some(RoomTopic::parse("anything goes").expect("topic"));
    let room = store.create_room(new.clone()).await.expect("create");
    assert_eq!(
        room,
        Room {
            id: new.id,
            name: "General".to_owned(),
            topic: Some("anything goes".to_owned()),
            visibility: Visibility::Public,
            created_by: Some(alice),
            created_at: t(0),
            updated_at: t(0),
            last_seq: 0,
        }
    );
    assert_eq!(
        store.room_by_id(room.id).await.expect("read"),
        Some(room.clone())
    );
    let owner = store
        .member(room.id, alice)
        .await
        .expect("member")
        .expect("owner is a member");
    assert_eq!(
        (owner.role, owner.joined_at, owner.last_read_seq),
        (RoomRole::Owner, t(0), 0)
    );
    let err = store.create_room(new).await.expect_err("same id");
    assert!(
        matches!(err, StoreError::Conflict { field: "id" }),
        "{err:?}"
    );

    // A patch changes only what it names; `Some(None)` clears the topic.
    let renamed = store
        .update_room(
            room.id,
            RoomPatch {
                name: Some(RoomName::parse("Lobby").expect("name")),
                topic: None,
            },
            t(5),
        )
        .await
        .expect("rename")
        .expect("exists");
    assert_eq!(
        (
            renamed.name.as_str(),
            renamed.topic.as_deref(),
            renamed.updated_at
        ),
        ("Lobby", Some("anything goes"), t(5))
    );
    let cleared = store
        .update_room(
            room.id,
            RoomPatch {
                name: None,
                topic: Some(None),
            },
            t(6),
        )
        .await
        .expect("clear topic")
        .expect("exists");
    assert_eq!((cleared.name.as_str(), cleared.topic), ("Lobby", None));
    assert_eq!(
        store
            .update_room(RoomId::new(), RoomPatch::default(), t(7))
            .await
            .expect("unknown"),
        None
    );

    // Everything in the room goes with it.
    store
        .add_member(room.id, bob, RoomRole::Member, t(1))
        .await
        .expect("add");
    let message = send(&*store, room.id, bob, "hello").await;
    store
        .add_reaction(message.id, alice, &emoji("👍"), t(11))
        .await
        .expect("react");
    store
        .create_invite(NewInvite {
            id: InviteId::new(),
            room_id: room.id,
            inviter_id: alice,
            invitee_id: carol,
            created_at: t(12),
        })
        .await
        .expect("invite");
    let dave = user(&*store, "dave").await;
    store
        .ban_member(room.id, dave, alice, t(13))
        .await
        .expect("ban");

    assert!(store.delete_room(room.id).await.expect("delete"));
    assert_eq!(store.room_by_id(room.id).await.expect("read"), None);
    assert_eq!(store.member(room.id, bob).await.expect("member"), None);
    assert!(
        store
            .list_members(room.id)
            .await
            .expect("members")
            .is_empty()
    );
    assert_eq!(store.message_by_id(message.id).await.expect("msg"), None);
    assert!(
        store
            .list_pending_invites(carol)
            .await
            .expect("invites")
            .is_empty()
    );
    assert!(!store.is_banned(room.id, dave).await.expect("ban"));
    assert!(store.list_memberships(bob).await.expect("rooms").is_empty());
    assert!(
        store
            .search_messages(alice, "hello", None, 10)
            .await
            .expect("search")
            .is_empty()
    );
    assert!(!store.delete_room(room.id).await.expect("again"));
}

pub(super) async fn public_rooms_are_found_by_name_newest_first(_: String, store: Arc<dyn Store>) {
    let alice = user(&*store, "alice").await;
    let bob = user(&*store, "bob").await;
    let mut public = Vec::new();
    for (i, name) in ["Rust Lovers", "rustaceans", "Go", "100% Rust", "snake_case"]
        .into_iter()
        .enumerate()
    {
        let new = new_room(alice, name, Visibility::Public, i as i64);
        public.push(store.create_room(new).await.expect("room"));
    }
    store
        .create_room(new_room(alice, "Secret rust", Visibility::Private, 9))
        .await
        .expect("private");
    store
        .get_or_create_direct_room(RoomId::new(), alice, bob, t(9))
        .await
        .expect("dm");
    public.sort_by_key(|r| std::cmp::Reverse(r.id.to_string()));

    let names = |rooms: Vec<Room>| rooms.into_iter().map(|r| r.name).collect::<Vec<_>>();
    let expected = |pick: &[&str]| {
        public
            .iter()
            .filter(|r| pick.contains(&r.name.as_str()))
            .map(|r| r.name.clone())
            .collect::<Vec<_>>()
    };
    let all = store.list_public_rooms(None, None, 50).await.expect("all");
    assert_eq!(all, public);
    for q in ["rust", "RUST", " Rust "] {
        let found = store
            .list_public_rooms(Some(q), None, 50)
            .await
            .expect("search");
        assert_eq!(
            names(found),
            expected(&["Rust Lovers", "rustaceans", "100% Rust"]),
            "{q:?}"
        );
    }
    // LIKE wildcards in the query are plain characters.
    let found = store
        .list_public_rooms(Some("%"), None, 50)
        .await
        .expect("percent");
    assert_eq!(names(found), expected(&["100% Rust"]));
    let found = store
        .list_public_rooms(Some("_"), None, 50)
        .await
        .expect("underscore");
    assert_eq!(names(found), expected(&["snake_case"]));
    let found = store
        .list_public_rooms(Some("\\"), None, 50)
        .await
        .expect("backslash");
    assert!(found.is_empty());

    // Pages of two follow the cursor to the end.
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = store
            .list_public_rooms(None, cursor, 2)
            .await
            .expect("page");
        assert!(page.len() <= 2);
        let Some(last) = page.last() else { break };
        cursor = Some(last.id);
        seen.extend(page);
    }
    assert_eq!(seen, public);
}

pub(super) async fn direct_rooms_are_created_once_per_pair(_: String, store: Arc<dyn Store>) {
    let alice = user(&*store, "alice").await;
    let bob = user(&*store, "bob").await;
    let id = RoomId::new();
    let (room, created) = store
        .get_or_create_direct_room(id, alice, bob, t(3))
        .await
        .expect("create");
    assert!(created);
    assert_eq!(
        (
            room.id,
            room.visibility,
            room.name.as_str(),
            room.created_at
        ),
        (id, Visibility::Direct, "", t(3))
    );
    let members = store.list_members(id).await.expect("members");
    let mut member_ids: Vec<UserId> = members.iter().map(|m| m.user_id).collect();
    member_ids.sort();
    let mut pair = vec![alice, bob];
    pair.sort();
    assert_eq!(member_ids, pair);
    assert!(members.iter().all(|m| m.role == RoomRole::Member));

    // Either order finds the same room; the new id is not used.
    let other_id = RoomId::new();
    let (again, created) = store
        .get_or_create_direct_room(other_id, bob, alice, t(4))
        .await
        .expect("get");
    assert!(!created);
    assert_eq!(again, room);
    assert_eq!(store.room_by_id(other_id).await.expect("read"), None);

    // Concurrent first calls for one pair agree on one room.
    let carol = user(&*store, "carol").await;
    let dave = user(&*store, "dave").await;
    let mut tasks = Vec::new();
    for i in 0..8 {
        let store = Arc::clone(&store);
        let (a, b) = if i % 2 == 0 {
            (carol, dave)
        } else {
            (dave, carol)
        };
        tasks.push(tokio::spawn(async move {
            store
                .get_or_create_direct_room(RoomId::new(), a, b, t(5))
                .await
                .expect("concurrent get or create")
        }));
    }
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await.expect("task"));
    }
    assert_eq!(results.iter().filter(|(_, created)| *created).count(), 1);
    let first = results[0].0.id;
    assert!(results.iter().all(|(room, _)| room.id == first));
    assert_eq!(store.list_members(first).await.expect("members").len(), 2);
}

#[test]
fn dm_keys_do_not_depend_on_the_order() {
    let (a, b) = (UserId::new(), UserId::new());
    assert_eq!(rows::dm_key(a, b), rows::dm_key(b, a));
    let (low, high) = if a.to_string() < b.to_string() {
        (a, b)
    } else {
        (b, a)
    };
    assert_eq!(rows::dm_key(a, b), format!("{low}:{high}"));
}

#[test]
fn name_patterns_escape_like_wildcards() {
    assert_eq!(rows::name_pattern(None), None);
    assert_eq!(rows::name_pattern(Some("  ")), None);
    assert_eq!(
        rows::name_pattern(Some(" Rust ")).as_deref(),
        Some("%rust%")
    );
    assert_eq!(
        rows::name_pattern(Some("100%_\\")).as_deref(),
        Some("%100\\%\\_\\\\%")
    );
}
