//! Sessions and refresh tokens: rotation, reuse detection, expiry, paging, touch, revocation.

use std::sync::Arc;

use chrono::Duration as Span;
use parley_actors::domain::SessionId;
use parley_actors::store::{RefreshOutcome, Store, StoreError};

use super::{new_session, new_user, t, token, user_with_session};

pub(super) async fn a_rotated_token_presented_again_revokes_its_session(
    _: String,
    store: Arc<dyn Store>,
) {
    let (user_id, session) = user_with_session(&*store, "erin", "hash-a").await;
    let sid = session.id;
    assert_eq!(session.user_id, user_id);
    assert_eq!(session.user_agent.as_deref(), Some("parley-test/1.0"));
    assert_eq!(session.ip, Some("192.0.2.1".parse().expect("ip")));
    assert_eq!((session.created_at, session.last_seen_at), (t(0), t(0)));
    assert_eq!(
        (session.revoked_at, session.revoked_reason.as_deref()),
        (None, None)
    );
    assert_eq!(
        store.session_by_id(sid).await.expect("read"),
        Some(session.clone())
    );

    // The replacement's session_id is not known to callers; it is ignored.
    let outcome = store
        .rotate_refresh_token(
            "hash-a",
            token("hash-b", SessionId::new(), t(1000)),
            t(1000),
        )
        .await
        .expect("rotate");
    let RefreshOutcome::Rotated { session: rotated } = outcome else {
        panic!("expected Rotated, got {outcome:?}");
    };
    assert_eq!(rotated.id, sid);
    assert_eq!(rotated.last_seen_at, t(1000));

    let outcome = store
        .rotate_refresh_token("hash-a", token("hash-c", sid, t(2000)), t(2000))
        .await
        .expect("reuse");
    assert_eq!(
        outcome,
        RefreshOutcome::Reused {
            session_id: sid,
            user_id
        }
    );
    let revoked = store
        .session_by_id(sid)
        .await
        .expect("read")
        .expect("exists");
    assert_eq!(revoked.revoked_at, Some(t(2000)));
    assert_eq!(revoked.revoked_reason.as_deref(), Some("refresh_reuse"));

    // The live token of a revoked session is dead; the reuse stored no
    // replacement.
    let outcome = store
        .rotate_refresh_token("hash-b", token("hash-d", sid, t(3000)), t(3000))
        .await
        .expect("dead");
    assert_eq!(outcome, RefreshOutcome::Dead);
    let outcome = store
        .rotate_refresh_token("hash-c", token("hash-e", sid, t(3000)), t(3000))
        .await
        .expect("unknown");
    assert_eq!(outcome, RefreshOutcome::Unknown);

    assert_eq!(
        store.sessions_revoked_since(t(2000)).await.expect("since"),
        vec![(sid, user_id)]
    );
    assert!(
        store
            .sessions_revoked_since(t(2001))
            .await
            .expect("since")
            .is_empty()
    );
}

pub(super) async fn expired_refresh_tokens_are_dead_and_left_unchanged(
    _: String,
    store: Arc<dyn Store>,
) {
    let (_, session) = user_with_session(&*store, "frank", "hash-a").await;
    let expiry = t(0) + Span::days(30);
    let outcome = store
        .rotate_refresh_token("hash-a", token("hash-b", session.id, expiry), expiry)
        .await
        .expect("expired");
    assert_eq!(outcome, RefreshOutcome::Dead);
    let after = store.session_by_id(session.id).await.expect("read");
    assert_eq!(after, Some(session.clone()));

    // Nothing was spent: the same token still rotates before its expiry.
    let outcome = store
        .rotate_refresh_token("hash-a", token("hash-b", session.id, t(5)), t(5))
        .await
        .expect("rotate");
    assert!(
        matches!(outcome, RefreshOutcome::Rotated { .. }),
        "{outcome:?}"
    );
}

pub(super) async fn concurrent_rotations_of_one_token_rotate_it_once(
    _: String,
    store: Arc<dyn Store>,
) {
    let (_, session) = user_with_session(&*store, "grace", "hash-a").await;
    let (first, second) = tokio::join!(
        store.rotate_refresh_token("hash-a", token("hash-b1", session.id, t(9)), t(9)),
        store.rotate_refresh_token("hash-a", token("hash-b2", session.id, t(9)), t(9)),
    );
    let outcomes = [first.expect("first"), second.expect("second")];
    let rotated = outcomes
        .iter()
        .filter(|o| matches!(o, RefreshOutcome::Rotated { .. }))
        .count();
    let reused = outcomes
        .iter()
        .filter(|o| matches!(o, RefreshOutcome::Reused { .. }))
        .count();
    assert_eq!((rotated, reused), (1, 1), "{outcomes:?}");
}

pub(super) async fn live_sessions_page_newest_first_after_the_cursor(
    _: String,
    store: Arc<dyn Store>,
) {
    let user = store.create_user(new_user("heidi")).await.expect("create");
    let other = store.create_user(new_user("ivan")).await.expect("create");
    // Two pairs share a created_at, so the id breaks the tie.
    let mut live = Vec::new();
    for (i, ms) in [0, 10, 10, 20, 30, 30, 40].into_iter().enumerate() {
        let new = new_session(user.id, t(ms));
        let refresh = token(&format!("h-{i}"), new.id, t(ms));
        live.push(store.create_session(new, refresh).await.expect("session"));
    }
    let revoked = live.remove(3);
    assert!(
        store
            .revoke_session(revoked.id, "logout", t(50))
            .await
            .expect("revoke")
    );
    let new = new_session(other.id, t(60));
    let refresh = token("h-other", new.id, t(60));
    store.create_session(new, refresh).await.expect("session");

    live.sort_by_key(|s| std::cmp::Reverse((s.created_at, s.id.to_string())));
    let expected: Vec<SessionId> = live.iter().map(|s| s.id).collect();

    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = store
            .list_live_sessions(user.id, cursor, 2)
            .await
            .expect("page");
        assert!(page.len() <= 2);
        let Some(last) = page.last() else { break };
        cursor = Some(last.id);
        seen.extend(page.iter().map(|s| s.id));
    }
    assert_eq!(seen, expected);
    assert_eq!(
        store
            .list_live_sessions(user.id, None, 100)
            .await
            .expect("all"),
        live
    );
    // An unknown cursor has no position: empty page.
    assert!(
        store
            .list_live_sessions(user.id, Some(SessionId::new()), 10)
            .await
            .expect("unknown cursor")
            .is_empty()
    );
}

pub(super) async fn touching_a_session_only_moves_last_seen_forward(
    _: String,
    store: Arc<dyn Store>,
) {
    let (_, session) = user_with_session(&*store, "judy", "hash-a").await;
    let v6 = "2001:db8::1".parse().expect("ip");
    store
        .touch_session(session.id, t(5000), Some(v6))
        .await
        .expect("touch");
    let read = store
        .session_by_id(session.id)
        .await
        .expect("read")
        .expect("exists");
    assert_eq!((read.last_seen_at, read.ip), (t(5000), Some(v6)));

    store
        .touch_session(session.id, t(1000), None)
        .await
        .expect("touch");
    let read = store
        .session_by_id(session.id)
        .await
        .expect("read")
        .expect("exists");
    assert_eq!((read.last_seen_at, read.ip), (t(5000), Some(v6)));

    store
        .revoke_session(session.id, "logout", t(6000))
        .await
        .expect("revoke");
    store
        .touch_session(session.id, t(9000), None)
        .await
        .expect("touch");
    let read = store
        .session_by_id(session.id)
        .await
        .expect("read")
        .expect("exists");
    assert_eq!(read.last_seen_at, t(5000));
    // Unknown sessions are not an error either.
    store
        .touch_session(SessionId::new(), t(9000), None)
        .await
        .expect("touch");
}

pub(super) async fn revoking_all_sessions_keeps_the_current_one(_: String, store: Arc<dyn Store>) {
    let user = store.create_user(new_user("ken")).await.expect("create");
    let mut ids = Vec::new();
    for i in 0..3 {
        let new = new_session(user.id, t(i));
        let refresh = token(&format!("h-{i}"), new.id, t(i));
        ids.push(
            store
                .create_session(new, refresh)
                .await
                .expect("session")
                .id,
        );
    }
    let (other_user, other) = user_with_session(&*store, "leo", "h-other").await;

    // A token for another session is refused before anything is written.
    let new = new_session(user.id, t(5));
    let err = store
        .create_session(new, token("h-x", SessionId::new(), t(5)))
        .await
        .expect_err("mismatched token");
    assert!(matches!(err, StoreError::Other(_)), "{err:?}");

    let keep = ids[1];
    let mut revoked = store
        .revoke_user_sessions(user.id, Some(keep), "password_change", t(10))
        .await
        .expect("revoke all");
    revoked.sort();
    let mut expected = vec![ids[0], ids[2]];
    expected.sort();
    assert_eq!(revoked, expected);

    let live: Vec<SessionId> = store
        .list_live_sessions(user.id, None, 10)
        .await
        .expect("list")
        .iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(live, vec![keep]);
    let first = store
        .session_by_id(ids[0])
        .await
        .expect("read")
        .expect("exists");
    assert_eq!(
        (first.revoked_at, first.revoked_reason.as_deref()),
        (Some(t(10)), Some("password_change"))
    );
    let untouched = store
        .list_live_sessions(other_user, None, 10)
        .await
        .expect("list");
    assert_eq!(untouched, vec![other]);

    // Only live sessions count as revoked, once.
    assert!(
        store
            .revoke_user_sessions(user.id, Some(keep), "again", t(20))
            .await
            .expect("again")
            .is_empty()
    );
    assert!(
        !store
            .revoke_session(ids[0], "logout", t(20))
            .await
            .expect("revoked")
    );
    assert!(
        store
            .revoke_session(keep, "logout", t(20))
            .await
            .expect("live")
    );
    assert!(
        !store
            .revoke_session(keep, "logout", t(21))
            .await
            .expect("twice")
    );
    assert!(
        !store
            .revoke_session(SessionId::new(), "logout", t(21))
            .await
            .expect("unknown")
    );
}

pub(super) async fn idle_sessions_and_the_session_of_a_refresh_token_are_found(
    _: String,
    store: Arc<dyn Store>,
) {
    let (_, quiet) = user_with_session(&*store, "kim", "hash-quiet").await;
    let (_, busy) = user_with_session(&*store, "lou", "hash-busy").await;
    store
        .touch_session(busy.id, t(9000), None)
        .await
        .expect("touch");

    assert_eq!(
        store.idle_sessions(t(5000), 10).await.expect("idle"),
        vec![quiet.id]
    );
    assert_eq!(
        store.idle_sessions(t(10_000), 1).await.expect("idle"),
        vec![quiet.id],
        "oldest first, at most the limit"
    );
    store
        .revoke_session(quiet.id, "logout", t(9500))
        .await
        .expect("revoke");
    assert_eq!(
        store.idle_sessions(t(10_000), 10).await.expect("idle"),
        vec![busy.id],
        "revoked sessions are not idle ones"
    );

    let found = store
        .session_by_refresh_token("hash-busy")
        .await
        .expect("by token")
        .expect("found");
    assert_eq!(found.id, busy.id);
    assert_eq!(
        store
            .session_by_refresh_token("no-such-hash")
            .await
            .expect("by token"),
        None
    );
}
