//! The store suite, apart from the code it tests: one file per record kind
//! (`users.rs`, `sessions.rs`, `rooms.rs`, `messages.rs` …) holding cases
//! `async fn(url, store)`. `store_test_suite!` turns every case into a
//! `#[tokio::test]` on a fresh database of each backend: `sqlite.rs` runs
//! them on a SQLite file always, `postgres.rs` on a new PostgreSQL database
//! when `PARLEY_TEST_DATABASE_URL` is set. Both also hold their backend's own
//! tests.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;

use chrono::{DateTime, Duration as Span, Utc};
use futures_util::future::BoxFuture;
use parley_actors::domain::{
    Email, Emoji, MessageBody, MessageId, Role, RoomId, RoomName, RoomRole, SessionId, UserId,
    Username, Visibility,
};
use parley_actors::store::{
    Created, HistoryQuery, Message, NewMessage, NewRefreshToken, NewRoom, NewSession, NewUser,
    Room, Session, Store,
};

mod account_tokens;
mod audit;
mod blocks;
mod connect;
mod invites;
mod members;
mod messages;
mod postgres;
mod rooms;
mod search;
mod sessions;
mod settings;
mod sqlite;
mod two_factor;
mod unread;
mod users;

/// Frees what a test database holds (a temp dir, a PostgreSQL database).
pub(super) trait Cleanup: Send + std::fmt::Debug {
    fn cleanup(self: Box<Self>) -> BoxFuture<'static, ()>;
}

impl Cleanup for tempfile::TempDir {
    fn cleanup(self: Box<Self>) -> BoxFuture<'static, ()> {
        Box::pin(async move { drop(self) })
    }
}

/// A migrated, empty database and its store.
#[derive(Debug)]
pub(super) struct TestDb {
    url: String,
    store: Arc<dyn Store>,
    cleanup: Box<dyn Cleanup>,
}

impl TestDb {
    pub(super) fn new(url: String, store: Arc<dyn Store>, cleanup: Box<dyn Cleanup>) -> Self {
        Self {
            url,
            store,
            cleanup,
        }
    }

    /// Runs one case, then closes the store and cleans up, also when
    /// the case panics (the panic is passed on afterwards).
    pub(super) async fn run<F, Fut>(self, case: F)
    where
        F: FnOnce(String, Arc<dyn Store>) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let outcome = tokio::spawn(case(self.url.clone(), Arc::clone(&self.store))).await;
        self.store.close().await;
        drop(self.store);
        self.cleanup.cleanup().await;
        if let Err(err) = outcome {
            match err.try_into_panic() {
                Ok(panic) => std::panic::resume_unwind(panic),
                Err(err) => panic!("test case did not finish: {err}"),
            }
        }
    }
}

/// One `#[tokio::test]` per case, each on a database from `$fresh`
/// (an `async fn() -> Option<TestDb>`; `None` skips the test). A case is
/// named by its file and function (`users::users_are_created_and_read_back`).
macro_rules! store_test_suite {
    ($fresh:ident) => {
        $crate::storage::tests::store_test_suite!(
            @cases $fresh,
            users::users_are_created_and_read_back,
            users::taken_usernames_and_emails_conflict_on_that_field,
            users::login_failures_lock_the_account_at_the_threshold,
            users::role_status_and_password_changes_are_stored,
            users::the_user_list_filters_pages_and_counts_activity,
            two_factor::totp_is_set_up_enabled_and_disabled,
            two_factor::a_totp_step_and_a_recovery_code_are_good_once,
            account_tokens::a_token_is_spent_once_before_expiry_for_its_purpose,
            account_tokens::an_address_is_marked_verified,
            sessions::a_rotated_token_presented_again_revokes_its_session,
            sessions::expired_refresh_tokens_are_dead_and_left_unchanged,
            sessions::concurrent_rotations_of_one_token_rotate_it_once,
            sessions::live_sessions_page_newest_first_after_the_cursor,
            sessions::touching_a_session_only_moves_last_seen_forward,
            sessions::idle_sessions_and_the_session_of_a_refresh_token_are_found,
            sessions::revoking_all_sessions_keeps_the_current_one,
            audit::audit_entries_are_listed_newest_first,
            connect::a_closed_store_is_unavailable,
            connect::migrations_go_down_and_up_again,
            rooms::rooms_are_created_updated_and_deleted_with_their_contents,
            rooms::public_rooms_are_found_by_name_newest_first,
            rooms::direct_rooms_are_created_once_per_pair,
            members::members_are_added_promoted_removed_and_banned,
            invites::invites_are_pending_once_until_answered,
            messages::concurrent_sends_get_gapless_seqs,
            messages::client_ids_make_sends_idempotent,
            messages::batches_commit_together_in_order,
            messages::groups_of_rooms_commit_together_and_fail_alone,
            unread::unread_counts_look_at_the_newest_messages_only,
            messages::messages_are_edited_reacted_to_and_deleted,
            messages::history_pages_both_ways_and_hides_blocked_authors,
            unread::unread_counts_skip_own_deleted_and_blocked_messages,
            search::search_covers_my_rooms_and_tolerates_any_input,
            blocks::blocks_are_created_listed_and_lifted,
            settings::settings_are_stored_whole_and_replaced,
            settings::profile_patches_set_clear_or_leave_each_field,
            settings::user_search_matches_prefixes_and_leaves_out_blocks_and_inactive,
        );
    };
    (@cases $fresh:ident, $($kind:ident :: $case:ident),+ $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                if let Some(db) = $fresh().await {
                    db.run($crate::storage::tests::$kind::$case).await;
                }
            }
        )+
    };
}
pub(super) use store_test_suite;

// ---- fixtures -----------------------------------------------------------

/// A fixed instant plus `ms` milliseconds.
pub(super) fn t(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(1_700_000_000_000 + ms).expect("valid time")
}

pub(super) fn new_user(name: &str) -> NewUser {
    NewUser {
        id: UserId::new(),
        username: Username::parse(name).expect("valid username"),
        email: Email::parse(&format!("{name}@example.com")).expect("valid email"),
        password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".to_owned(),
        role: Role::User,
        created_at: t(0),
    }
}

pub(super) fn new_session(user_id: UserId, created_at: DateTime<Utc>) -> NewSession {
    NewSession {
        id: SessionId::new(),
        user_id,
        user_agent: Some("parley-test/1.0".to_owned()),
        ip: Some("192.0.2.1".parse().expect("ip")),
        created_at,
    }
}

pub(super) fn token(
    hash: &str,
    session_id: SessionId,
    created_at: DateTime<Utc>,
) -> NewRefreshToken {
    NewRefreshToken {
        token_hash: hash.to_owned(),
        session_id,
        created_at,
        expires_at: created_at + Span::days(30),
    }
}

/// A user plus a session whose first refresh token hashes to `hash`.
pub(super) async fn user_with_session(
    store: &dyn Store,
    name: &str,
    hash: &str,
) -> (UserId, Session) {
    let user = store
        .create_user(new_user(name))
        .await
        .expect("create user");
    let new = new_session(user.id, t(0));
    let refresh = token(hash, new.id, t(0));
    let session = store
        .create_session(new, refresh)
        .await
        .expect("create session");
    (user.id, session)
}

// ---- chat fixtures ------------------------------------------------------

pub(super) async fn user(store: &dyn Store, name: &str) -> UserId {
    store.create_user(new_user(name)).await.expect("user").id
}

pub(super) fn new_room(owner: UserId, name: &str, visibility: Visibility, ms: i64) -> NewRoom {
    NewRoom {
        id: RoomId::new(),
        name: RoomName::parse(name).expect("room name"),
        topic: None,
        visibility,
        owner,
        created_at: t(ms),
    }
}

/// A private room owned by `owner` with `members` added as members.
pub(super) async fn room_with(store: &dyn Store, owner: UserId, members: &[UserId]) -> Room {
    let room = store
        .create_room(new_room(owner, "room", Visibility::Private, 0))
        .await
        .expect("room");
    for &member in members {
        assert!(
            store
                .add_member(room.id, member, RoomRole::Member, t(1))
                .await
                .expect("add member")
        );
    }
    room
}

pub(super) fn new_message(room_id: RoomId, author_id: UserId, body: &str) -> NewMessage {
    NewMessage {
        id: MessageId::new(),
        room_id,
        author_id,
        body: MessageBody::parse(body).expect("body"),
        reply_to: None,
        client_id: None,
        created_at: t(10),
    }
}

pub(super) async fn send(
    store: &dyn Store,
    room_id: RoomId,
    author_id: UserId,
    body: &str,
) -> Message {
    match store
        .create_message(new_message(room_id, author_id, body))
        .await
        .expect("send")
    {
        Created::New(message) => message,
        Created::Existing(message) => panic!("no client id, yet existing: {message:?}"),
    }
}

pub(super) fn emoji(raw: &str) -> Emoji {
    Emoji::parse(raw).expect("emoji")
}

pub(super) fn history(
    before_seq: Option<i64>,
    after_seq: Option<i64>,
    limit: u32,
    viewer: Option<UserId>,
) -> HistoryQuery {
    HistoryQuery {
        before_seq,
        after_seq,
        limit,
        viewer,
    }
}

pub(super) fn seqs(messages: &[Message]) -> Vec<i64> {
    messages.iter().map(|m| m.seq).collect()
}

pub(super) fn counts(pairs: &[(&str, i64)]) -> BTreeMap<String, i64> {
    pairs.iter().map(|&(e, n)| (e.to_owned(), n)).collect()
}
