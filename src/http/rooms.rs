//! `/rooms`, `/invites` and `/dm`: rooms, membership and moderation.
//!
//! Reads go to the store; every change goes through the room's actor (or
//! the realtime core), which stores it and tells the members live. The
//! handlers sit in one file per concern under `rooms/`; this file holds the
//! one router and the helpers other resources share.

use parley_actors::domain::UserId;
use serde::Deserialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::error::ApiError;
use super::state::AppState;

mod dm;
mod invites;
mod members;
mod moderation;
mod room;

pub use invites::InviteBody;
pub use members::{Joined, MemberView};
pub use moderation::RoleBody;
pub use room::{CreateRoom, MyRoom, PublicQuery, RoomBody, UpdateRoom};

/// Routes (authenticated).
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(room::create_room, room::list_my_rooms))
        .routes(routes!(room::list_public_rooms))
        .routes(routes!(
            room::get_room,
            room::update_room,
            room::delete_room
        ))
        .routes(routes!(members::join_room))
        .routes(routes!(members::leave_room))
        .routes(routes!(invites::invite))
        .routes(routes!(invites::list_invites))
        .routes(routes!(invites::accept_invite))
        .routes(routes!(invites::decline_invite))
        .routes(routes!(members::list_members))
        .routes(routes!(moderation::kick))
        .routes(routes!(moderation::ban, moderation::unban))
        .routes(routes!(moderation::set_role))
        .routes(routes!(dm::open_dm))
}

/// Parses a path id; an id that is not a UUID names nothing, so 404.
pub fn path_id<T: std::str::FromStr>(raw: &str) -> Result<T, ApiError> {
    raw.parse().map_err(|_| ApiError::NotFound)
}

/// For `Option<Option<T>>` fields with `#[serde(default)]`: a field that
/// is present (even as `null`) becomes `Some`, an omitted one stays `None`.
pub(super) fn double_option<'de, D: serde::Deserializer<'de>>(
    de: D,
) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(de).map(Some)
}

/// `{user_id}` in invite, DM and block bodies.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserRef {
    #[schema(format = Uuid)]
    pub user_id: String,
}

impl UserRef {
    /// The id, or a 422 naming `user_id`.
    pub fn id(&self) -> Result<UserId, ApiError> {
        self.user_id
            .parse()
            .map_err(|_| ApiError::field("user_id", "invalid_id", "user_id must be a user id"))
    }
}
