//! The WebSocket protocol: one JSON object per text frame, discriminated by
//! `"type"` (see `docs/protocol.md`).
//!
//! [`ClientFrame`] is what clients send; [`ServerFrame`] what the server
//! sends. Both derive `Serialize` and `Deserialize`, so the load harness and
//! the tests speak the protocol with the same types as the server.

mod client;
pub mod close;
mod server;
#[cfg(test)]
mod tests;
mod views;

pub use client::{CLIENT_TYPES, ClientFrame};
pub use server::ServerFrame;
pub use views::{InviteView, MessageView, PublicUser, ReadyRoom, ReadyUser, RoomView, wire_time};
