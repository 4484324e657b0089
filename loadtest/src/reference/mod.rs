//! The minimal reference broadcast server `calibrate` compares Parley with.
//!
//! It speaks just enough of Parley's protocol for the harness (`ready`,
//! `message.send` → `ack` + `message.created`, `resume` → `resumed`, other
//! requests → `ack`): tokio + tokio-tungstenite, one room, no auth, no
//! persistence. Each message is serialised once and the same bytes are
//! queued to every socket; one writer task per socket feeds up to 64 queued
//! frames and flushes once; a full queue (1024) drops the socket.
//!
//! By default `calibrate` runs it in its own process, like Parley: the
//! harness re-executes itself as `parley-loadtest reference-server`
//! ([`ReferenceChild`]), which prints one JSON line on stdout with its
//! address, room and pid ([`ReadyLine`]) and serves until its stdin
//! closes, SIGTERM, ctrl-c, or `--max-secs`. [`Reference`] runs the same
//! server on a runtime of its own inside the harness process
//! (`calibrate --reference-in-process`).
//!
//! The files: this one holds the subcommand's arguments and the address
//! line; `process` the server's own process and the harness's handle on
//! it; `in_process` the same server on a runtime inside the harness; `hub`
//! the server itself (the room, the accept loop, one socket's session).

use std::net::SocketAddr;

use clap::Args;
use parley_actors::domain::RoomId;
use serde::{Deserialize, Serialize};

mod hub;
mod in_process;
mod process;

pub use in_process::Reference;
pub use process::{ReferenceChild, server_main};

/// `reference-server`.
#[derive(Debug, Clone, Args)]
pub struct ReferenceServerArgs {
    /// Address to listen on (port 0: any free port; the bound address is
    /// printed). Loopback only unless `--allow-remote`.
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
    /// Worker threads of the server's runtime.
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// Stop after this many seconds whatever happens.
    #[arg(long, default_value_t = 3600)]
    pub max_secs: u64,
    /// Keep serving when stdin closes (by default a closed stdin stops the
    /// server, so that it never outlives the harness that started it).
    #[arg(long)]
    pub ignore_stdin: bool,
}

/// What `reference-server` prints on stdout once it listens, as the one
/// line `{"reference_server":{…}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReferenceReady {
    /// The bound address.
    pub addr: SocketAddr,
    /// The one room every socket is in.
    pub room: RoomId,
    /// The server's process id (for RSS/CPU from /proc).
    pub pid: u32,
    /// Worker threads of its runtime.
    pub threads: usize,
    /// Its soft open-file limit, when it could be read.
    pub nofile: Option<u64>,
    /// Its maximum lifetime, seconds.
    pub max_secs: u64,
}

/// The line's envelope: a key no other output starts with.
#[derive(Debug, Serialize, Deserialize)]
struct ReadyLine {
    reference_server: ReferenceReady,
}

impl ReferenceReady {
    /// The line to print (no newline).
    pub fn to_line(&self) -> String {
        serde_json::to_string(&ReadyLine {
            reference_server: self.clone(),
        })
        .unwrap_or_default()
    }

    /// Parses the line; `None` for any other line.
    pub fn parse_line(line: &str) -> Option<Self> {
        serde_json::from_str::<ReadyLine>(line.trim())
            .ok()
            .map(|l| l.reference_server)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ready() -> ReferenceReady {
        ReferenceReady {
            addr: "127.0.0.1:40123".parse().unwrap(),
            room: RoomId::new(),
            pid: 4242,
            threads: 2,
            nofile: Some(20_000),
            max_secs: 3600,
        }
    }

    #[test]
    fn the_address_line_round_trips() {
        let r = ready();
        let line = r.to_line();
        assert!(!line.contains('\n'));
        assert!(line.starts_with(r#"{"reference_server":{"addr":"127.0.0.1:40123","room":""#));
        assert_eq!(ReferenceReady::parse_line(&line), Some(r.clone()));
        // With the newline and spaces a reader may leave.
        assert_eq!(
            ReferenceReady::parse_line(&format!("  {line}\r\n")),
            Some(r)
        );
    }

    #[test]
    fn the_address_line_is_parsed_from_its_fields() {
        let line = r#"{"reference_server":{"addr":"[::1]:8081","room":"0190f1c2-7d2e-7000-8000-000000000001","pid":7,"threads":4,"nofile":null,"max_secs":60}}"#;
        let r = ReferenceReady::parse_line(line).unwrap();
        assert_eq!(r.addr, "[::1]:8081".parse().unwrap());
        assert_eq!(r.room.to_string(), "0190f1c2-7d2e-7000-8000-000000000001");
        assert_eq!((r.pid, r.threads, r.nofile, r.max_secs), (7, 4, None, 60));
    }

    #[test]
    fn other_lines_are_not_the_address_line() {
        for line in [
            "",
            "reference server 7 on 127.0.0.1:1",
            "{}",
            r#"{"addr":"127.0.0.1:1"}"#,
            r#"{"reference_server":{"addr":"127.0.0.1:1"}}"#,
            r#"{"reference_server":{"addr":"nowhere","room":"0190f1c2-7d2e-7000-8000-000000000001","pid":7,"threads":4,"nofile":null,"max_secs":60}}"#,
        ] {
            assert_eq!(ReferenceReady::parse_line(line), None, "{line}");
        }
    }
}
