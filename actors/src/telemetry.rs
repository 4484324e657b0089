//! Metric names of the realtime core (the server's `telemetry` module
//! installs the recorder).

/// Gauge: open, authenticated WebSocket connections.
pub const WS_CONNECTIONS: &str = "ws_connections";
/// Gauge: room actors alive.
pub const ROOMS_ACTIVE: &str = "rooms_active";
/// Gauge: users with at least one connection.
pub const USERS_ONLINE: &str = "users_online";
/// Counter: frames in (`direction` = in|out) by `type`.
pub const WS_EVENTS: &str = "ws_events_total";
/// Histogram (seconds): from a room event's creation to the last socket queue it reached.
pub const FANOUT_DURATION: &str = "fanout_duration_seconds";
/// Counter: ephemeral events shed because a socket's queue was full.
pub const SHED: &str = "ws_events_shed_total";
/// Counter: sockets closed with 4009 because their durable queue was full.
pub const SLOW_CONSUMER_CLOSES: &str = "ws_slow_consumer_closes_total";
/// Counter: client frames refused by the per-connection rate limit.
pub const WS_RATE_LIMITED: &str = "ws_rate_limited_total";
/// Gauge: messages waiting in an actor's mailbox, by `actor` kind (sampled).
pub const MAILBOX_DEPTH: &str = "actor_mailbox_depth";
/// Counter: actors that failed (panicked) and were cleaned up, by `actor`.
pub const ACTOR_FAILURES: &str = "actor_failures_total";
/// Counter: WebSocket closes by `code`.
pub const WS_CLOSES: &str = "ws_closes_total";
/// Counter: events queued to sockets (one per recipient socket), by `type`.
pub const DELIVERIES: &str = "ws_deliveries_total";
/// Counter: chat messages stored (new, not idempotent retries).
pub const MESSAGES_STORED: &str = "messages_stored_total";
/// Histogram: messages stored per transaction by a room (group commit).
pub const SEND_BATCH: &str = "room_send_batch_size";
/// Histogram: messages stored per transaction across rooms (group commit).
pub const COMMIT_MESSAGES: &str = "message_commit_size";
/// Histogram (seconds): how long one group commit took in the store.
pub const COMMIT_DURATION: &str = "message_commit_duration_seconds";
