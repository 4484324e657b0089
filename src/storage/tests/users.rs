//! Users: creation, unique names and emails, lockout, role/status/password changes.

use std::sync::Arc;

use parley_actors::domain::{Email, Role, UserId, UserStatus};
use parley_actors::store::{LoginFailure, Store, StoreError};

use super::{new_user, t};

pub(super) async fn users_are_created_and_read_back(_: String, store: Arc<dyn Store>) {
    let new = new_user("Alice");
    let created = store.create_user(new.clone()).await.expect("create");
    assert_eq!(created.id, new.id);
    assert_eq!(created.username.as_str(), "alice");
    assert_eq!(created.email.as_str(), "alice@example.com");
    assert_eq!(created.password_hash, new.password_hash);
    assert_eq!(
        (created.display_name.as_deref(), created.bio.as_deref()),
        (None, None)
    );
    assert_eq!(created.avatar_url, None);
    assert_eq!(
        (created.role, created.status),
        (Role::User, UserStatus::Active)
    );
    assert!(!created.two_factor_enabled);
    assert_eq!((created.failed_logins, created.locked_until), (0, None));
    assert_eq!((created.created_at, created.updated_at), (t(0), t(0)));

    let by_id = store.user_by_id(new.id).await.expect("by id");
    assert_eq!(by_id.as_ref(), Some(&created));
    let by_name = store.user_by_login("alice").await.expect("by name");
    assert_eq!(by_name.as_ref(), Some(&created));
    let by_email = store
        .user_by_login("alice@example.com")
        .await
        .expect("by email");
    assert_eq!(by_email.as_ref(), Some(&created));
    assert_eq!(store.user_by_login("nobody").await.expect("unknown"), None);
    assert_eq!(
        store.user_by_id(UserId::new()).await.expect("unknown"),
        None
    );
}

pub(super) async fn taken_usernames_and_emails_conflict_on_that_field(
    _: String,
    store: Arc<dyn Store>,
) {
    store.create_user(new_user("bob")).await.expect("first");

    let mut same_name = new_user("BOB");
    same_name.email = Email::parse("other@example.com").expect("email");
    let err = store.create_user(same_name).await.expect_err("taken name");
    assert!(
        matches!(err, StoreError::Conflict { field: "username" }),
        "{err:?}"
    );

    let mut same_email = new_user("robert");
    same_email.email = Email::parse("Bob@Example.COM").expect("email");
    let err = store
        .create_user(same_email)
        .await
        .expect_err("taken email");
    assert!(
        matches!(err, StoreError::Conflict { field: "email" }),
        "{err:?}"
    );
}

pub(super) async fn login_failures_lock_the_account_at_the_threshold(
    _: String,
    store: Arc<dyn Store>,
) {
    let id = store
        .create_user(new_user("carol"))
        .await
        .expect("create")
        .id;
    let until = t(15 * 60_000);
    for n in 1..=4 {
        let failure = store
            .record_login_failure(id, 5, until)
            .await
            .expect("fail");
        assert_eq!(
            failure,
            LoginFailure {
                failed_logins: n,
                locked_until: None
            }
        );
    }
    let fifth = store
        .record_login_failure(id, 5, until)
        .await
        .expect("fail");
    assert_eq!(
        fifth,
        LoginFailure {
            failed_logins: 0,
            locked_until: Some(until)
        }
    );
    let user = store.user_by_id(id).await.expect("read").expect("exists");
    assert_eq!((user.failed_logins, user.locked_until), (0, Some(until)));

    // The count starts again; the running lock is kept, not extended.
    let sixth = store
        .record_login_failure(id, 5, t(99))
        .await
        .expect("fail");
    assert_eq!(
        sixth,
        LoginFailure {
            failed_logins: 1,
            locked_until: None
        }
    );
    let user = store.user_by_id(id).await.expect("read").expect("exists");
    assert_eq!(user.locked_until, Some(until));

    store.clear_login_failures(id).await.expect("clear");
    let user = store.user_by_id(id).await.expect("read").expect("exists");
    assert_eq!((user.failed_logins, user.locked_until), (0, None));

    let err = store
        .record_login_failure(UserId::new(), 5, until)
        .await
        .expect_err("unknown user");
    assert!(matches!(err, StoreError::Other(_)), "{err:?}");
}

pub(super) async fn role_status_and_password_changes_are_stored(_: String, store: Arc<dyn Store>) {
    let id = store
        .create_user(new_user("dave"))
        .await
        .expect("create")
        .id;
    store
        .update_user_role_status(id, Some(Role::Admin), None, t(10))
        .await
        .expect("role");
    let user = store.user_by_id(id).await.expect("read").expect("exists");
    assert_eq!(
        (user.role, user.status, user.updated_at),
        (Role::Admin, UserStatus::Active, t(10))
    );

    store
        .update_user_role_status(id, None, Some(UserStatus::Suspended), t(20))
        .await
        .expect("status");
    let user = store.user_by_id(id).await.expect("read").expect("exists");
    assert_eq!(
        (user.role, user.status, user.updated_at),
        (Role::Admin, UserStatus::Suspended, t(20))
    );

    store
        .update_password_hash(id, "$argon2id$new", t(30))
        .await
        .expect("password");
    let user = store.user_by_id(id).await.expect("read").expect("exists");
    assert_eq!(
        (user.password_hash.as_str(), user.updated_at),
        ("$argon2id$new", t(30))
    );

    let err = store
        .update_password_hash(UserId::new(), "x", t(40))
        .await
        .expect_err("unknown user");
    assert!(matches!(err, StoreError::Other(_)), "{err:?}");
}

pub(super) async fn the_user_list_filters_pages_and_counts_activity(
    _: String,
    store: Arc<dyn Store>,
) {
    use parley_actors::store::UserFilter;

    use super::{new_message, new_session, room_with, token};

    let (anna, annabel, bob) = (
        store.create_user(new_user("anna")).await.expect("anna").id,
        store
            .create_user(new_user("annabel"))
            .await
            .expect("annabel")
            .id,
        store.create_user(new_user("bob")).await.expect("bob").id,
    );
    // anna: two sessions (one revoked later), seen last at t(50); two messages.
    for (i, at) in [t(20), t(50)].into_iter().enumerate() {
        let new = new_session(anna, t(0));
        let refresh = token(&format!("h{i}"), new.id, t(0));
        let session = store.create_session(new, refresh).await.expect("session");
        store
            .touch_session(session.id, at, None)
            .await
            .expect("touch");
        if i == 1 {
            store
                .revoke_session(session.id, "logout", t(60))
                .await
                .expect("revoke");
        }
    }
    let room = room_with(store.as_ref(), anna, &[]).await;
    store
        .create_messages(vec![
            new_message(room.id, anna, "one"),
            new_message(room.id, anna, "two"),
        ])
        .await
        .expect("messages");
    store
        .update_user_role_status(bob, Some(Role::Admin), Some(UserStatus::Suspended), t(5))
        .await
        .expect("bob");

    let list = |filter: UserFilter, after: Option<UserId>, limit: u32| {
        let store = Arc::clone(&store);
        async move {
            store
                .list_users(&filter, after, limit)
                .await
                .expect("list")
                .into_iter()
                .map(|a| (a.user.username.as_str().to_owned(), a))
                .collect::<Vec<_>>()
        }
    };
    let names = |rows: &[(String, parley_actors::store::UserActivity)]| {
        rows.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>()
    };

    let all = list(UserFilter::default(), None, 10).await;
    assert_eq!(names(&all), ["anna", "annabel", "bob"]);
    let a = &all[0].1;
    assert_eq!((a.open_sessions, a.messages), (1, 2));
    assert_eq!(
        a.last_seen_at,
        Some(t(50)),
        "revoked sessions count as seen"
    );
    let b = &all[1].1;
    assert_eq!((b.open_sessions, b.messages, b.last_seen_at), (0, 0, None));

    let q = |q: &str| UserFilter {
        q: Some(q.to_owned()),
        ..UserFilter::default()
    };
    assert_eq!(names(&list(q("ANN"), None, 10).await), ["anna", "annabel"]);
    assert_eq!(names(&list(q("bob@example"), None, 10).await), ["bob"]);
    assert!(list(q("%"), None, 10).await.is_empty(), "% is literal");
    assert!(list(q("a_n"), None, 10).await.is_empty(), "_ is literal");
    let suspended_admins = UserFilter {
        status: Some(UserStatus::Suspended),
        role: Some(Role::Admin),
        ..UserFilter::default()
    };
    assert_eq!(names(&list(suspended_admins, None, 10).await), ["bob"]);

    assert_eq!(
        names(&list(UserFilter::default(), Some(anna), 1).await),
        ["annabel"]
    );
    assert_eq!(
        names(&list(UserFilter::default(), Some(annabel), 10).await),
        ["bob"]
    );
    assert!(
        list(UserFilter::default(), Some(UserId::new()), 10)
            .await
            .is_empty(),
        "an unknown cursor yields an empty page"
    );

    // bob is an admin but suspended: no active admin yet.
    assert_eq!(store.count_active_admins().await.expect("count"), 0);
    store
        .update_user_role_status(anna, Some(Role::Admin), None, t(6))
        .await
        .expect("anna");
    store
        .update_user_role_status(bob, None, Some(UserStatus::Active), t(7))
        .await
        .expect("bob");
    assert_eq!(store.count_active_admins().await.expect("count"), 2);
}
