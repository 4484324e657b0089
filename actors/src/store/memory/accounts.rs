//! The in-memory store's account side: users, sessions, the audit log,
//! settings and the records the actor core never touches.

use std::net::IpAddr;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::super::{
    AuditEntry, AuditFilter, LoginFailure, NewAccountToken, NewAuditEntry, NewRefreshToken,
    NewSession, NewUser, PoolStats, ProfilePatch, RefreshOutcome, Report, Session, Store,
    StoreError, StoreResult, TotpState, User, UserActivity, UserFilter,
};
use crate::domain::{Role, SessionId, UserId, UserStatus};
use crate::settings::UserSettings;

use super::{MemoryStore, unkept};

#[async_trait]
impl Store for MemoryStore {
    async fn ping(&self) -> StoreResult<()> {
        Ok(())
    }

    async fn close(&self) {}

    fn pool_stats(&self) -> PoolStats {
        // No pool: every call answers at once.
        PoolStats::default()
    }

    async fn acquire_wait(&self) -> StoreResult<std::time::Duration> {
        Ok(std::time::Duration::ZERO)
    }

    async fn create_user(&self, new: NewUser) -> StoreResult<User> {
        let mut data = self.data();
        if data.users.values().any(|u| u.username == new.username) {
            return Err(StoreError::Conflict { field: "username" });
        }
        if data.users.values().any(|u| u.email == new.email) {
            return Err(StoreError::Conflict { field: "email" });
        }
        let user = User {
            id: new.id,
            username: new.username,
            email: new.email,
            password_hash: new.password_hash,
            display_name: None,
            bio: None,
            avatar_url: None,
            role: new.role,
            status: UserStatus::Active,
            two_factor_enabled: false,
            email_verified: false,
            failed_logins: 0,
            locked_until: None,
            created_at: new.created_at,
            updated_at: new.created_at,
        };
        data.users.insert(user.id, user.clone());
        Ok(user)
    }

    async fn user_by_id(&self, id: UserId) -> StoreResult<Option<User>> {
        Ok(self.data().users.get(&id).cloned())
    }

    async fn user_by_login(&self, login: &str) -> StoreResult<Option<User>> {
        let login = login.to_lowercase();
        Ok(self
            .data()
            .users
            .values()
            .find(|u| {
                u.username.as_str().to_lowercase() == login
                    || u.email.as_str().to_lowercase() == login
            })
            .cloned())
    }

    async fn search_users(
        &self,
        viewer: UserId,
        prefix: &str,
        after: Option<&str>,
        limit: u32,
    ) -> StoreResult<Vec<User>> {
        let data = self.data();
        let blocked = |u: UserId| {
            data.blocks.contains_key(&(viewer, u)) || data.blocks.contains_key(&(u, viewer))
        };
        let mut found: Vec<User> = data
            .users
            .values()
            .filter(|u| u.id != viewer && u.status == UserStatus::Active && !blocked(u.id))
            .filter(|u| {
                u.username.as_str().starts_with(prefix)
                    || u.display_name
                        .as_deref()
                        .is_some_and(|d| d.to_lowercase().starts_with(prefix))
            })
            .filter(|u| after.is_none_or(|a| u.username.as_str() > a))
            .cloned()
            .collect();
        found.sort_by(|a, b| a.username.as_str().cmp(b.username.as_str()));
        found.truncate(limit as usize);
        Ok(found)
    }

    async fn list_users(
        &self,
        filter: &UserFilter,
        after: Option<UserId>,
        limit: u32,
    ) -> StoreResult<Vec<UserActivity>> {
        let data = self.data();
        let q = filter.q.as_deref().map(str::to_lowercase);
        // An unknown cursor yields an empty page, as in the SQL stores.
        let after = match after {
            None => None,
            Some(id) => match data.users.get(&id) {
                Some(u) => Some(u.username.as_str().to_owned()),
                None => return Ok(Vec::new()),
            },
        };
        let mut users: Vec<&User> = data
            .users
            .values()
            .filter(|u| filter.status.is_none_or(|s| u.status == s))
            .filter(|u| filter.role.is_none_or(|r| u.role == r))
            .filter(|u| {
                q.as_deref().is_none_or(|q| {
                    u.username.as_str().to_lowercase().contains(q)
                        || u.email.as_str().to_lowercase().contains(q)
                        || u.display_name
                            .as_deref()
                            .is_some_and(|d| d.to_lowercase().contains(q))
                })
            })
            .filter(|u| after.as_deref().is_none_or(|a| u.username.as_str() > a))
            .collect();
        users.sort_by(|a, b| a.username.as_str().cmp(b.username.as_str()));
        users.truncate(limit as usize);
        // Sessions are not kept here: no last-seen time, no open session.
        Ok(users
            .into_iter()
            .map(|u| UserActivity {
                user: u.clone(),
                last_seen_at: None,
                open_sessions: 0,
                messages: data
                    .messages
                    .values()
                    .filter(|m| m.author_id == Some(u.id))
                    .count() as u64,
            })
            .collect())
    }

    async fn count_active_admins(&self) -> StoreResult<u64> {
        Ok(self
            .data()
            .users
            .values()
            .filter(|u| u.role == Role::Admin && u.status == UserStatus::Active)
            .count() as u64)
    }

    async fn record_login_failure(
        &self,
        _id: UserId,
        _max_failures: u32,
        _lock_until: DateTime<Utc>,
    ) -> StoreResult<LoginFailure> {
        Err(unkept("login failures"))
    }

    async fn clear_login_failures(&self, _id: UserId) -> StoreResult<()> {
        Err(unkept("login failures"))
    }

    async fn update_password_hash(
        &self,
        _id: UserId,
        _password_hash: &str,
        _at: DateTime<Utc>,
    ) -> StoreResult<()> {
        Err(unkept("passwords"))
    }

    async fn update_user_role_status(
        &self,
        id: UserId,
        role: Option<Role>,
        status: Option<UserStatus>,
        at: DateTime<Utc>,
    ) -> StoreResult<()> {
        let mut data = self.data();
        let user = data
            .users
            .get_mut(&id)
            .ok_or_else(|| StoreError::Other("no such user".to_owned()))?;
        if let Some(role) = role {
            user.role = role;
        }
        if let Some(status) = status {
            user.status = status;
        }
        user.updated_at = at;
        Ok(())
    }

    async fn update_user_profile(
        &self,
        id: UserId,
        patch: ProfilePatch,
        at: DateTime<Utc>,
    ) -> StoreResult<Option<User>> {
        let mut data = self.data();
        let Some(user) = data.users.get_mut(&id) else {
            return Ok(None);
        };
        if let Some(name) = patch.display_name {
            user.display_name = name;
        }
        if let Some(bio) = patch.bio {
            user.bio = bio;
        }
        user.updated_at = at;
        Ok(Some(user.clone()))
    }

    async fn user_settings(&self, id: UserId) -> StoreResult<Option<UserSettings>> {
        Ok(self.data().settings.get(&id).cloned())
    }

    async fn all_user_settings(&self) -> StoreResult<Vec<(UserId, UserSettings)>> {
        Ok(self
            .data()
            .settings
            .iter()
            .map(|(id, s)| (*id, s.clone()))
            .collect())
    }

    async fn put_user_settings(
        &self,
        id: UserId,
        settings: &UserSettings,
        _at: DateTime<Utc>,
    ) -> StoreResult<()> {
        self.data().settings.insert(id, settings.clone());
        Ok(())
    }

    async fn totp_state(&self, _user_id: UserId) -> StoreResult<Option<TotpState>> {
        Err(unkept("two-factor state"))
    }

    async fn set_totp_secret(
        &self,
        _user_id: UserId,
        _secret: &str,
        _at: DateTime<Utc>,
    ) -> StoreResult<bool> {
        Err(unkept("two-factor state"))
    }

    async fn enable_totp(
        &self,
        _user_id: UserId,
        _step: u64,
        _recovery_code_hashes: &[String],
        _at: DateTime<Utc>,
    ) -> StoreResult<bool> {
        Err(unkept("two-factor state"))
    }

    async fn claim_totp_step(&self, _user_id: UserId, _step: u64) -> StoreResult<bool> {
        Err(unkept("two-factor state"))
    }

    async fn use_recovery_code(
        &self,
        _user_id: UserId,
        _code_hash: &str,
        _at: DateTime<Utc>,
    ) -> StoreResult<bool> {
        Err(unkept("recovery codes"))
    }

    async fn recovery_codes_left(&self, _user_id: UserId) -> StoreResult<u32> {
        Err(unkept("recovery codes"))
    }

    async fn disable_totp(&self, _user_id: UserId, _at: DateTime<Utc>) -> StoreResult<()> {
        Err(unkept("two-factor state"))
    }

    async fn create_account_token(&self, _new: NewAccountToken) -> StoreResult<()> {
        Err(unkept("mailed tokens"))
    }

    async fn consume_account_token(
        &self,
        _token_hash: &str,
        _purpose: &str,
        _at: DateTime<Utc>,
    ) -> StoreResult<Option<(UserId, String)>> {
        Err(unkept("mailed tokens"))
    }

    async fn mark_email_verified(&self, _user_id: UserId, _at: DateTime<Utc>) -> StoreResult<()> {
        Err(unkept("email verification"))
    }

    async fn create_session(
        &self,
        _new: NewSession,
        _refresh: NewRefreshToken,
    ) -> StoreResult<Session> {
        Err(unkept("sessions"))
    }

    async fn session_by_id(&self, _id: SessionId) -> StoreResult<Option<Session>> {
        Err(unkept("sessions"))
    }

    async fn list_live_sessions(
        &self,
        _user_id: UserId,
        _after: Option<SessionId>,
        _limit: u32,
    ) -> StoreResult<Vec<Session>> {
        Err(unkept("sessions"))
    }

    async fn sessions_revoked_since(
        &self,
        _since: DateTime<Utc>,
    ) -> StoreResult<Vec<(SessionId, UserId)>> {
        Err(unkept("sessions"))
    }

    async fn session_by_refresh_token(&self, _token_hash: &str) -> StoreResult<Option<Session>> {
        Err(unkept("sessions"))
    }

    async fn idle_sessions(
        &self,
        _before: DateTime<Utc>,
        _limit: u32,
    ) -> StoreResult<Vec<SessionId>> {
        Err(unkept("sessions"))
    }

    async fn rotate_refresh_token(
        &self,
        _token_hash: &str,
        _replacement: NewRefreshToken,
        _now: DateTime<Utc>,
    ) -> StoreResult<RefreshOutcome> {
        Err(unkept("refresh tokens"))
    }

    async fn touch_session(
        &self,
        _id: SessionId,
        _at: DateTime<Utc>,
        _ip: Option<IpAddr>,
    ) -> StoreResult<()> {
        Err(unkept("sessions"))
    }

    async fn revoke_session(
        &self,
        _id: SessionId,
        _reason: &str,
        _at: DateTime<Utc>,
    ) -> StoreResult<bool> {
        Err(unkept("sessions"))
    }

    async fn revoke_user_sessions(
        &self,
        _user_id: UserId,
        _keep: Option<SessionId>,
        _reason: &str,
        _at: DateTime<Utc>,
    ) -> StoreResult<Vec<SessionId>> {
        Err(unkept("sessions"))
    }

    async fn create_report(&self, report: Report) -> StoreResult<Report> {
        self.data().reports.push(report.clone());
        Ok(report)
    }

    async fn list_reports(&self, limit: u32) -> StoreResult<Vec<Report>> {
        Ok(self
            .data()
            .reports
            .iter()
            .rev()
            .take(limit as usize)
            .cloned()
            .collect())
    }

    async fn create_audit_entry(&self, _entry: NewAuditEntry) -> StoreResult<()> {
        Err(unkept("audit log"))
    }

    async fn list_audit_entries(
        &self,
        _action: Option<&str>,
        _limit: u32,
    ) -> StoreResult<Vec<AuditEntry>> {
        Err(unkept("audit log"))
    }

    async fn list_audit_page(
        &self,
        _filter: &AuditFilter,
        _after: Option<crate::domain::AuditId>,
        _limit: u32,
    ) -> StoreResult<Vec<AuditEntry>> {
        Err(unkept("audit log"))
    }
}
