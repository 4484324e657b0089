//! The realtime core's tunables.

use std::time::Duration;

/// Tunables of the realtime core (all configurable in the server).
#[derive(Debug, Clone)]
pub struct RealtimeConfig {
    /// How often a room actor checks whether it is idle.
    pub room_tick: Duration,
    /// A room actor with no requests for this long stops (it restarts on use).
    pub room_idle: Duration,
    /// `expires_in_ms` of typing events.
    pub typing_ttl: Duration,
    /// Typing from one user in one room is sent at most once per this.
    pub typing_coalesce: Duration,
    /// Offline is shown this long after a user's last connection closes.
    pub presence_grace: Duration,
    /// A resume further behind than this many messages gets `resync_required`.
    pub resume_max_gap: u32,
    /// Presence is pushed only through rooms with at most this many sockets
    /// (it grows with the square of a room's size); members lists still show it.
    pub presence_max_room: usize,
    /// Durable events queued per socket before it is closed with 4009.
    pub durable_queue: usize,
    /// Ephemeral events queued per socket before they are shed.
    pub ephemeral_queue: usize,
    /// Longest message body, in characters (at most 4000).
    pub max_body_chars: usize,
    /// Distinct emoji one message may carry; a new one past this is refused.
    pub max_reactions_per_message: usize,
    /// Members one room may have; joins and accepted invites past it are refused.
    pub max_room_members: usize,
}

impl Default for RealtimeConfig {
    fn default() -> Self {
        Self {
            room_tick: Duration::from_secs(30),
            room_idle: Duration::from_secs(300),
            typing_ttl: Duration::from_secs(5),
            typing_coalesce: Duration::from_millis(1000),
            presence_grace: Duration::from_secs(5),
            resume_max_gap: 1000,
            presence_max_room: 1000,
            durable_queue: 1024,
            ephemeral_queue: 64,
            max_body_chars: crate::domain::MessageBody::MAX_CHARS,
            max_reactions_per_message: 50,
            max_room_members: 10_000,
        }
    }
}
