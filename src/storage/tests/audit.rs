//! The audit log.

use std::sync::Arc;

use parley_actors::domain::{AuditId, UserId};
use parley_actors::store::{AuditEntry, NewAuditEntry, Store};

use super::t;

pub(super) async fn audit_entries_are_listed_newest_first(_: String, store: Arc<dyn Store>) {
    let actor = UserId::new();
    let entry = |at: i64, action: &str, actor_id: Option<UserId>| NewAuditEntry {
        id: AuditId::new(),
        at: t(at),
        actor_id,
        action: action.to_owned(),
        target_type: Some("user".to_owned()),
        target_id: actor_id.map(|id| id.to_string()),
        ip: Some("198.51.100.7".parse().expect("ip")),
        user_agent: Some("curl/8".to_owned()),
        request_id: Some(format!("req-{at}")),
        details: serde_json::json!({ "at": at, "nested": { "ok": true } }),
    };
    let entries = [
        entry(0, "login", Some(actor)),
        entry(1, "login_failed", None),
        entry(2, "login", Some(actor)),
    ];
    for e in &entries {
        store.create_audit_entry(e.clone()).await.expect("append");
    }
    let stored = |e: &NewAuditEntry| AuditEntry {
        id: e.id,
        at: e.at,
        actor_id: e.actor_id,
        action: e.action.clone(),
        target_type: e.target_type.clone(),
        target_id: e.target_id.clone(),
        ip: e.ip,
        user_agent: e.user_agent.clone(),
        request_id: e.request_id.clone(),
        details: e.details.clone(),
    };

    let all = store.list_audit_entries(None, 10).await.expect("all");
    let expected: Vec<AuditEntry> = entries.iter().rev().map(stored).collect();
    assert_eq!(all, expected);
    let logins = store
        .list_audit_entries(Some("login"), 10)
        .await
        .expect("logins");
    assert_eq!(logins, vec![stored(&entries[2]), stored(&entries[0])]);
    let newest = store.list_audit_entries(None, 1).await.expect("newest");
    assert_eq!(newest, vec![stored(&entries[2])]);
}
