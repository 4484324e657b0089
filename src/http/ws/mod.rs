//! `GET /ws`: per socket one reader (the upgrade's task) and ONE writer
//! task around the socket's bounded `Outbox` queues.
//!
//! - `upgrade.rs`: the upgrade (origin, connection cap, bearer or
//!   first-frame auth), registration with the realtime core, and the
//!   socket's life from there to the closing handshake;
//! - `reader.rs`: reads frames, parses, validates and rate-limits them and
//!   hands them on; answers what it cannot pass on with an `error` frame
//!   and keeps the connection;
//! - `writer.rs`: drains the durable queue first, then the ephemeral one,
//!   feeding several frames before each flush, pings when the heartbeat
//!   asks, and sends the close frame when the socket is told to close
//!   (revocation 4003, slow consumer 4009, …);
//! - `runtime.rs`: [`SocketWriters`], the runtime writer tasks run on.
//!
//! The reader and the writer are generic over `Stream`/`Sink`, so their
//! unit tests drive them with channels instead of sockets.

mod code;
mod reader;
mod runtime;
mod upgrade;
mod writer;

pub use self::runtime::SocketWriters;
pub use self::upgrade::{SocketState, upgrade};
