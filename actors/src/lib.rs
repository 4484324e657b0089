//! Parley's realtime core.
//!
//! This crate knows nothing of HTTP or SQL: it holds the validated domain
//! types, the protocol frames, the storage trait the server's adapters
//! implement, and the actor tree. The server (`parley`) and the load
//! harness (`parley-loadtest`) both build on it.
//!
//! The server speaks to the core through [`Realtime`] (the facade) and
//! [`room::Rooms`] (a typed handle per room). Inside, actors share
//! `shared` state and publish through the [`broker::Broker`] seam;
//! [`sockets`] holds this node's sockets and their bounded outboxes.

#![warn(missing_docs)]

mod backlog;
pub mod blocks;
pub mod broker;
pub mod config;
pub mod connection;
pub mod domain;
pub mod error;
pub mod group_commit;
pub mod presence;
pub mod protocol;
pub mod realtime;
pub mod room;
mod shared;
pub mod sockets;
pub mod store;
mod supervisor;
pub mod telemetry;

#[cfg(test)]
mod tests;

pub use error::ChatError;
pub use realtime::{Realtime, RealtimeConfig};
