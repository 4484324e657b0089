//! Closed sets of values: roles, statuses, visibility and report reasons.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::Invalid;

macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $($(#[$vmeta])* $variant),+
        }

        impl $name {
            /// The wire and storage spelling.
            pub fn as_str(&self) -> &'static str {
                match self {
                    $(Self::$variant => $text),+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = Invalid;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                match s {
                    $($text => Ok(Self::$variant),)+
                    _ => Err(Invalid::new("invalid_value", format!("unknown {} `{s}`", stringify!($name)))),
                }
            }
        }
    };
}

string_enum!(
    /// A user's server-wide role.
    Role {
        /// An ordinary account.
        #[default]
        User = "user",
        /// May act on reports.
        Moderator = "moderator",
        /// May use the admin API.
        Admin = "admin",
    }
);

string_enum!(
    /// Why a user is reported.
    ReportReason {
        /// Unwanted advertising or flooding.
        Spam = "spam",
        /// Abusive content.
        Abuse = "abuse",
        /// Targeted harassment.
        Harassment = "harassment",
        /// Anything else (the details say what).
        #[default]
        Other = "other",
    }
);

string_enum!(
    /// Whether an account may sign in.
    UserStatus {
        /// May sign in.
        #[default]
        Active = "active",
        /// Temporarily barred.
        Suspended = "suspended",
        /// Permanently barred.
        Banned = "banned",
    }
);

string_enum!(
    /// Who may find and join a room.
    Visibility {
        /// Listed in `/rooms/public`; anyone may join.
        #[default]
        Public = "public",
        /// By invite only.
        Private = "private",
        /// A direct room between two users.
        Direct = "direct",
    }
);

string_enum!(
    /// A member's role in a room. Ordered: owner > admin > member.
    RoomRole {
        /// An ordinary member.
        #[default]
        Member = "member",
        /// May moderate members below admin and edit the room.
        Admin = "admin",
        /// Created the room; may delete it and set roles.
        Owner = "owner",
    }
);

impl RoomRole {
    /// Rank for comparisons: owner 2, admin 1, member 0.
    pub fn rank(self) -> u8 {
        match self {
            Self::Member => 0,
            Self::Admin => 1,
            Self::Owner => 2,
        }
    }

    /// Admin or owner.
    pub fn is_admin(self) -> bool {
        self.rank() >= 1
    }
}

string_enum!(
    /// An invite's state.
    InviteStatus {
        /// Waiting for the invitee.
        #[default]
        Pending = "pending",
        /// The invitee joined.
        Accepted = "accepted",
        /// The invitee said no.
        Declined = "declined",
    }
);

string_enum!(
    /// What a user shows to others.
    PresenceStatus {
        /// Connected.
        #[default]
        Online = "online",
        /// Connected, away.
        Away = "away",
        /// Connected, do not disturb.
        Dnd = "dnd",
        /// Connected, shown as offline.
        Invisible = "invisible",
        /// Not connected.
        Offline = "offline",
    }
);
