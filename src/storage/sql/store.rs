//! The store traits the actors call, handed to the record files: each
//! method here only forwards to the `SqlStore` method of the same name in
//! `users.rs`, `rooms.rs`, `messages.rs` …, in the traits' order.

use std::net::IpAddr;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use parley_actors::domain::{
    Emoji, InviteId, InviteStatus, MessageBody, MessageId, Role, RoomId, RoomRole, SessionId,
    UserId, UserStatus,
};
use parley_actors::store::{
    AuditEntry, AuditFilter, Block, ChatStore, Created, HistoryQuery, Invite, LoginFailure, Member,
    Membership, Message, NewAccountToken, NewAuditEntry, NewInvite, NewMessage, NewRefreshToken,
    NewRoom, NewSession, NewUser, PoolStats, ProfilePatch, RefreshOutcome, Report, Room, RoomPatch,
    Session, Store, StoreResult, TotpState, User, UserActivity, UserFilter,
};

use parley_actors::settings::UserSettings;

use super::{Run, SqlStore};
use crate::storage::errors::db_err;

#[async_trait]
impl ChatStore for SqlStore {
    // ---- rooms ----------------------------------------------------------
    async fn create_room(&self, new: NewRoom) -> StoreResult<Room> {
        SqlStore::create_room(self, new).await
    }

    async fn get_or_create_direct_room(
        &self,
        id: RoomId,
        a: UserId,
        b: UserId,
        at: DateTime<Utc>,
    ) -> StoreResult<(Room, bool)> {
        SqlStore::get_or_create_direct_room(self, id, a, b, at).await
    }

    async fn room_by_id(&self, id: RoomId) -> StoreResult<Option<Room>> {
        SqlStore::room_by_id(self, id).await
    }

    async fn list_public_rooms(
        &self,
        q: Option<&str>,
        after: Option<RoomId>,
        limit: u32,
    ) -> StoreResult<Vec<Room>> {
        SqlStore::list_public_rooms(self, q, after, limit).await
    }

    async fn list_memberships(&self, user_id: UserId) -> StoreResult<Vec<Membership>> {
        SqlStore::list_memberships(self, user_id).await
    }

    async fn member_last_seqs(&self, user_id: UserId) -> StoreResult<Vec<(RoomId, i64)>> {
        SqlStore::member_last_seqs(self, user_id).await
    }

    async fn update_room(
        &self,
        id: RoomId,
        patch: RoomPatch,
        at: DateTime<Utc>,
    ) -> StoreResult<Option<Room>> {
        SqlStore::update_room(self, id, patch, at).await
    }

    async fn delete_room(&self, id: RoomId) -> StoreResult<bool> {
        SqlStore::delete_room(self, id).await
    }

    // ---- members --------------------------------------------------------
    async fn add_member(
        &self,
        room_id: RoomId,
        user_id: UserId,
        role: RoomRole,
        at: DateTime<Utc>,
    ) -> StoreResult<bool> {
        SqlStore::add_member(self, room_id, user_id, role, at).await
    }

    async fn member(&self, room_id: RoomId, user_id: UserId) -> StoreResult<Option<Member>> {
        SqlStore::member(self, room_id, user_id).await
    }

    async fn list_members(&self, room_id: RoomId) -> StoreResult<Vec<Member>> {
        SqlStore::list_members(self, room_id).await
    }

    async fn users_sharing_rooms(&self, user_id: UserId) -> StoreResult<Vec<UserId>> {
        SqlStore::users_sharing_rooms(self, user_id).await
    }

    async fn update_member_role(
        &self,
        room_id: RoomId,
        user_id: UserId,
        role: RoomRole,
    ) -> StoreResult<bool> {
        SqlStore::update_member_role(self, room_id, user_id, role).await
    }

    async fn set_read_marker(
        &self,
        room_id: RoomId,
        user_id: UserId,
        seq: i64,
    ) -> StoreResult<Option<i64>> {
        SqlStore::set_read_marker(self, room_id, user_id, seq).await
    }

    async fn remove_member(&self, room_id: RoomId, user_id: UserId) -> StoreResult<bool> {
        SqlStore::remove_member(self, room_id, user_id).await
    }

    async fn ban_member(
        &self,
        room_id: RoomId,
        user_id: UserId,
        banned_by: UserId,
        at: DateTime<Utc>,
    ) -> StoreResult<bool> {
        SqlStore::ban_member(self, room_id, user_id, banned_by, at).await
    }

    async fn is_banned(&self, room_id: RoomId, user_id: UserId) -> StoreResult<bool> {
        SqlStore::is_banned(self, room_id, user_id).await
    }

    async fn unban_member(&self, room_id: RoomId, user_id: UserId) -> StoreResult<bool> {
        SqlStore::unban_member(self, room_id, user_id).await
    }

    // ---- invites --------------------------------------------------------
    async fn create_invite(&self, new: NewInvite) -> StoreResult<Invite> {
        SqlStore::create_invite(self, new).await
    }

    async fn invite_by_id(&self, id: InviteId) -> StoreResult<Option<Invite>> {
        SqlStore::invite_by_id(self, id).await
    }

    async fn list_pending_invites(&self, invitee_id: UserId) -> StoreResult<Vec<Invite>> {
        SqlStore::list_pending_invites(self, invitee_id).await
    }

    async fn respond_invite(
        &self,
        id: InviteId,
        status: InviteStatus,
        at: DateTime<Utc>,
    ) -> StoreResult<bool> {
        SqlStore::respond_invite(self, id, status, at).await
    }

    // ---- messages and reactions -----------------------------------------
    async fn create_messages(&self, batch: Vec<NewMessage>) -> StoreResult<Vec<Created<Message>>> {
        SqlStore::create_messages(self, batch).await
    }

    async fn create_message_groups(
        &self,
        groups: Vec<Vec<NewMessage>>,
    ) -> Vec<StoreResult<Vec<Created<Message>>>> {
        SqlStore::create_message_groups(self, groups).await
    }

    async fn message_by_id(&self, id: MessageId) -> StoreResult<Option<Message>> {
        SqlStore::message_by_id(self, id).await
    }

    async fn list_messages(
        &self,
        room_id: RoomId,
        query: HistoryQuery,
    ) -> StoreResult<Vec<Message>> {
        SqlStore::list_messages(self, room_id, query).await
    }

    async fn search_messages(
        &self,
        user_id: UserId,
        query: &str,
        room_id: Option<RoomId>,
        limit: u32,
    ) -> StoreResult<Vec<Message>> {
        SqlStore::search_messages(self, user_id, query, room_id, limit).await
    }

    async fn update_message_body(
        &self,
        id: MessageId,
        body: MessageBody,
        at: DateTime<Utc>,
    ) -> StoreResult<Option<Message>> {
        SqlStore::update_message_body(self, id, body, at).await
    }

    async fn add_reaction(
        &self,
        message_id: MessageId,
        user_id: UserId,
        emoji: &Emoji,
        at: DateTime<Utc>,
    ) -> StoreResult<bool> {
        SqlStore::add_reaction(self, message_id, user_id, emoji, at).await
    }

    async fn remove_reaction(
        &self,
        message_id: MessageId,
        user_id: UserId,
        emoji: &Emoji,
    ) -> StoreResult<bool> {
        SqlStore::remove_reaction(self, message_id, user_id, emoji).await
    }

    async fn delete_message(
        &self,
        id: MessageId,
        at: DateTime<Utc>,
    ) -> StoreResult<Option<Message>> {
        SqlStore::delete_message(self, id, at).await
    }

    // ---- blocks ---------------------------------------------------------
    async fn create_block(
        &self,
        blocker_id: UserId,
        blocked_id: UserId,
        at: DateTime<Utc>,
    ) -> StoreResult<bool> {
        SqlStore::create_block(self, blocker_id, blocked_id, at).await
    }

    async fn list_blocks(&self, blocker_id: UserId) -> StoreResult<Vec<Block>> {
        SqlStore::list_blocks(self, blocker_id).await
    }

    async fn all_blocks(&self) -> StoreResult<Vec<(UserId, UserId)>> {
        SqlStore::all_blocks(self).await
    }

    async fn delete_block(&self, blocker_id: UserId, blocked_id: UserId) -> StoreResult<bool> {
        SqlStore::delete_block(self, blocker_id, blocked_id).await
    }
}

#[async_trait]
impl Store for SqlStore {
    // ---- health ---------------------------------------------------------
    async fn ping(&self) -> StoreResult<()> {
        sqlx::query("select 1").run(&self.pool).await.map(|_| ())
    }

    async fn close(&self) {
        self.writer.close().await;
        self.pool.close().await;
    }

    fn pool_stats(&self) -> PoolStats {
        PoolStats {
            size: self.pool.size(),
            idle: u32::try_from(self.pool.num_idle()).unwrap_or(u32::MAX),
            max: self.pool.options().get_max_connections(),
        }
    }

    async fn acquire_wait(&self) -> StoreResult<std::time::Duration> {
        let started = std::time::Instant::now();
        let conn = self.pool.acquire().await.map_err(db_err)?;
        let waited = started.elapsed();
        drop(conn);
        Ok(waited)
    }

    // ---- users ----------------------------------------------------------
    async fn create_user(&self, new: NewUser) -> StoreResult<User> {
        SqlStore::create_user(self, new).await
    }

    async fn user_by_id(&self, id: UserId) -> StoreResult<Option<User>> {
        SqlStore::user_by_id(self, id).await
    }

    async fn user_by_login(&self, login: &str) -> StoreResult<Option<User>> {
        SqlStore::user_by_login(self, login).await
    }

    async fn search_users(
        &self,
        viewer: UserId,
        prefix: &str,
        after: Option<&str>,
        limit: u32,
    ) -> StoreResult<Vec<User>> {
        SqlStore::search_users(self, viewer, prefix, after, limit).await
    }

    async fn list_users(
        &self,
        filter: &UserFilter,
        after: Option<UserId>,
        limit: u32,
    ) -> StoreResult<Vec<UserActivity>> {
        SqlStore::list_users(self, filter, after, limit).await
    }

    async fn count_active_admins(&self) -> StoreResult<u64> {
        SqlStore::count_active_admins(self).await
    }

    async fn record_login_failure(
        &self,
        id: UserId,
        max_failures: u32,
        lock_until: DateTime<Utc>,
    ) -> StoreResult<LoginFailure> {
        SqlStore::record_login_failure(self, id, max_failures, lock_until).await
    }

    async fn clear_login_failures(&self, id: UserId) -> StoreResult<()> {
        SqlStore::clear_login_failures(self, id).await
    }

    async fn update_password_hash(
        &self,
        id: UserId,
        password_hash: &str,
        at: DateTime<Utc>,
    ) -> StoreResult<()> {
        SqlStore::update_password_hash(self, id, password_hash, at).await
    }

    async fn update_user_role_status(
        &self,
        id: UserId,
        role: Option<Role>,
        status: Option<UserStatus>,
        at: DateTime<Utc>,
    ) -> StoreResult<()> {
        SqlStore::update_user_role_status(self, id, role, status, at).await
    }

    async fn update_user_profile(
        &self,
        id: UserId,
        patch: ProfilePatch,
        at: DateTime<Utc>,
    ) -> StoreResult<Option<User>> {
        SqlStore::update_user_profile(self, id, patch, at).await
    }

    // ---- settings -------------------------------------------------------
    async fn user_settings(&self, id: UserId) -> StoreResult<Option<UserSettings>> {
        SqlStore::user_settings(self, id).await
    }

    async fn all_user_settings(&self) -> StoreResult<Vec<(UserId, UserSettings)>> {
        SqlStore::all_user_settings(self).await
    }

    async fn put_user_settings(
        &self,
        id: UserId,
        settings: &UserSettings,
        at: DateTime<Utc>,
    ) -> StoreResult<()> {
        SqlStore::put_user_settings(self, id, settings, at).await
    }

    // ---- two-factor authentication --------------------------------------
    async fn totp_state(&self, user_id: UserId) -> StoreResult<Option<TotpState>> {
        SqlStore::totp_state(self, user_id).await
    }

    async fn set_totp_secret(
        &self,
        user_id: UserId,
        secret: &str,
        at: DateTime<Utc>,
    ) -> StoreResult<bool> {
        SqlStore::set_totp_secret(self, user_id, secret, at).await
    }

    async fn enable_totp(
        &self,
        user_id: UserId,
        step: u64,
        recovery_code_hashes: &[String],
        at: DateTime<Utc>,
    ) -> StoreResult<bool> {
        SqlStore::enable_totp(self, user_id, step, recovery_code_hashes, at).await
    }

    async fn claim_totp_step(&self, user_id: UserId, step: u64) -> StoreResult<bool> {
        SqlStore::claim_totp_step(self, user_id, step).await
    }

    async fn use_recovery_code(
        &self,
        user_id: UserId,
        code_hash: &str,
        at: DateTime<Utc>,
    ) -> StoreResult<bool> {
        SqlStore::use_recovery_code(self, user_id, code_hash, at).await
    }

    async fn recovery_codes_left(&self, user_id: UserId) -> StoreResult<u32> {
        SqlStore::recovery_codes_left(self, user_id).await
    }

    async fn disable_totp(&self, user_id: UserId, at: DateTime<Utc>) -> StoreResult<()> {
        SqlStore::disable_totp(self, user_id, at).await
    }

    // ---- mailed one-time tokens, email verification ------------------------
    async fn create_account_token(&self, new: NewAccountToken) -> StoreResult<()> {
        SqlStore::create_account_token(self, new).await
    }

    async fn consume_account_token(
        &self,
        token_hash: &str,
        purpose: &str,
        at: DateTime<Utc>,
    ) -> StoreResult<Option<(UserId, String)>> {
        SqlStore::consume_account_token(self, token_hash, purpose, at).await
    }

    async fn mark_email_verified(&self, user_id: UserId, at: DateTime<Utc>) -> StoreResult<()> {
        SqlStore::mark_email_verified(self, user_id, at).await
    }

    // ---- sessions and refresh tokens ------------------------------------
    async fn create_session(
        &self,
        new: NewSession,
        refresh: NewRefreshToken,
    ) -> StoreResult<Session> {
        SqlStore::create_session(self, new, refresh).await
    }

    async fn session_by_id(&self, id: SessionId) -> StoreResult<Option<Session>> {
        SqlStore::session_by_id(self, id).await
    }

    async fn list_live_sessions(
        &self,
        user_id: UserId,
        after: Option<SessionId>,
        limit: u32,
    ) -> StoreResult<Vec<Session>> {
        SqlStore::list_live_sessions(self, user_id, after, limit).await
    }

    async fn sessions_revoked_since(
        &self,
        since: DateTime<Utc>,
    ) -> StoreResult<Vec<(SessionId, UserId)>> {
        SqlStore::sessions_revoked_since(self, since).await
    }

    async fn session_by_refresh_token(&self, token_hash: &str) -> StoreResult<Option<Session>> {
        SqlStore::session_by_refresh_token(self, token_hash).await
    }

    async fn idle_sessions(
        &self,
        before: DateTime<Utc>,
        limit: u32,
    ) -> StoreResult<Vec<SessionId>> {
        SqlStore::idle_sessions(self, before, limit).await
    }

    async fn rotate_refresh_token(
        &self,
        token_hash: &str,
        replacement: NewRefreshToken,
        now: DateTime<Utc>,
    ) -> StoreResult<RefreshOutcome> {
        SqlStore::rotate_refresh_token(self, token_hash, replacement, now).await
    }

    async fn touch_session(
        &self,
        id: SessionId,
        at: DateTime<Utc>,
        ip: Option<IpAddr>,
    ) -> StoreResult<()> {
        SqlStore::touch_session(self, id, at, ip).await
    }

    async fn revoke_session(
        &self,
        id: SessionId,
        reason: &str,
        at: DateTime<Utc>,
    ) -> StoreResult<bool> {
        SqlStore::revoke_session(self, id, reason, at).await
    }

    async fn revoke_user_sessions(
        &self,
        user_id: UserId,
        keep: Option<SessionId>,
        reason: &str,
        at: DateTime<Utc>,
    ) -> StoreResult<Vec<SessionId>> {
        SqlStore::revoke_user_sessions(self, user_id, keep, reason, at).await
    }

    // ---- reports --------------------------------------------------------
    async fn create_report(&self, report: Report) -> StoreResult<Report> {
        SqlStore::create_report(self, report).await
    }

    async fn list_reports(&self, limit: u32) -> StoreResult<Vec<Report>> {
        SqlStore::list_reports(self, limit).await
    }

    // ---- audit log ------------------------------------------------------
    async fn create_audit_entry(&self, entry: NewAuditEntry) -> StoreResult<()> {
        SqlStore::create_audit_entry(self, entry).await
    }

    async fn list_audit_entries(
        &self,
        action: Option<&str>,
        limit: u32,
    ) -> StoreResult<Vec<AuditEntry>> {
        SqlStore::list_audit_entries(self, action, limit).await
    }

    async fn list_audit_page(
        &self,
        filter: &AuditFilter,
        after: Option<parley_actors::domain::AuditId>,
        limit: u32,
    ) -> StoreResult<Vec<AuditEntry>> {
        SqlStore::list_audit_page(self, filter, after, limit).await
    }
}
