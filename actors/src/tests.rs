//! Tests of the actor tree over the in-memory store: rooms, connections and
//! presence, with no database and no socket (each socket is an outbox read
//! directly). Each runs in milliseconds.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use ractor::ActorRef;

use crate::broker::{Broker, LocalBroker, Target};
use crate::connection::ConnectionMsg;
use crate::domain::{
    Email, MessageBody, PresenceStatus, Role, RoomId, RoomName, RoomRole, SessionId, UserId,
    Username, Visibility,
};
use crate::error::ChatError;
use crate::protocol::{ClientFrame, ServerFrame, close};
use crate::sockets::{Delivery, Next, Outbox, OutboxReader};
use crate::store::memory::MemoryStore;
use crate::store::{ChatStore, NewUser, Store};
use crate::{Realtime, RealtimeConfig};

/// How long a test waits for a frame that should come.
const PATIENCE: Duration = Duration::from_secs(2);

struct Core {
    store: Arc<MemoryStore>,
    realtime: Realtime,
    /// Every socket connected, to close before the core stops (shutdown
    /// otherwise waits for them).
    sockets: std::sync::Mutex<Vec<(Arc<Outbox>, ActorRef<ConnectionMsg>)>>,
}

struct Socket {
    outbox: Arc<Outbox>,
    reader: OutboxReader,
    actor: ActorRef<ConnectionMsg>,
}

/// A broker that records every socket subscription it is asked for, then
/// hands it to the local broker: what a cluster broker would see.
#[derive(Debug)]
struct RecordingBroker {
    local: LocalBroker,
    seen: Arc<Mutex<Vec<&'static str>>>,
}

impl RecordingBroker {
    fn note(&self, what: &'static str) {
        self.seen.lock().expect("not poisoned").push(what);
    }
}

impl Broker for RecordingBroker {
    fn publish(&self, target: Target, delivery: Delivery) {
        self.local.publish(target, delivery);
    }
    fn register(&self, outbox: &Arc<Outbox>, rooms: &[RoomId]) {
        self.note("register");
        self.local.register(outbox, rooms);
    }
    fn unregister(&self, outbox: &Outbox) {
        self.note("unregister");
        self.local.unregister(outbox);
    }
    fn subscribe_socket(&self, outbox: &Arc<Outbox>, room: RoomId) {
        self.note("subscribe_socket");
        self.local.subscribe_socket(outbox, room);
    }
    fn unsubscribe_socket(&self, outbox: &Outbox, room: RoomId) {
        self.note("unsubscribe_socket");
        self.local.unsubscribe_socket(outbox, room);
    }
    fn subscribe_user(&self, user: UserId, room: RoomId) {
        self.note("subscribe_user");
        self.local.subscribe_user(user, room);
    }
    fn unsubscribe_user(&self, user: UserId, room: RoomId) {
        self.note("unsubscribe_user");
        self.local.unsubscribe_user(user, room);
    }
    fn drop_room(&self, room: RoomId) {
        self.note("drop_room");
        self.local.drop_room(room);
    }
    fn close_sessions(&self, sessions: &[SessionId], code: u16, reason: &str) {
        self.local.close_sessions(sessions, code, reason);
    }
    fn close_user(&self, user: UserId, code: u16, reason: &str) {
        self.local.close_user(user, code, reason);
    }
}

impl Core {
    async fn start(config: RealtimeConfig) -> Self {
        Self::start_recording(config, Arc::default()).await
    }

    /// A core whose broker records subscriptions into `seen`.
    async fn start_recording(config: RealtimeConfig, seen: Arc<Mutex<Vec<&'static str>>>) -> Self {
        let store = Arc::new(MemoryStore::new());
        let realtime = Realtime::start_with_broker(
            Arc::clone(&store) as Arc<dyn Store>,
            config,
            |sockets, blocks| {
                Arc::new(RecordingBroker {
                    local: LocalBroker::new(sockets, blocks),
                    seen,
                })
            },
        )
        .await
        .expect("the core starts");
        Self {
            store,
            realtime,
            sockets: std::sync::Mutex::default(),
        }
    }

    async fn user(&self, name: &str) -> UserId {
        let user = self
            .store
            .create_user(NewUser {
                id: UserId::new(),
                username: Username::parse(name).expect("a username"),
                email: Email::parse(&format!("{name}@example.com")).expect("an email"),
                password_hash: "unused".to_owned(),
                role: Role::User,
                created_at: Utc::now(),
            })
            .await
            .expect("a user");
        user.id
    }

    /// A public room owned by `owner` with `members`, written to the store
    /// (its actor starts on the first request, so messages seeded into
    /// the store before then are part of its state).
    async fn room(&self, owner: UserId, members: &[UserId]) -> RoomId {
        let room = self
            .realtime
            .create_room(
                owner,
                RoomName::parse("general").expect("a name"),
                None,
                Visibility::Public,
            )
            .await
            .expect("a room");
        for &member in members {
            self.store
                .add_member(room.id, member, RoomRole::Member, Utc::now())
                .await
                .expect("a member");
        }
        room.id
    }

    /// Connects a socket of `user` and reads its `ready`.
    async fn connect(&self, user: UserId) -> Socket {
        let (outbox, reader) = self.realtime.outbox(user, SessionId::new());
        let actor = self
            .realtime
            .connect(&outbox, "someone", 30_000)
            .await
            .expect("accepted");
        self.sockets
            .lock()
            .expect("not poisoned")
            .push((Arc::clone(&outbox), actor.clone()));
        let socket = Socket {
            outbox,
            reader,
            actor,
        };
        assert!(matches!(socket.frame().await, ServerFrame::Ready { .. }));
        socket
    }

    fn frame(&self, socket: &Socket, frame: ClientFrame) {
        self.realtime
            .deliver_frame(&socket.actor, frame)
            .expect("delivered");
    }

    async fn stop(self) {
        let sockets = std::mem::take(&mut *self.sockets.lock().expect("not poisoned"));
        for (outbox, actor) in sockets {
            self.realtime.disconnect(&outbox, &actor);
        }
        self.realtime.shutdown().await;
    }
}

impl Socket {
    /// The next frame, waiting for it.
    async fn frame(&self) -> ServerFrame {
        match tokio::time::timeout(PATIENCE, self.reader.next()).await {
            Ok(Next::Frame(bytes)) => serde_json::from_slice(&bytes).expect("a server frame"),
            Ok(other) => panic!("expected a frame, got {other:?}"),
            Err(_) => panic!("no frame within {PATIENCE:?}"),
        }
    }

    /// The next frame that is not presence or typing.
    async fn durable(&self) -> ServerFrame {
        loop {
            match self.frame().await {
                ServerFrame::Presence { .. } | ServerFrame::Typing { .. } => {}
                other => return other,
            }
        }
    }

    /// Nothing is queued right now (ephemeral frames aside).
    fn quiet(&self) -> bool {
        std::iter::from_fn(|| self.reader.try_frame())
            .map(|b| serde_json::from_slice::<ServerFrame>(&b).expect("a server frame"))
            .all(|f| matches!(f, ServerFrame::Presence { .. }))
    }
}

fn body(text: &str) -> MessageBody {
    MessageBody::parse(text).expect("a body")
}

#[tokio::test]
async fn a_send_is_stored_then_reaches_every_member_socket() {
    let core = Core::start(RealtimeConfig::default()).await;
    let (alice, bob) = (core.user("alice").await, core.user("bob").await);
    let room = core.room(alice, &[bob]).await;
    let (a, b) = (core.connect(alice).await, core.connect(bob).await);

    let sent = core
        .realtime
        .rooms()
        .room(room)
        .send(alice, body("hello"), None, Some("c1".to_owned()))
        .await
        .expect("sent");
    assert_eq!(sent.seq, 1);
    for socket in [&a, &b] {
        match socket.durable().await {
            ServerFrame::MessageCreated { room_id, message } => {
                assert_eq!(
                    (room_id, message.seq, message.body.as_str()),
                    (room, 1, "hello")
                );
            }
            other => panic!("expected message.created, got {other:?}"),
        }
    }
    // A retried client_id answers the stored message and publishes nothing.
    let again = core
        .realtime
        .rooms()
        .room(room)
        .send(alice, body("hello"), None, Some("c1".to_owned()))
        .await
        .expect("sent again");
    assert_eq!(again.id, sent.id);
    assert!(b.quiet(), "a retried send is not published twice");
    // A non-member may not send.
    let carol = core.user("carol").await;
    let refused = core
        .realtime
        .rooms()
        .room(room)
        .send(carol, body("hi"), None, None)
        .await;
    assert!(matches!(refused, Err(ChatError::NotMember)));
    core.stop().await;
}

#[tokio::test]
async fn an_edit_over_the_socket_is_acked_and_published_and_only_the_author_may_edit() {
    let core = Core::start(RealtimeConfig::default()).await;
    let (alice, bob) = (core.user("alice").await, core.user("bob").await);
    let room = core.room(alice, &[bob]).await;
    let (a, b) = (core.connect(alice).await, core.connect(bob).await);
    let sent = core
        .realtime
        .rooms()
        .room(room)
        .send(alice, body("draft"), None, None)
        .await
        .expect("sent");
    a.durable().await;
    b.durable().await;

    core.frame(
        &a,
        ClientFrame::MessageEdit {
            room_id: room,
            message_id: sent.id,
            body: "final".to_owned(),
            reference: Some("e1".to_owned()),
        },
    );
    // The socket that asked gets the event and its ack (in either order).
    let mut acked = false;
    let mut updated = false;
    for _ in 0..2 {
        match a.durable().await {
            ServerFrame::Ack { reference, message } => {
                assert_eq!(reference.as_deref(), Some("e1"));
                assert_eq!(message.expect("the message").body, "final");
                acked = true;
            }
            ServerFrame::MessageUpdated { message, .. } => {
                assert_eq!(message.body, "final");
                updated = true;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(acked && updated);
    match b.durable().await {
        ServerFrame::MessageUpdated { message, .. } => {
            assert_eq!(message.body, "final");
            assert!(message.edited_at.is_some());
        }
        other => panic!("expected message.updated, got {other:?}"),
    }
    // Bob's edit of Alice's message is refused with an error frame.
    core.frame(
        &b,
        ClientFrame::MessageEdit {
            room_id: room,
            message_id: sent.id,
            body: "mine now".to_owned(),
            reference: Some("e2".to_owned()),
        },
    );
    match b.durable().await {
        ServerFrame::Error {
            reference, code, ..
        } => assert_eq!(
            (reference.as_deref(), code.as_str()),
            (Some("e2"), "forbidden")
        ),
        other => panic!("expected an error, got {other:?}"),
    }
    core.stop().await;
}

#[tokio::test]
async fn a_resume_replays_the_gap_in_order_then_goes_live() {
    let core = Core::start(RealtimeConfig::default()).await;
    let (alice, bob) = (core.user("alice").await, core.user("bob").await);
    let room = core.room(alice, &[bob]).await;
    // 450 messages: more than two pages of the replay.
    let last = core.store.seed_messages(room, alice, 450);
    let b = core.connect(bob).await;

    core.frame(
        &b,
        ClientFrame::Resume {
            rooms: BTreeMap::from([(room, 3)]),
            reference: Some("r".to_owned()),
        },
    );
    for expected in 4..=last {
        match b.durable().await {
            ServerFrame::MessageCreated { message, .. } => assert_eq!(message.seq, expected),
            other => panic!("expected seq {expected}, got {other:?}"),
        }
    }
    match b.durable().await {
        ServerFrame::Resumed { reference, rooms } => {
            assert_eq!(reference.as_deref(), Some("r"));
            assert_eq!(rooms, BTreeMap::from([(room, last)]));
        }
        other => panic!("expected resumed, got {other:?}"),
    }
    // Live again: the next send arrives once.
    core.realtime
        .rooms()
        .room(room)
        .send(alice, body("live"), None, None)
        .await
        .expect("sent");
    match b.durable().await {
        ServerFrame::MessageCreated { message, .. } => assert_eq!(message.seq, last + 1),
        other => panic!("expected the live message, got {other:?}"),
    }
    assert!(b.quiet(), "nothing doubled");
    core.stop().await;
}

#[tokio::test]
async fn a_resume_too_far_behind_gets_resync_required_and_stays_live() {
    let config = RealtimeConfig {
        resume_max_gap: 10,
        ..RealtimeConfig::default()
    };
    let core = Core::start(config).await;
    let (alice, bob) = (core.user("alice").await, core.user("bob").await);
    let room = core.room(alice, &[bob]).await;
    let last = core.store.seed_messages(room, alice, 25);
    let b = core.connect(bob).await;

    core.frame(
        &b,
        ClientFrame::Resume {
            rooms: BTreeMap::from([(room, 0)]),
            reference: None,
        },
    );
    match b.durable().await {
        ServerFrame::ResyncRequired { room_id, last_seq } => {
            assert_eq!((room_id, last_seq), (room, last));
        }
        other => panic!("expected resync_required, got {other:?}"),
    }
    match b.durable().await {
        ServerFrame::Resumed { rooms, .. } => assert!(rooms.is_empty()),
        other => panic!("expected resumed, got {other:?}"),
    }
    core.realtime
        .rooms()
        .room(room)
        .send(alice, body("still live"), None, None)
        .await
        .expect("sent");
    assert!(matches!(
        b.durable().await,
        ServerFrame::MessageCreated { .. }
    ));
    core.stop().await;
}

#[tokio::test]
async fn a_room_that_fails_is_restarted_from_the_store_on_next_use() {
    let core = Core::start(RealtimeConfig::default()).await;
    let (alice, bob) = (core.user("alice").await, core.user("bob").await);
    let room = core.room(alice, &[bob]).await;
    let b = core.connect(bob).await;
    let handle = core.realtime.rooms().room(room);
    let first = handle
        .send(alice, body("one"), None, None)
        .await
        .expect("sent");
    b.durable().await;

    // The room actor panics while handling an edit: the caller is told,
    // nothing else is.
    core.store.panic_on_next_lookup();
    let failed = handle.edit(alice, first.id, body("boom")).await;
    assert!(
        matches!(failed, Err(ChatError::Unavailable(_))),
        "{failed:?}"
    );

    // A new actor, its state reloaded: members known, seqs continue.
    let second = handle
        .send(alice, body("two"), None, None)
        .await
        .expect("the restarted room answers");
    assert_eq!(second.seq, first.seq + 1);
    match b.durable().await {
        ServerFrame::MessageCreated { message, .. } => assert_eq!(message.seq, second.seq),
        other => panic!("expected message.created, got {other:?}"),
    }
    let edited = handle
        .edit(alice, first.id, body("fixed"))
        .await
        .expect("edits again");
    assert_eq!(edited.body, "fixed");
    core.stop().await;
}

#[tokio::test]
async fn a_slow_socket_is_closed_with_4009_without_slowing_the_room() {
    let config = RealtimeConfig {
        durable_queue: 8,
        ..RealtimeConfig::default()
    };
    let core = Core::start(config).await;
    let (alice, bob, carol) = (
        core.user("alice").await,
        core.user("bob").await,
        core.user("carol").await,
    );
    let room = core.room(alice, &[bob, carol]).await;
    let slow = core.connect(bob).await;
    let fast = core.connect(carol).await;
    let handle = core.realtime.rooms().room(room);

    // Bob never reads; Carol reads as the messages come.
    let started = std::time::Instant::now();
    for i in 1..=50 {
        let sent = handle
            .send(alice, body(&format!("m{i}")), None, None)
            .await
            .expect("the room is not held up by a slow socket");
        match fast.durable().await {
            ServerFrame::MessageCreated { message, .. } => assert_eq!(message.seq, sent.seq),
            other => panic!("expected message.created, got {other:?}"),
        }
    }
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "sends took {:?}",
        started.elapsed()
    );
    let reason = slow
        .outbox
        .close_reason()
        .expect("the slow socket is closing");
    assert_eq!(reason.code, close::SLOW_CONSUMER);
    assert!(fast.outbox.close_reason().is_none());
    // Not an orderly close: the writer is told to close at once.
    assert!(matches!(slow.reader.next().await, Next::Close(_)));
    core.stop().await;
}

#[tokio::test]
async fn presence_goes_offline_only_after_the_grace_period() {
    let config = RealtimeConfig {
        presence_grace: Duration::from_millis(150),
        ..RealtimeConfig::default()
    };
    let core = Core::start(config).await;
    let (alice, bob) = (core.user("alice").await, core.user("bob").await);
    core.room(alice, &[bob]).await;
    let b = core.connect(bob).await;

    let a = core.connect(alice).await;
    let online = b.frame().await;
    assert!(
        matches!(online, ServerFrame::Presence { user_id, status: PresenceStatus::Online, .. } if user_id == alice),
        "{online:?}"
    );
    assert_eq!(
        core.realtime.presence().shown(alice).status,
        PresenceStatus::Online
    );

    // A reconnect within the grace period shows no change.
    core.realtime.disconnect(&a.outbox, &a.actor);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let again = core.connect(alice).await;
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert!(
        b.reader.try_frame().is_none(),
        "no flap on a quick reconnect"
    );
    assert_eq!(
        core.realtime.presence().shown(alice).status,
        PresenceStatus::Online
    );

    // The last socket closes: offline once the grace period has passed.
    let closed_at = std::time::Instant::now();
    core.realtime.disconnect(&again.outbox, &again.actor);
    let offline = b.frame().await;
    assert!(
        matches!(offline, ServerFrame::Presence { user_id, status: PresenceStatus::Offline, .. } if user_id == alice),
        "{offline:?}"
    );
    assert!(closed_at.elapsed() >= Duration::from_millis(150));
    assert_eq!(
        core.realtime.presence().shown(alice).status,
        PresenceStatus::Offline
    );
    core.stop().await;
}

#[tokio::test]
async fn every_socket_subscription_goes_through_the_broker() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let core = Core::start_recording(RealtimeConfig::default(), Arc::clone(&seen)).await;
    let take = || std::mem::take(&mut *seen.lock().expect("not poisoned"));
    let (alice, bob) = (core.user("alice").await, core.user("bob").await);
    let room = core.room(alice, &[]).await;
    assert_eq!(
        take(),
        ["subscribe_user"],
        "the owner's sockets, at creation"
    );

    let b = core.connect(bob).await;
    assert_eq!(take(), ["register"]);
    let handle = core.realtime.rooms().room(room);
    handle.join(bob).await.expect("joins");
    assert_eq!(take(), ["subscribe_user"]);
    assert!(b.outbox.in_room(room));

    core.frame(
        &b,
        ClientFrame::Resume {
            rooms: BTreeMap::from([(room, 0)]),
            reference: None,
        },
    );
    assert!(matches!(
        b.durable().await,
        ServerFrame::MemberJoined { .. }
    ));
    assert!(matches!(b.durable().await, ServerFrame::Resumed { .. }));
    assert_eq!(take(), ["unsubscribe_socket", "subscribe_socket"]);

    handle.leave(bob).await.expect("leaves");
    assert_eq!(take(), ["unsubscribe_user"]);
    assert!(!b.outbox.in_room(room));
    handle.delete_room(alice).await.expect("deleted");
    assert_eq!(take(), ["drop_room"]);

    core.realtime.disconnect(&b.outbox, &b.actor);
    assert_eq!(take(), ["unregister"]);
    core.stop().await;
}
