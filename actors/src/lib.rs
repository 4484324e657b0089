//! Parley's realtime core.
//!
//! This crate knows nothing of HTTP or SQL: it holds the validated domain
//! types, the storage trait the server's adapters implement, the protocol
//! frames and the actor tree. The server (`parley`) and the load harness
//! (`parley-loadtest`) both build on it.

pub mod blocks;
pub mod broker;
pub mod connection;
pub mod domain;
pub mod error;
pub mod presence;
pub mod protocol;
pub mod realtime;
pub mod room;
pub mod rooms;
pub mod sockets;
pub mod store;
pub mod telemetry;
pub mod writer;

pub use error::ChatError;
pub use realtime::{Realtime, RealtimeConfig};
