//! The scenarios: each builds an [`engine::Plan`](crate::engine::Plan)
//! (or a REST plan), runs it with server sampling, and turns the result
//! into a [`Report`].
//!
//! The files: one per scenario (its arguments and its run), `setup` for
//! the rooms made and removed over REST, `common` for what several
//! scenarios share (the single-room run, the engine report); this one
//! holds the run's context and the dispatch.

use std::sync::Arc;
use std::time::Duration;

use anyhow::bail;

use crate::client::{self, LoadUser, Target};
use crate::engine::EngineOpts;
use crate::procinfo::{self, Sampler};
use crate::report::{self, Report};
use crate::servercheck::{self, Baseline};
use crate::stats::Stats;
use crate::{Cli, Common, Scenario, calibrate, rest};

mod churn;
mod common;
mod connect;
mod fanout;
mod idle;
mod presence;
mod rooms;
mod setup;
mod soak;

pub use churn::ChurnArgs;
pub use common::engine_report;
pub use connect::ConnectArgs;
pub use fanout::{fanout_params, fanout_plan};
pub use idle::IdleArgs;
pub use presence::PresenceArgs;
pub use rooms::RoomsArgs;
pub use setup::{delete_rooms, setup_rooms};
pub use soak::SoakArgs;

use churn::churn;
use connect::connect;
use fanout::fanout;
use idle::idle;
use presence::presence;
use rooms::rooms;
use soak::soak;

/// What every scenario shares.
#[derive(Debug, Clone)]
pub struct Ctx {
    pub common: Common,
    pub target: Target,
    pub stats: Arc<Stats>,
    pub server_pid: Option<u32>,
    /// Where to scrape the server's metrics (`None`: no cross-check).
    pub server_metrics: Option<String>,
}

impl Ctx {
    /// Load users: from `--users`, or seeded through `--parley-bin`.
    pub fn users(&self, wanted: usize) -> anyhow::Result<Vec<LoadUser>> {
        let c = &self.common;
        let mut users = match (&c.users, &c.parley_bin, &c.data_dir) {
            (Some(path), _, _) => client::load_users(path)?,
            (None, Some(bin), Some(dir)) => {
                eprintln!(
                    "seeding {wanted} users ({}…) with {}",
                    c.user_prefix,
                    bin.display()
                );
                client::seed_users(bin, dir, wanted, &c.user_prefix, c.token_ttl_secs)?
            }
            _ => bail!(
                "load users needed: pass --users FILE (from `parley user seed`) or --parley-bin PATH --data-dir DIR"
            ),
        };
        if users.is_empty() {
            bail!("no load users");
        }
        users.truncate(wanted);
        if users.len() < wanted {
            eprintln!(
                "note: {} users for {wanted} sockets: sockets share users (mind --ws-max-connections-per-user)",
                users.len()
            );
        }
        Ok(users)
    }

    /// Engine options from the common flags.
    pub fn opts(&self, connect_rate: f64, settle: Duration) -> EngineOpts {
        EngineOpts {
            connect_rate,
            connect_concurrency: self.common.connect_concurrency,
            connect_timeout: Duration::from_secs(self.common.connect_timeout_secs),
            drain_timeout: Duration::from_secs(self.common.drain_secs),
            max_reconnects: 10_000,
            progress: !self.common.no_progress && !self.common.json,
            settle,
            workers: self.common.workers.max(1),
        }
    }

    /// Source address for socket `i`.
    pub fn bind_for(&self, i: usize) -> Option<std::net::IpAddr> {
        let ips = client::source_ips(self.common.source_ips, &self.target);
        (!ips.is_empty()).then(|| ips[i % ips.len()])
    }

    /// Starts sampling the server, when it is known.
    pub fn sampler(&self, every: Duration) -> Option<Sampler> {
        self.server_pid.map(|pid| Sampler::start(pid, every))
    }

    /// Scrapes the server's metrics before a run (`None` when the
    /// cross-check is off).
    pub async fn server_baseline(&self) -> Option<Baseline> {
        Baseline::take(self.server_metrics.as_deref()).await
    }

    /// A fresh stats set for a sub-run (calibrate runs two).
    pub fn fresh(&self) -> Self {
        Self {
            stats: Arc::new(Stats::new()),
            ..self.clone()
        }
    }
}

/// Parses the command line's target, runs the scenario, prints, checks
/// the SLO.
pub async fn run(cli: Cli) -> anyhow::Result<Vec<Report>> {
    let Cli { common, scenario } = cli;
    let target = client::Target::parse(&common.url, common.allow_remote)?;
    let stats = Arc::new(Stats::new());
    if let Some(addr) = common.metrics_listen {
        report::serve_metrics(addr, Arc::clone(&stats)).await?;
    }
    let server_pid = common.server_pid.or_else(|| {
        if target.is_local() {
            procinfo::pid_listening_on(target.addr.port())
        } else {
            None
        }
    });
    if server_pid.is_none() {
        eprintln!("note: server process not found: no RSS/CPU figures (pass --server-pid)");
    }
    let server_metrics = if common.no_server_metrics {
        None
    } else {
        let url = common
            .server_metrics_url
            .clone()
            .unwrap_or_else(|| format!("{}/metrics", target.http_base));
        Some(servercheck::check_url(&url, common.allow_remote)?)
    };
    let ctx = Ctx {
        common: common.clone(),
        target,
        stats,
        server_pid,
        server_metrics,
    };
    let mut reports = match scenario {
        Scenario::Fanout(a) => vec![fanout(&ctx, &a).await?],
        Scenario::Rooms(a) => vec![rooms(&ctx, &a).await?],
        Scenario::Connect(a) => vec![connect(&ctx, &a).await?],
        Scenario::Churn(a) => vec![churn(&ctx, &a).await?],
        Scenario::Presence(a) => vec![presence(&ctx, &a).await?],
        Scenario::Rest(a) => vec![rest::run(&ctx, &a).await?],
        Scenario::Soak(a) => vec![soak(&ctx, &a).await?],
        Scenario::Idle(a) => vec![idle(&ctx, &a).await?],
        Scenario::Calibrate(a) => calibrate::run(&ctx, &a).await?,
        Scenario::ReferenceServer(_) => bail!("reference-server is not a scenario"),
        Scenario::Worker => bail!("worker is not a scenario"),
    };
    // The SLO is checked against the last report (calibrate's summary, or
    // the one report of every other scenario).
    if let (Some(slo), Some(last)) = (&common.slo, reports.last_mut()) {
        last.slo = slo.check(&last.figures);
    }
    for r in &reports {
        if common.json {
            eprint!("{}", r.table());
        } else {
            print!("{}", r.table());
        }
    }
    if common.json {
        let value = if reports.len() == 1 {
            serde_json::to_value(&reports[0])?
        } else {
            serde_json::to_value(&reports)?
        };
        println!("{}", serde_json::to_string_pretty(&value)?);
    }
    Ok(reports)
}
