//! Room invites: at most one pending per invitee and room, answered once.

use chrono::{DateTime, Utc};
use parley_actors::domain::{InviteId, InviteStatus, UserId};
use parley_actors::store::{Invite, NewInvite, StoreResult};

use crate::storage::rows::{InviteRow, to_ms};

use super::{Fetch, Run, SqlStore};

impl SqlStore {
    /// Stores a pending invite. A pending invite for the same room and
    /// invitee already there is `Conflict { field: "user_id" }`.
    pub(super) async fn create_invite(&self, new: NewInvite) -> StoreResult<Invite> {
        // A second pending invite hits the partial unique index,
        // which error mapping reports as `user_id`.
        sqlx::query_as::<_, InviteRow>(concat!(
            "insert into invites (id, room_id, inviter_id, invitee_id, status, \
               created_at) \
             values ($1, $2, $3, $4, 'pending', $5) \
             returning ",
            invite_columns!()
        ))
        .bind(new.id.to_string())
        .bind(new.room_id.to_string())
        .bind(new.inviter_id.to_string())
        .bind(new.invitee_id.to_string())
        .bind(to_ms(new.created_at))
        .one(&self.pool)
        .await?
        .into_invite()
    }

    /// An invite by id.
    pub(super) async fn invite_by_id(&self, id: InviteId) -> StoreResult<Option<Invite>> {
        sqlx::query_as::<_, InviteRow>(concat!(
            "select ",
            invite_columns!(),
            " from invites where id = $1"
        ))
        .bind(id.to_string())
        .optional_into(&self.pool, InviteRow::into_invite)
        .await
    }

    /// A user's pending invites, newest first.
    pub(super) async fn list_pending_invites(
        &self,
        invitee_id: UserId,
    ) -> StoreResult<Vec<Invite>> {
        sqlx::query_as::<_, InviteRow>(concat!(
            "select ",
            invite_columns!(),
            " from invites \
             where invitee_id = $1 and status = 'pending' \
             order by created_at desc, id desc"
        ))
        .bind(invitee_id.to_string())
        .all_into(&self.pool, InviteRow::into_invite)
        .await
    }

    /// Accepts or declines a pending invite; `false` when it is not pending.
    pub(super) async fn respond_invite(
        &self,
        id: InviteId,
        status: InviteStatus,
        at: DateTime<Utc>,
    ) -> StoreResult<bool> {
        sqlx::query(
            "update invites set status = $2, responded_at = $3 \
             where id = $1 and status = 'pending'",
        )
        .bind(id.to_string())
        .bind(status.as_str())
        .bind(to_ms(at))
        .changed(&self.pool)
        .await
    }
}
