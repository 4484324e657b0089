//! `parley-loadtest`: the load harness for Parley.
//!
//! It speaks Parley's real protocol (the server's own
//! `parley_actors::protocol` types) against a Parley URL — loopback unless
//! `--allow-remote` — and measures end-to-end latency (every message body
//! carries its send time), deliveries per second, connect and auth times,
//! errors and close codes, and losses: every acked message is expected on
//! every member socket and must be delivered live or recovered through
//! `resume`. See `loadtest/README.md` for each scenario and
//! `loadtest/RESULTS.md` for measured runs.
//!
//! Every run is bounded in count and time and stops by itself.

mod calibrate;
mod client;
mod engine;
mod ledger;
mod procinfo;
mod reference;
mod report;
mod rest;
mod scenarios;
mod servercheck;
mod slo;
mod stats;
mod token;
mod workers;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

/// Load harness for Parley: realistic WebSocket and REST load, end-to-end
/// latency, loss accounting, SLO checks.
#[derive(Debug, Parser)]
#[command(name = "parley-loadtest", version, about)]
pub struct Cli {
    #[command(flatten)]
    pub common: Common,
    #[command(subcommand)]
    pub scenario: Scenario,
}

/// Options every scenario takes.
#[derive(Debug, Clone, Args)]
pub struct Common {
    /// Base URL of the server under test.
    #[arg(
        long,
        global = true,
        env = "PARLEY_LOADTEST_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    pub url: String,
    /// Allow a non-loopback target.
    #[arg(long, global = true)]
    pub allow_remote: bool,
    /// Load users as JSON lines (`parley user seed --out FILE`).
    #[arg(long, global = true)]
    pub users: Option<PathBuf>,
    /// The `parley` binary, to provision users with `parley user seed`
    /// (needs `--data-dir`; used when `--users` is not given).
    #[arg(long, global = true)]
    pub parley_bin: Option<PathBuf>,
    /// The server's data directory, for `parley user seed`.
    #[arg(long, global = true)]
    pub data_dir: Option<PathBuf>,
    /// Username prefix of seeded users.
    #[arg(long, global = true, default_value = "load")]
    pub user_prefix: String,
    /// Lifetime of seeded tokens, seconds.
    #[arg(long, global = true, default_value_t = 6 * 3600)]
    pub token_ttl_secs: u64,
    /// The server's pid for RSS/CPU (default: the local process listening
    /// on the target port, found through /proc).
    #[arg(long, global = true)]
    pub server_pid: Option<u32>,
    /// Print the report as JSON on stdout (the table goes to stderr).
    #[arg(long, global = true)]
    pub json: bool,
    /// Objectives, e.g. `p99<=100ms,losses=0` (see `slo.rs` / README);
    /// the exit status is 2 when one is not met.
    #[arg(long, global = true)]
    pub slo: Option<slo::Slo>,
    /// Serve the harness's own figures as Prometheus text on this address.
    #[arg(long, global = true)]
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// The server's Prometheus metrics, scraped before and after the
    /// message scenarios to cross-check the harness's own accounting
    /// (default: `{url}/metrics`; a server started with its own
    /// `--metrics-listen` serves them on that address instead).
    #[arg(long, global = true)]
    pub server_metrics_url: Option<String>,
    /// Do not scrape the server's metrics (no `server_check`).
    #[arg(long, global = true, conflicts_with = "server_metrics_url")]
    pub no_server_metrics: bool,
    /// No progress bar.
    #[arg(long, global = true)]
    pub no_progress: bool,
    /// Spread client sockets over 127.0.0.1 … 127.0.0.N (each source
    /// address has its own ephemeral ports).
    #[arg(long, global = true, default_value_t = 1)]
    pub source_ips: u8,
    /// Processes to spread the sockets over: this one coordinates N worker
    /// processes (itself, run as `worker`), each holding every N-th socket
    /// with its own open-file limit, and merges their histograms and loss
    /// ledgers. For runs needing more sockets than one process may open.
    #[arg(long, global = true, default_value_t = 1)]
    pub workers: usize,
    /// Handshakes in flight at once.
    #[arg(long, global = true, default_value_t = 256)]
    pub connect_concurrency: usize,
    /// Per connection: start → `ready`, seconds.
    #[arg(long, global = true, default_value_t = 20)]
    pub connect_timeout_secs: u64,
    /// Longest wait for acks and deliveries after the load, seconds.
    #[arg(long, global = true, default_value_t = 15)]
    pub drain_secs: u64,
}

/// Message-traffic options shared by `fanout`, `churn` and `calibrate`.
#[derive(Debug, Clone, Args)]
pub struct FanoutArgs {
    /// Sockets in the room.
    #[arg(long, default_value_t = 200)]
    pub sockets: usize,
    /// Publishing sockets (default: enough to stay under the server's
    /// default 10 events/s per socket: ceil(rate / 5)).
    #[arg(long)]
    pub publishers: Option<usize>,
    /// Messages per second, all publishers together.
    #[arg(long, default_value_t = 10.0)]
    pub rate: f64,
    /// Seconds of load.
    #[arg(long, default_value_t = 10)]
    pub duration: u64,
    /// Message body size in bytes (the latency token, padded).
    #[arg(long, default_value_t = 64)]
    pub body_bytes: usize,
    /// New connections per second while connecting (0: as fast as
    /// `--connect-concurrency` allows).
    #[arg(long, default_value_t = 0.0)]
    pub connect_rate: f64,
    /// Seconds to wait once every socket is ready before sending (lets the
    /// burst of `presence` events from a connect storm pass).
    #[arg(long, default_value_t = 0)]
    pub settle_secs: u64,
}

/// The scenarios.
#[derive(Debug, Subcommand)]
pub enum Scenario {
    /// N sockets in one room, P publishers at R msg/s total for D seconds.
    Fanout(FanoutArgs),
    /// Many rooms of size k, every socket in several rooms, R msg/s per room.
    Rooms(scenarios::RoomsArgs),
    /// Connection storm with auth: time to `ready`.
    Connect(scenarios::ConnectArgs),
    /// Sockets dropping and resuming while messages flow; every missed
    /// message must come back through `resume`.
    Churn(scenarios::ChurnArgs),
    /// Presence and typing storm.
    Presence(scenarios::PresenceArgs),
    /// REST mix (profile, rooms, history, message send) at a target req/s.
    Rest(rest::RestArgs),
    /// A mix for a long run, sampling server RSS to check it stays flat.
    Soak(scenarios::SoakArgs),
    /// Hold N authenticated idle sockets; server RSS per connection.
    Idle(scenarios::IdleArgs),
    /// The fanout scenario against a minimal broadcast server (in a process
    /// of its own, see `reference-server`), then against Parley: Parley's
    /// figures as a ratio of it.
    Calibrate(calibrate::CalibrateArgs),
    /// Not a scenario: runs calibrate's reference broadcast server in this
    /// process (calibrate starts it itself). Prints one JSON line
    /// `{"reference_server":{"addr":…,"room":…,"pid":…,…}}` on stdout once
    /// it listens; stops when stdin closes, on SIGTERM or ctrl-c, or after
    /// `--max-secs`.
    ReferenceServer(reference::ReferenceServerArgs),
    /// Not a scenario: one worker process of a `--workers N` run, started
    /// by the parent, which sends it its plan on stdin.
    #[command(hide = true)]
    Worker,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(n) => {
            if n < 1024 {
                eprintln!("warning: only {n} open files allowed");
            }
        }
        Err(e) => eprintln!("warning: could not raise the open-file limit: {e}"),
    }
    // The reference server (started by `calibrate` as a child process)
    // runs on a runtime of its own size; the limit above is raised for it
    // too.
    if let Scenario::ReferenceServer(a) = &cli.scenario {
        return reference::server_main(a, cli.common.allow_remote);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: tokio runtime: {e}");
            return ExitCode::from(1);
        }
    };
    if matches!(cli.scenario, Scenario::Worker) {
        return match runtime.block_on(workers::worker_main()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: worker: {e:#}");
                ExitCode::from(1)
            }
        };
    }
    match runtime.block_on(Box::pin(scenarios::run(cli))) {
        Ok(reports) => {
            let met = reports.iter().all(report::Report::slo_met);
            if met {
                ExitCode::SUCCESS
            } else {
                eprintln!("SLO not met");
                ExitCode::from(2)
            }
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        super::Cli::command().debug_assert();
    }
}
