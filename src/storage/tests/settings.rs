//! Settings documents, profile patches and the user search.

use std::sync::Arc;

use parley_actors::domain::UserStatus;
use parley_actors::settings::{DmPolicy, Theme, UserSettings};
use parley_actors::store::{ProfilePatch, Store};

use super::{t, user};

pub(super) async fn settings_are_stored_whole_and_replaced(_: String, store: Arc<dyn Store>) {
    let alice = user(&*store, "alice").await;
    let bob = user(&*store, "bob").await;
    assert_eq!(store.user_settings(alice).await.expect("read"), None);
    assert!(store.all_user_settings().await.expect("all").is_empty());

    let mut settings = UserSettings {
        theme: Theme::Dark,
        ..UserSettings::default()
    };
    settings.privacy.dm_policy = DmPolicy::SharedRooms;
    store
        .put_user_settings(alice, &settings, t(1))
        .await
        .expect("insert");
    assert_eq!(
        store.user_settings(alice).await.expect("read"),
        Some(settings.clone())
    );
    settings.privacy.show_presence = false;
    store
        .put_user_settings(alice, &settings, t(2))
        .await
        .expect("replace");
    assert_eq!(
        store.all_user_settings().await.expect("all"),
        vec![(alice, settings)]
    );
    assert_eq!(store.user_settings(bob).await.expect("read"), None);
}

pub(super) async fn profile_patches_set_clear_or_leave_each_field(
    _: String,
    store: Arc<dyn Store>,
) {
    let alice = user(&*store, "alice").await;
    let patch = |name: Option<Option<&str>>, bio: Option<Option<&str>>| ProfilePatch {
        display_name: name.map(|v| v.map(str::to_owned)),
        bio: bio.map(|v| v.map(str::to_owned)),
    };
    let u = store
        .update_user_profile(alice, patch(Some(Some("Alice")), Some(Some("hi"))), t(5))
        .await
        .expect("update")
        .expect("a user");
    assert_eq!(
        (u.display_name.as_deref(), u.bio.as_deref()),
        (Some("Alice"), Some("hi"))
    );
    assert_eq!(u.updated_at, t(5));
    let u = store
        .update_user_profile(alice, patch(None, Some(None)), t(6))
        .await
        .expect("update")
        .expect("a user");
    assert_eq!((u.display_name.as_deref(), u.bio), (Some("Alice"), None));
    let nobody = parley_actors::domain::UserId::new();
    assert!(
        store
            .update_user_profile(nobody, patch(Some(None), None), t(7))
            .await
            .expect("update")
            .is_none()
    );
}

pub(super) async fn user_search_matches_prefixes_and_leaves_out_blocks_and_inactive(
    _: String,
    store: Arc<dyn Store>,
) {
    let me = user(&*store, "myself").await;
    let tom = user(&*store, "tom").await;
    let tomas = user(&*store, "tomas").await;
    let blocked = user(&*store, "tom_blocked").await;
    let blocker = user(&*store, "tom_blocker").await;
    let banned = user(&*store, "tom_banned").await;
    let zed = user(&*store, "zed").await;
    let names = |users: Vec<parley_actors::store::User>| {
        users
            .into_iter()
            .map(|u| u.username.to_string())
            .collect::<Vec<_>>()
    };
    store
        .update_user_profile(
            zed,
            ProfilePatch {
                display_name: Some(Some("Tommy Z".to_owned())),
                bio: None,
            },
            t(1),
        )
        .await
        .expect("update");
    store.create_block(me, blocked, t(1)).await.expect("block");
    store.create_block(blocker, me, t(1)).await.expect("block");
    store
        .update_user_role_status(banned, None, Some(UserStatus::Banned), t(1))
        .await
        .expect("ban");
    let _ = (tom, tomas);

    let all = store
        .search_users(me, "tom", None, 10)
        .await
        .expect("search");
    assert_eq!(names(all), ["tom", "tomas", "zed"]);
    let page = store
        .search_users(me, "tom", Some("tom"), 1)
        .await
        .expect("search");
    assert_eq!(names(page), ["tomas"]);
    // Wildcards are plain characters.
    let none = store
        .search_users(me, "t_m", None, 10)
        .await
        .expect("search");
    assert!(none.is_empty());
    let pct = store.search_users(me, "%", None, 10).await.expect("search");
    assert!(pct.is_empty());
    // The blocked user does not find me either; I do not find myself.
    let theirs = store
        .search_users(blocked, "mys", None, 10)
        .await
        .expect("search");
    assert!(theirs.is_empty());
    assert!(
        store
            .search_users(me, "mys", None, 10)
            .await
            .expect("search")
            .is_empty()
    );
}
