//! Messages: gapless seqs, idempotent client ids, the group commit, edits,
//! reactions, tombstones and history.

use std::sync::Arc;

use parley_actors::domain::{MessageBody, MessageId, RoomId};
use parley_actors::store::{Created, HistoryQuery, Message, Store, StoreError};

use super::{counts, emoji, history, new_message, room_with, send, seqs, t, user};
use crate::storage::batch;

pub(super) async fn concurrent_sends_get_gapless_seqs(_: String, store: Arc<dyn Store>) {
    let mut authors = Vec::new();
    for i in 0..8 {
        authors.push(user(&*store, &format!("writer{i}")).await);
    }
    let room = room_with(&*store, authors[0], &authors[1..]).await;
    let mut tasks = Vec::new();
    for &author in &authors {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            let mut seqs = Vec::new();
            for i in 0..25 {
                let mut new = new_message(room.id, author, &format!("message {i}"));
                // Half of them with a client id, so both paths race.
                new.client_id = (i % 2 == 0).then(|| format!("c-{i}"));
                let created = store.create_message(new).await.expect("send");
                let Created::New(message) = created else {
                    panic!("unexpected existing message");
                };
                seqs.push(message.seq);
            }
            seqs
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        let seqs = task.await.expect("task");
        // Each sender sees its own messages in order.
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
        all.extend(seqs);
    }
    all.sort_unstable();
    assert_eq!(all, (1..=200).collect::<Vec<i64>>());
    let room = store
        .room_by_id(room.id)
        .await
        .expect("read")
        .expect("room");
    assert_eq!(room.last_seq, 200);
    let stored = store
        .list_messages(room.id, history(None, None, 200, None))
        .await
        .expect("history");
    assert_eq!(seqs(&stored), (1..=200).rev().collect::<Vec<i64>>());
    // Each author's read marker is at their own newest message.
    for &author in &authors {
        let newest = stored
            .iter()
            .find(|m| m.author_id == Some(author))
            .expect("wrote")
            .seq;
        let member = store.member(room.id, author).await.expect("member");
        assert_eq!(member.map(|m| m.last_read_seq), Some(newest));
    }
}

pub(super) async fn client_ids_make_sends_idempotent(_: String, store: Arc<dyn Store>) {
    let alice = user(&*store, "alice").await;
    let bob = user(&*store, "bob").await;
    let room = room_with(&*store, alice, &[bob]).await;
    let mut new = new_message(room.id, alice, "first");
    new.client_id = Some("abc".to_owned());
    let Created::New(first) = store.create_message(new.clone()).await.expect("send") else {
        panic!("expected a new message");
    };
    assert_eq!((first.seq, first.client_id.as_deref()), (1, Some("abc")));
    store
        .add_reaction(first.id, bob, &emoji("🎉"), t(11))
        .await
        .expect("react");

    // A retry (new id, even another body) finds the original.
    let mut retry = new.clone();
    retry.id = MessageId::new();
    retry.body = MessageBody::parse("changed").expect("body");
    let again = store.create_message(retry.clone()).await.expect("retry");
    let mut expected = first.clone();
    expected.reactions = counts(&[("🎉", 1)]);
    assert_eq!(again, Created::Existing(expected));
    assert_eq!(store.message_by_id(retry.id).await.expect("read"), None);

    // The key is per author and room.
    let mut bobs = new_message(room.id, bob, "mine");
    bobs.client_id = Some("abc".to_owned());
    let created = store.create_message(bobs).await.expect("bob");
    assert!(
        matches!(&created, Created::New(m) if m.seq == 2),
        "{created:?}"
    );
    let other_room = room_with(&*store, alice, &[]).await;
    let mut elsewhere = new.clone();
    elsewhere.id = MessageId::new();
    elsewhere.room_id = other_room.id;
    let created = store.create_message(elsewhere).await.expect("other room");
    assert!(
        matches!(&created, Created::New(m) if m.seq == 1),
        "{created:?}"
    );
    // Without a key nothing is deduplicated.
    assert_eq!(send(&*store, room.id, alice, "same").await.seq, 3);
    assert_eq!(send(&*store, room.id, alice, "same").await.seq, 4);

    // Concurrent retries of one send store it once and leave no gap.
    let mut tasks = Vec::new();
    for _ in 0..6 {
        let store = Arc::clone(&store);
        let mut new = new_message(room.id, bob, "racing");
        new.client_id = Some("race".to_owned());
        tasks.push(tokio::spawn(async move {
            store.create_message(new).await.expect("racing send")
        }));
    }
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.push(task.await.expect("task"));
    }
    assert_eq!(
        outcomes
            .iter()
            .filter(|o| matches!(o, Created::New(_)))
            .count(),
        1,
        "{outcomes:?}"
    );
    let ids: Vec<MessageId> = outcomes.into_iter().map(|o| o.into_inner().id).collect();
    assert!(ids.iter().all(|id| *id == ids[0]));
    assert_eq!(send(&*store, room.id, alice, "after").await.seq, 6);

    // Unknown rooms are an error, not a message.
    let err = store
        .create_message(new_message(RoomId::new(), alice, "nowhere"))
        .await
        .expect_err("no room");
    assert!(matches!(err, StoreError::Other(_)), "{err:?}");
}

pub(super) async fn batches_commit_together_in_order(_: String, store: Arc<dyn Store>) {
    let alice = user(&*store, "alice").await;
    let bob = user(&*store, "bob").await;
    let room = room_with(&*store, alice, &[bob]).await;
    let mut stored = new_message(room.id, alice, "stored");
    stored.client_id = Some("old".to_owned());
    let earlier = store.create_message(stored.clone()).await.expect("send");
    let earlier = earlier.into_inner();

    // A retry of a stored send, a key repeated within the batch, and
    // plain messages from two authors, in one batch.
    let mut retry = new_message(room.id, alice, "retry");
    retry.client_id = Some("old".to_owned());
    let mut keyed = new_message(room.id, bob, "keyed");
    keyed.client_id = Some("k".to_owned());
    let mut keyed_again = new_message(room.id, bob, "keyed again");
    keyed_again.client_id = Some("k".to_owned());
    let batch = vec![
        new_message(room.id, alice, "one"),
        retry,
        keyed.clone(),
        new_message(room.id, bob, "two"),
        keyed_again.clone(),
        new_message(room.id, alice, "three"),
    ];
    let out = store.create_messages(batch).await.expect("batch");
    assert_eq!(out.len(), 6);
    let summary: Vec<(bool, i64, String)> = out
        .iter()
        .map(|c| {
            let m = c.clone().into_inner();
            (matches!(c, Created::New(_)), m.seq, m.body)
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (true, 2, "one".to_owned()),
            (false, 1, "stored".to_owned()),
            (true, 3, "keyed".to_owned()),
            (true, 4, "two".to_owned()),
            (false, 3, "keyed".to_owned()),
            (true, 5, "three".to_owned()),
        ]
    );
    assert_eq!(out[1].clone().into_inner().id, earlier.id);
    assert_eq!(out[4].clone().into_inner().id, keyed.id);
    assert_eq!(
        store.message_by_id(keyed_again.id).await.expect("read"),
        None
    );

    // Gapless and complete in the store; each author's marker is at
    // their newest message in the batch.
    let page = store
        .list_messages(
            room.id,
            HistoryQuery {
                before_seq: None,
                after_seq: Some(0),
                limit: 50,
                viewer: None,
            },
        )
        .await
        .expect("history");
    let seqs: Vec<i64> = page.iter().map(|m| m.seq).collect();
    assert_eq!(seqs, vec![1, 2, 3, 4, 5]);
    let marker = |u| {
        let store = Arc::clone(&store);
        async move {
            store
                .member(room.id, u)
                .await
                .expect("member")
                .expect("a member")
                .last_read_seq
        }
    };
    assert_eq!(marker(alice).await, 5);
    assert_eq!(marker(bob).await, 4);
    assert_eq!(send(&*store, room.id, bob, "after").await.seq, 6);

    // An empty batch stores nothing; a batch across rooms is refused
    // whole.
    assert!(
        store
            .create_messages(Vec::new())
            .await
            .expect("empty")
            .is_empty()
    );
    let other = room_with(&*store, alice, &[]).await;
    let err = store
        .create_messages(vec![
            new_message(room.id, alice, "here"),
            new_message(other.id, alice, "there"),
        ])
        .await
        .expect_err("two rooms");
    assert!(matches!(err, StoreError::Other(_)), "{err:?}");
    assert_eq!(send(&*store, room.id, bob, "still gapless").await.seq, 7);
}

/// Per group of a `create_message_groups` answer: (stored now, seq) of
/// each message.
fn stored_seqs(out: Vec<Result<Vec<Created<Message>>, StoreError>>) -> Vec<Vec<(bool, i64)>> {
    out.into_iter()
        .map(|group| {
            group
                .expect("stored")
                .into_iter()
                .map(|c| (matches!(c, Created::New(_)), c.into_inner().seq))
                .collect()
        })
        .collect()
}

pub(super) async fn groups_of_rooms_commit_together_and_fail_alone(
    _: String,
    store: Arc<dyn Store>,
) {
    let alice = user(&*store, "alice").await;
    let first = room_with(&*store, alice, &[]).await;
    let second = room_with(&*store, alice, &[]).await;
    send(&*store, second.id, alice, "before").await;
    let mut keyed = new_message(first.id, alice, "keyed");
    keyed.client_id = Some("k".to_owned());
    let groups = vec![
        vec![
            new_message(first.id, alice, "a1"),
            keyed.clone(),
            keyed.clone(),
        ],
        vec![
            new_message(second.id, alice, "b2"),
            new_message(second.id, alice, "b3"),
        ],
    ];
    let out = store.create_message_groups(groups).await;
    assert_eq!(
        stored_seqs(out),
        vec![
            vec![(true, 1), (true, 2), (false, 2)],
            vec![(true, 2), (true, 3)]
        ]
    );

    // A group for a room that does not exist fails; the others are
    // stored all the same.
    let out = store
        .create_message_groups(vec![
            vec![new_message(first.id, alice, "a3")],
            vec![new_message(RoomId::new(), alice, "nowhere")],
            vec![new_message(second.id, alice, "b4")],
        ])
        .await;
    assert_eq!(out.len(), 3);
    assert_eq!(
        out[0].as_ref().expect("first room")[0]
            .clone()
            .into_inner()
            .seq,
        3
    );
    assert!(matches!(out[1], Err(StoreError::Other(_))), "{:?}", out[1]);
    assert_eq!(
        out[2].as_ref().expect("second room")[0]
            .clone()
            .into_inner()
            .seq,
        4
    );
    assert_eq!(send(&*store, first.id, alice, "after").await.seq, 4);
    assert_eq!(send(&*store, second.id, alice, "after").await.seq, 5);

    // A retried client id among new messages is answered with what is
    // stored, and the rest is stored; a room with two groups takes
    // consecutive seqs in group order.
    let out = store
        .create_message_groups(vec![
            vec![new_message(first.id, alice, "a5")],
            vec![new_message(second.id, alice, "b6")],
            vec![keyed.clone(), new_message(first.id, alice, "a6")],
        ])
        .await;
    assert_eq!(
        stored_seqs(out),
        vec![
            vec![(true, 5)],
            vec![(true, 6)],
            vec![(false, 2), (true, 6)]
        ]
    );
    let out = store
        .create_message_groups(vec![
            vec![new_message(first.id, alice, "a7")],
            vec![new_message(second.id, alice, "b7")],
            vec![
                new_message(first.id, alice, "a8"),
                new_message(first.id, alice, "a9"),
            ],
        ])
        .await;
    assert_eq!(
        stored_seqs(out),
        vec![vec![(true, 7)], vec![(true, 7)], vec![(true, 8), (true, 9)]]
    );
    let page = store
        .list_messages(first.id, history(None, Some(6), 10, None))
        .await
        .expect("history");
    let bodies: Vec<(i64, &str)> = page.iter().map(|m| (m.seq, m.body.as_str())).collect();
    assert_eq!(bodies, [(7, "a7"), (8, "a8"), (9, "a9")]);
}

pub(super) async fn messages_are_edited_reacted_to_and_deleted(_: String, store: Arc<dyn Store>) {
    let alice = user(&*store, "alice").await;
    let bob = user(&*store, "bob").await;
    let room = room_with(&*store, alice, &[bob]).await;
    let original = send(&*store, room.id, alice, "helo").await;
    let mut reply = new_message(room.id, bob, "typo");
    reply.reply_to = Some(original.id);
    let reply = store
        .create_message(reply)
        .await
        .expect("reply")
        .into_inner();
    assert_eq!(reply.reply_to, Some(original.id));
    assert_eq!(
        store.message_by_id(reply.id).await.expect("read"),
        Some(reply.clone())
    );

    let edited = store
        .update_message_body(
            original.id,
            MessageBody::parse("hello").expect("body"),
            t(20),
        )
        .await
        .expect("edit")
        .expect("exists");
    assert_eq!(
        (edited.body.as_str(), edited.edited_at, edited.seq),
        ("hello", Some(t(20)), 1)
    );

    let (up, heart) = (emoji("👍"), emoji("❤️"));
    assert!(
        store
            .add_reaction(original.id, alice, &up, t(21))
            .await
            .expect("r")
    );
    assert!(
        store
            .add_reaction(original.id, bob, &up, t(22))
            .await
            .expect("r")
    );
    assert!(
        store
            .add_reaction(original.id, bob, &heart, t(23))
            .await
            .expect("r")
    );
    assert!(
        !store
            .add_reaction(original.id, bob, &heart, t(24))
            .await
            .expect("r")
    );
    let read = store
        .message_by_id(original.id)
        .await
        .expect("read")
        .expect("exists");
    assert_eq!(read.reactions, counts(&[("👍", 2), ("❤️", 1)]));
    assert!(
        store
            .remove_reaction(original.id, alice, &up)
            .await
            .expect("r")
    );
    assert!(
        !store
            .remove_reaction(original.id, alice, &up)
            .await
            .expect("r")
    );
    let read = store
        .message_by_id(original.id)
        .await
        .expect("read")
        .expect("exists");
    assert_eq!(read.reactions, counts(&[("👍", 1), ("❤️", 1)]));

    // A tombstone keeps its seq, loses body and reactions, and takes no
    // more edits or reactions.
    let deleted = store
        .delete_message(original.id, t(30))
        .await
        .expect("delete")
        .expect("existed");
    assert_eq!(
        (deleted.body.as_str(), deleted.deleted, deleted.seq),
        ("", true, 1)
    );
    assert!(deleted.reactions.is_empty());
    assert_eq!(
        store.message_by_id(original.id).await.expect("read"),
        Some(deleted)
    );
    assert_eq!(
        store
            .delete_message(original.id, t(31))
            .await
            .expect("again"),
        None
    );
    assert_eq!(
        store
            .update_message_body(original.id, MessageBody::parse("x").expect("b"), t(32))
            .await
            .expect("edit deleted"),
        None
    );
    assert!(
        !store
            .add_reaction(original.id, bob, &up, t(33))
            .await
            .expect("r")
    );
    let page = store
        .list_messages(room.id, history(None, None, 10, None))
        .await
        .expect("history");
    assert_eq!(seqs(&page), vec![2, 1]);
    assert!(page[1].deleted && page[1].reactions.is_empty());

    assert_eq!(
        store.message_by_id(MessageId::new()).await.expect("read"),
        None
    );
    assert_eq!(
        store
            .delete_message(MessageId::new(), t(40))
            .await
            .expect("unknown"),
        None
    );
    assert_eq!(
        store
            .update_message_body(MessageId::new(), MessageBody::parse("x").expect("b"), t(40))
            .await
            .expect("unknown"),
        None
    );
}

pub(super) async fn history_pages_both_ways_and_hides_blocked_authors(
    _: String,
    store: Arc<dyn Store>,
) {
    let alice = user(&*store, "alice").await;
    let bob = user(&*store, "bob").await;
    let carol = user(&*store, "carol").await;
    let room = room_with(&*store, alice, &[bob, carol]).await;
    let mut sent = Vec::new();
    for i in 1..=10 {
        let author = if i % 3 == 0 { bob } else { alice };
        sent.push(send(&*store, room.id, author, &format!("message {i}")).await);
    }
    let page = |before, after, limit, viewer| {
        let store = Arc::clone(&store);
        async move {
            store
                .list_messages(room.id, history(before, after, limit, viewer))
                .await
                .expect("history")
        }
    };
    assert_eq!(seqs(&page(None, None, 3, None).await), vec![10, 9, 8]);
    assert_eq!(seqs(&page(Some(8), None, 3, None).await), vec![7, 6, 5]);
    assert_eq!(seqs(&page(Some(2), None, 3, None).await), vec![1]);
    assert_eq!(seqs(&page(Some(1), None, 3, None).await), Vec::<i64>::new());
    assert_eq!(seqs(&page(None, Some(7), 5, None).await), vec![8, 9, 10]);
    assert_eq!(seqs(&page(None, Some(2), 3, None).await), vec![3, 4, 5]);
    assert_eq!(seqs(&page(None, Some(0), 2, None).await), vec![1, 2]);
    assert_eq!(seqs(&page(Some(5), Some(2), 10, None).await), vec![3, 4]);
    assert_eq!(
        seqs(&page(None, Some(10), 5, None).await),
        Vec::<i64>::new()
    );
    assert_eq!(page(None, None, 1, None).await, vec![sent[9].clone()]);

    // Bob's messages (3, 6, 9) and reactions are hidden from carol, who
    // blocked him; the limit counts what is left.
    store
        .add_reaction(sent[0].id, bob, &emoji("👍"), t(20))
        .await
        .expect("react");
    store
        .add_reaction(sent[0].id, alice, &emoji("👍"), t(21))
        .await
        .expect("react");
    assert!(store.create_block(carol, bob, t(22)).await.expect("block"));
    assert_eq!(
        seqs(&page(None, None, 4, Some(carol)).await),
        vec![10, 8, 7, 5]
    );
    assert_eq!(
        seqs(&page(None, Some(0), 4, Some(carol)).await),
        vec![1, 2, 4, 5]
    );
    let first = page(Some(2), None, 1, Some(carol)).await;
    assert_eq!(first[0].reactions, counts(&[("👍", 1)]));
    let first = page(Some(2), None, 1, Some(alice)).await;
    assert_eq!(first[0].reactions, counts(&[("👍", 2)]));
    let first = page(Some(2), None, 1, None).await;
    assert_eq!(first[0].reactions, counts(&[("👍", 2)]));
    // Blocking is one-way.
    assert_eq!(
        seqs(&page(None, None, 4, Some(bob)).await),
        vec![10, 9, 8, 7]
    );
}

#[test]
fn reaction_queries_number_their_placeholders() {
    let sql = batch::reactions_sql(3);
    assert!(sql.contains("in ($2, $3, $4)"), "{sql}");
}
