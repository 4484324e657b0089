//! Parley: a realtime-first, self-hosted chat server.
//!
//! The server is a set of adapters (HTTP, storage, telemetry) around the
//! actor core in `parley-actors`. [`Application`] wires them together.

pub mod accounts;
pub mod auth;
pub mod cli;
pub mod config;
pub mod http;
pub mod mail;
pub mod startup;
pub mod storage;
pub mod telemetry;

pub use config::Settings;
pub use startup::{Application, ShutdownHandle};
