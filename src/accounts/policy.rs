//! Session policy: `session_idle_secs` (a session unused that long dies)
//! and `max_sessions_per_user` (a login past the cap revokes the oldest
//! sessions). Both are off by default.
//!
//! A session is *used* when it refreshes, and when an access token of it
//! authenticates a request or a socket; the latter is written to the store
//! at most a few times per idle period (see [`Accounts::touch`]), so the
//! policy costs one small write per active session now and then, and
//! nothing when it is off. A periodic sweep revokes idle sessions, which
//! closes their sockets (4003); a refresh of an idle session fails even if
//! the sweep has not come by yet.

use std::time::{Duration, Instant};

use chrono::Utc;
use parley_actors::domain::{SessionId, UserId};
use serde_json::json;

use super::{AccountError, Accounts, Client};

/// Sessions revoked per sweep at most (the rest wait for the next one).
const SWEEP_BATCH: u32 = 500;
/// Sessions read per page when enforcing the cap.
const PAGE: u32 = 200;

/// The account policy the settings ask for.
#[derive(Debug, Clone)]
pub struct Policy {
    /// `require_verified_email`.
    pub require_verified_email: bool,
    /// `totp_issuer`.
    pub totp_issuer: String,
    /// `email_verify_ttl_secs`.
    pub email_verify_ttl: Duration,
    /// `password_reset_ttl_secs`.
    pub password_reset_ttl: Duration,
    /// `session_idle_secs`, when not 0.
    pub session_idle: Option<Duration>,
    /// `max_sessions_per_user` (0: no cap).
    pub max_sessions: u32,
}

impl Policy {
    /// The policy of `settings`.
    pub fn from_settings(settings: &crate::config::Settings) -> Self {
        Self {
            require_verified_email: settings.require_verified_email,
            totp_issuer: settings.totp_issuer.clone(),
            email_verify_ttl: Duration::from_secs(settings.email_verify_ttl_secs),
            password_reset_ttl: Duration::from_secs(settings.password_reset_ttl_secs),
            session_idle: (settings.session_idle_secs > 0)
                .then(|| Duration::from_secs(settings.session_idle_secs)),
            max_sessions: settings.max_sessions_per_user,
        }
    }

    /// How often the idle sweep should run: twice per idle period, between
    /// once a second and once a minute. `None` when the policy is off.
    pub fn sweep_every(&self) -> Option<Duration> {
        self.session_idle
            .map(|idle| (idle / 2).clamp(Duration::from_secs(1), Duration::from_secs(60)))
    }
}

impl Accounts {
    /// Records that `session` was used (idle policy on). Writes to the store
    /// at most once per quarter of the idle period per session.
    ///
    /// A failed write is logged, not returned: the request it came with is
    /// fine, and the session at worst looks idle a little early.
    pub(super) async fn touch(&self, session: SessionId) {
        let Some(idle) = self.policy.session_idle else {
            return;
        };
        let every = (idle / 4).min(Duration::from_secs(60));
        let now = Instant::now();
        let due = match self.touched.get(&session) {
            Some(last) => now.duration_since(*last) >= every,
            None => true,
        };
        if due {
            self.touched.insert(session, now);
            if let Err(e) = self.store.touch_session(session, Utc::now(), None).await {
                tracing::warn!(error = %e, %session, "session use not recorded");
            }
        }
    }

    /// Whether the refresh token belongs to a live session that has been
    /// idle too long; such a session is revoked here.
    pub(super) async fn refresh_of_idle_session(
        &self,
        token_hash: &str,
    ) -> Result<bool, AccountError> {
        let Some(idle) = self.policy.session_idle else {
            return Ok(false);
        };
        let Some(session) = self.store.session_by_refresh_token(token_hash).await? else {
            return Ok(false);
        };
        let cutoff = Utc::now() - chrono::Duration::from_std(idle).unwrap_or_default();
        if session.revoked_at.is_some() || session.last_seen_at >= cutoff {
            return Ok(false);
        }
        self.revoke_idle(session.id).await?;
        Ok(true)
    }

    /// Revokes an idle session (its sockets close) and audits it.
    async fn revoke_idle(&self, session: SessionId) -> Result<(), AccountError> {
        self.touched.remove(&session);
        if self.revoke(session, "idle").await? {
            self.audit(
                "session_revoke",
                None,
                Some(("session", session.to_string())),
                &Client::default(),
                json!({"reason": "idle"}),
            )
            .await;
        }
        Ok(())
    }

    /// Revokes every live session unused for `session_idle_secs` (their
    /// sockets close); returns how many. Nothing when the policy is off.
    pub async fn sweep_idle_sessions(&self) -> Result<usize, AccountError> {
        let Some(idle) = self.policy.session_idle else {
            return Ok(0);
        };
        let cutoff = Utc::now() - chrono::Duration::from_std(idle).unwrap_or_default();
        let idle_sessions = self.store.idle_sessions(cutoff, SWEEP_BATCH).await?;
        for &session in &idle_sessions {
            self.revoke_idle(session).await?;
        }
        // Forget touch times of sessions gone quiet (memory stays flat).
        let stale = Instant::now() - idle.min(Duration::from_secs(3600));
        self.touched.retain(|_, last| *last > stale);
        Ok(idle_sessions.len())
    }

    /// With `max_sessions_per_user` set, revokes the oldest live sessions
    /// of `user` so that one more fits under the cap.
    pub(super) async fn make_room_for_a_session(
        &self,
        user: UserId,
        client: &Client,
    ) -> Result<(), AccountError> {
        let max = self.policy.max_sessions;
        if max == 0 {
            return Ok(());
        }
        let mut live = Vec::new();
        let mut after = None;
        loop {
            let page = self.store.list_live_sessions(user, after, PAGE).await?;
            let full = page.len() == PAGE as usize;
            after = page.last().map(|s| s.id);
            live.extend(page);
            if !full {
                break;
            }
        }
        // Newest first: keep the newest `max - 1`, the new one makes `max`.
        let keep = usize::try_from(max - 1).unwrap_or(usize::MAX);
        for session in live.iter().skip(keep) {
            self.revoke(session.id, "max_sessions").await?;
            self.audit(
                "session_revoke",
                Some(user),
                Some(("session", session.id.to_string())),
                client,
                json!({"reason": "max_sessions_per_user", "max": max}),
            )
            .await;
        }
        Ok(())
    }
}
