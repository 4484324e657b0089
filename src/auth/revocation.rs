//! The in-memory view of revoked sessions.
//!
//! Access tokens are stateless JWTs; to make a revoked session's token fail
//! on the very next request without a database read per request, every
//! revocation is written to the store first and then recorded here. An
//! entry is only needed until every access token of that session has
//! expired, so entries older than the access-token lifetime are pruned. At
//! start the view is rebuilt from the store (sessions revoked within one
//! token lifetime), so a restart does not resurrect revoked tokens.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use dashmap::DashMap;
use parley_actors::domain::SessionId;
use parley_actors::store::{Store, StoreResult};

use crate::telemetry;

/// Called with each revoked session (closes its sockets).
pub type RevocationListener = Arc<dyn Fn(SessionId) + Send + Sync>;

/// Revoked sessions whose access tokens may not have expired yet.
#[derive(Clone, Default)]
pub struct RevokedSessions {
    revoked: Arc<DashMap<SessionId, DateTime<Utc>>>,
    listener: Option<RevocationListener>,
}

impl std::fmt::Debug for RevokedSessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RevokedSessions")
            .field("revoked", &self.revoked.len())
            .field("listener", &self.listener.is_some())
            .finish()
    }
}

impl RevokedSessions {
    /// Loads the sessions revoked within the last `token_ttl` from the store.
    pub async fn load(store: &dyn Store, token_ttl: Duration) -> StoreResult<Self> {
        let view = Self::default();
        let since = Utc::now() - chrono::Duration::from_std(token_ttl).unwrap_or_default();
        for (session, _user) in store.sessions_revoked_since(since).await? {
            view.revoked.insert(session, Utc::now());
        }
        view.report();
        Ok(view)
    }

    /// Calls `listener` with every session revoked from now on.
    pub fn with_listener(mut self, listener: RevocationListener) -> Self {
        self.listener = Some(listener);
        self
    }

    /// Records a revocation already written to the store, and tells the
    /// listener (which closes the session's sockets).
    pub fn insert(&self, session: SessionId) {
        self.revoked.insert(session, Utc::now());
        self.report();
        if let Some(listener) = &self.listener {
            listener(session);
        }
    }

    /// Whether the session has been revoked.
    pub fn contains(&self, session: &SessionId) -> bool {
        self.revoked.contains_key(session)
    }

    /// Forgets revocations older than `token_ttl` (plus a minute of clock
    /// leeway): no token of theirs can still be valid.
    pub fn prune(&self, token_ttl: Duration) {
        let keep =
            chrono::Duration::from_std(token_ttl + Duration::from_secs(60)).unwrap_or_default();
        let cutoff = Utc::now() - keep;
        self.revoked.retain(|_, at| *at > cutoff);
        self.report();
    }

    /// How many revocations are held.
    pub fn len(&self) -> usize {
        self.revoked.len()
    }

    /// Whether none are held.
    pub fn is_empty(&self) -> bool {
        self.revoked.is_empty()
    }

    fn report(&self) {
        metrics::gauge!(telemetry::REVOKED_SESSIONS_TRACKED).set(self.revoked.len() as f64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revocations_are_seen_until_pruned() {
        let view = RevokedSessions::default();
        let sid = SessionId::new();
        assert!(!view.contains(&sid));
        view.insert(sid);
        assert!(view.contains(&sid));
        view.prune(Duration::from_secs(900));
        assert!(
            view.contains(&sid),
            "a fresh revocation must survive pruning"
        );
        view.revoked
            .insert(sid, Utc::now() - chrono::Duration::hours(1));
        view.prune(Duration::from_secs(900));
        assert!(!view.contains(&sid));
        assert!(view.is_empty());
    }
}
