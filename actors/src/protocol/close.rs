//! WebSocket close codes used by the server.

/// An orderly close (the client said goodbye).
pub const NORMAL: u16 = 1000;
/// The server is shutting down.
pub const GOING_AWAY: u16 = 1001;
/// Policy violation: persistent abuse of the rate limit, or too many
/// connections for one user.
pub const POLICY: u16 = 1008;
/// A frame far larger than allowed.
pub const TOO_BIG: u16 = 1009;
/// Nothing heard from the client for two heartbeat intervals.
pub const IDLE: u16 = 4000;
/// Not authenticated, or the auth timeout passed.
pub const UNAUTHENTICATED: u16 = 4001;
/// Session revoked, user suspended or banned.
pub const REVOKED: u16 = 4003;
/// The socket fell too far behind (its durable queue filled).
pub const SLOW_CONSUMER: u16 = 4009;
