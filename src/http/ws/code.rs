//! Close codes the socket endpoint sends beside the protocol's own
//! (`parley_actors::protocol::close`: going away, policy, too big, idle,
//! unauthenticated, revoked, slow consumer).

/// The socket ended normally (the client left).
pub const NORMAL: u16 = 1000;
/// A text frame was not valid UTF-8 (RFC 6455, 7.4.1).
pub const INVALID_PAYLOAD: u16 = 1007;
/// The server could not serve the socket (its connection actor is gone or
/// would not start).
pub const SERVER_ERROR: u16 = 1011;
