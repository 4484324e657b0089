//! Close codes the socket endpoint sends beside the protocol's own
//! (`parley_actors::protocol::close`: going away, policy, too big, idle,
//! unauthenticated, revoked, slow consumer).

/// The socket ended normally (the client left).
pub const NORMAL: u16 = 1000;
/// The server could not serve the socket (its connection actor is gone or
/// would not start).
pub const SERVER_ERROR: u16 = 1011;
