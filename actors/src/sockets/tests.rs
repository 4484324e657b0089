//! Unit tests of the outbox, delivery and registry.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use crate::blocks::BlockIndex;
use crate::domain::{RoomId, SessionId, UserId};
use crate::protocol::close;

use super::*;

fn delivery(text: &'static str, ephemeral: bool, author: Option<UserId>) -> Delivery {
    Delivery {
        author,
        ..Delivery::plain(Bytes::from_static(text.as_bytes()), ephemeral)
    }
}

#[tokio::test]
async fn rooms_reach_subscribers_and_blocks_filter() {
    let sockets = Sockets::default();
    let blocks = BlockIndex::default();
    let (alice, bob) = (UserId::new(), UserId::new());
    let room = RoomId::new();
    let (a, a_rx) = Outbox::new(alice, SessionId::new(), 8, 8);
    let (b, b_rx) = Outbox::new(bob, SessionId::new(), 8, 8);
    sockets.register(&a, [room]);
    sockets.register(&b, [room]);
    assert_eq!(
        sockets.deliver_room(room, &delivery("x", false, Some(bob)), &blocks),
        2
    );
    blocks.insert(alice, bob);
    assert_eq!(
        sockets.deliver_room(room, &delivery("y", false, Some(bob)), &blocks),
        1
    );
    assert_eq!(a_rx.next().await, Next::Frame(Bytes::from_static(b"x")));
    assert_eq!(a_rx.try_frame(), None, "alice blocked bob: no y");
    assert_eq!(b_rx.next().await, Next::Frame(Bytes::from_static(b"x")));
    assert_eq!(b_rx.try_frame(), Some(Bytes::from_static(b"y")));
    assert_eq!(sockets.unregister(&a), 0);
    assert_eq!(
        sockets.deliver_room(room, &delivery("z", false, None), &blocks),
        1
    );
}

#[tokio::test]
async fn a_socket_subscribed_after_it_was_unregistered_is_not_kept() {
    let sockets = Sockets::default();
    let blocks = BlockIndex::default();
    let room = RoomId::new();
    let (a, _a_rx) = Outbox::new(UserId::new(), SessionId::new(), 8, 8);
    let (b, _b_rx) = Outbox::new(UserId::new(), SessionId::new(), 8, 8);
    sockets.register(&a, [room]);
    sockets.register(&b, [room]);
    // `a` is resuming (unsubscribed) when its socket closes; the
    // resume's last step then subscribes it again.
    sockets.unsubscribe_socket(&a, room);
    sockets.unregister(&a);
    sockets.subscribe_socket(&a, room);
    assert!(!a.in_room(room));
    let subscribers = sockets.by_room.get(&room).map(|subs| subs.len());
    assert_eq!(subscribers, Some(1), "only b");
    assert_eq!(
        sockets.deliver_room(room, &delivery("x", false, None), &blocks),
        1
    );
    sockets.unregister(&b);
    sockets.subscribe_user(b.user_id, room);
    assert!(sockets.by_room.get(&room).is_none(), "no subscriber left");
}

#[tokio::test]
async fn a_full_durable_queue_closes_and_a_full_ephemeral_queue_sheds() {
    let (outbox, rx) = Outbox::new(UserId::new(), SessionId::new(), 1, 1);
    assert_eq!(outbox.push(Bytes::from_static(b"t1"), true), Pushed::Queued);
    assert_eq!(outbox.push(Bytes::from_static(b"t2"), true), Pushed::Shed);
    assert!(!outbox.is_closing());
    assert_eq!(
        outbox.push(Bytes::from_static(b"m1"), false),
        Pushed::Queued
    );
    assert_eq!(
        outbox.push(Bytes::from_static(b"m2"), false),
        Pushed::Closed
    );
    assert_eq!(
        outbox.close_reason().map(|c| c.code),
        Some(close::SLOW_CONSUMER)
    );
    // Not an orderly close: nothing queued is written before it.
    assert!(matches!(
        rx.next().await,
        Next::Close(CloseReason {
            code: close::SLOW_CONSUMER,
            ..
        })
    ));
}

#[tokio::test]
async fn a_policy_close_writes_the_queued_answers_first_and_a_revocation_does_not() {
    let (outbox, rx) = Outbox::new(UserId::new(), SessionId::new(), 8, 8);
    outbox.push(Bytes::from_static(b"rate_limited"), false);
    outbox.close(close::POLICY, "flooding");
    assert_eq!(
        rx.next().await,
        Next::Frame(Bytes::from_static(b"rate_limited"))
    );
    assert!(matches!(rx.next().await, Next::Close(c) if c.code == close::POLICY));

    let (outbox, rx) = Outbox::new(UserId::new(), SessionId::new(), 8, 8);
    outbox.push(Bytes::from_static(b"message"), false);
    outbox.close(close::REVOKED, "session revoked");
    assert!(matches!(rx.next().await, Next::Close(c) if c.code == close::REVOKED));
}

#[tokio::test]
async fn the_writer_gets_durable_then_ephemeral_then_ping_then_an_orderly_close() {
    let (outbox, rx) = Outbox::new(UserId::new(), SessionId::new(), 8, 8);
    outbox.ping();
    outbox.ping();
    assert_eq!(outbox.push(Bytes::from_static(b"t"), true), Pushed::Queued);
    assert_eq!(outbox.push(Bytes::from_static(b"m"), false), Pushed::Queued);
    assert_eq!(rx.next().await, Next::Frame(Bytes::from_static(b"m")));
    assert_eq!(rx.next().await, Next::Frame(Bytes::from_static(b"t")));
    assert_eq!(rx.next().await, Next::Ping, "two pings asked, one sent");
    assert_eq!(outbox.push(Bytes::from_static(b"e"), true), Pushed::Queued);
    assert_eq!(outbox.push(Bytes::from_static(b"d"), false), Pushed::Queued);
    outbox.close(close::NORMAL, "bye");
    assert_eq!(
        outbox.push(Bytes::from_static(b"late"), false),
        Pushed::Closed
    );
    // An orderly close still writes the durable frames queued before it.
    assert_eq!(rx.try_frame(), Some(Bytes::from_static(b"d")));
    assert_eq!(rx.try_frame(), None, "the ephemeral one is dropped");
    assert!(matches!(
        rx.next().await,
        Next::Close(CloseReason {
            code: close::NORMAL,
            ..
        })
    ));
}

#[tokio::test]
async fn a_waiting_push_gets_room_when_the_writer_drains_and_fails_when_it_is_gone() {
    let (outbox, rx) = Outbox::new(UserId::new(), SessionId::new(), 1, 1);
    assert_eq!(outbox.push(Bytes::from_static(b"1"), false), Pushed::Queued);
    let waiting = {
        let outbox = Arc::clone(&outbox);
        tokio::spawn(async move {
            outbox
                .push_waiting(Bytes::from_static(b"2"), Duration::from_secs(10))
                .await
        })
    };
    tokio::task::yield_now().await;
    assert_eq!(rx.next().await, Next::Frame(Bytes::from_static(b"1")));
    assert_eq!(waiting.await.expect("join"), Pushed::Queued);
    assert_eq!(rx.next().await, Next::Frame(Bytes::from_static(b"2")));
    drop(rx);
    assert_eq!(outbox.push(Bytes::from_static(b"3"), false), Pushed::Closed);
    assert_eq!(
        outbox
            .push_waiting(Bytes::from_static(b"4"), Duration::from_secs(10))
            .await,
        Pushed::Closed
    );
}
