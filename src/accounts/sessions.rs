//! Sessions: logout, the caller's session list, revocations, the profile.

use chrono::Utc;
use parley_actors::domain::{SessionId, UserId};
use parley_actors::store::{Session, User};
use serde_json::json;

use super::{AccountError, Accounts, Client};

impl Accounts {
    pub(super) async fn revoke(
        &self,
        session: SessionId,
        reason: &str,
    ) -> Result<bool, AccountError> {
        let revoked = self
            .store
            .revoke_session(session, reason, Utc::now())
            .await?;
        self.forget(session);
        Ok(revoked)
    }

    /// Revokes every session of `user` but `keep`; returns how many.
    pub(super) async fn revoke_others(
        &self,
        user: UserId,
        keep: SessionId,
        reason: &str,
    ) -> Result<usize, AccountError> {
        let ids = self
            .store
            .revoke_user_sessions(user, Some(keep), reason, Utc::now())
            .await?;
        for id in &ids {
            self.forget(*id);
        }
        Ok(ids.len())
    }

    /// Ends `session` of `user` (the caller's own).
    pub async fn logout(
        &self,
        user: UserId,
        session: SessionId,
        client: &Client,
    ) -> Result<(), AccountError> {
        self.revoke(session, "logout").await?;
        self.audit(
            "logout",
            Some(user),
            Some(("session", session.to_string())),
            client,
            json!({}),
        )
        .await;
        Ok(())
    }

    /// Revokes every session of a user (suspension, ban); returns how many.
    pub async fn revoke_all_sessions(
        &self,
        user: UserId,
        reason: &str,
    ) -> Result<usize, AccountError> {
        let ids = self
            .store
            .revoke_user_sessions(user, None, reason, Utc::now())
            .await?;
        for id in &ids {
            self.forget(*id);
        }
        Ok(ids.len())
    }

    /// A user's live sessions, newest first.
    pub async fn sessions(
        &self,
        user: UserId,
        after: Option<SessionId>,
        limit: u32,
    ) -> Result<Vec<Session>, AccountError> {
        Ok(self.store.list_live_sessions(user, after, limit).await?)
    }

    /// Revokes one of `user`'s sessions ([`AccountError::NotFound`] when
    /// it is not theirs or already revoked).
    pub async fn revoke_session(
        &self,
        user: UserId,
        session: SessionId,
        client: &Client,
    ) -> Result<(), AccountError> {
        let found = self.store.session_by_id(session).await?;
        match found {
            Some(s) if s.user_id == user && s.revoked_at.is_none() => {}
            _ => return Err(AccountError::NotFound),
        }
        self.revoke(session, "revoked").await?;
        self.audit(
            "session_revoke",
            Some(user),
            Some(("session", session.to_string())),
            client,
            json!({}),
        )
        .await;
        Ok(())
    }

    /// Revokes any user's session for an admin, through the same path as
    /// a user's own revocation (its sockets close with 4003 at once);
    /// returns the session as it was. [`AccountError::NotFound`] when it
    /// is unknown or already revoked.
    pub async fn revoke_any_session(&self, session: SessionId) -> Result<Session, AccountError> {
        let found = match self.store.session_by_id(session).await? {
            Some(s) if s.revoked_at.is_none() => s,
            _ => return Err(AccountError::NotFound),
        };
        if !self.revoke(session, "admin").await? {
            // Revoked by someone else in the meantime.
            return Err(AccountError::NotFound);
        }
        Ok(found)
    }

    /// Revokes every session of `user` but `current`; returns how many.
    pub async fn revoke_other_sessions(
        &self,
        user: UserId,
        current: SessionId,
        client: &Client,
    ) -> Result<usize, AccountError> {
        let revoked = self.revoke_others(user, current, "revoked").await?;
        self.audit(
            "session_revoke",
            Some(user),
            Some(("user", user.to_string())),
            client,
            json!({"revoked_sessions": revoked, "all_but_current": true}),
        )
        .await;
        Ok(revoked)
    }

    /// A user's own account.
    pub async fn profile(&self, user: UserId) -> Result<User, AccountError> {
        self.store
            .user_by_id(user)
            .await?
            .ok_or(AccountError::NotFound)
    }
}
