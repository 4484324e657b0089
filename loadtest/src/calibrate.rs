//! `calibrate`: the fanout scenario against a minimal broadcast server,
//! then against Parley, and Parley's figures as a ratio of the reference's.
//! Machines here are noisy; the ratio measured in one run is the figure
//! that counts.
//!
//! The reference server (see `reference/`) runs by default in a process
//! of its own, like Parley: the harness starts `parley-loadtest
//! reference-server` from its own executable, reads the address line, and
//! samples the process's RSS and CPU from /proc as it does Parley's. Its
//! sockets then do not count against the harness's open-file limit, and it
//! does not share a process with the harness's clients.
//! `--reference-in-process` runs it inside the harness instead (the old
//! way: no RSS/CPU figures, and both share one process's file limit).

use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use parley_actors::domain::RoomId;
use serde_json::json;

use crate::FanoutArgs;
use crate::client::{LoadUser, Rest, Target};
use crate::engine;
use crate::procinfo::Sampler;
use crate::reference::{Reference, ReferenceChild};
use crate::report::Report;
use crate::scenarios::{Ctx, delete_rooms, engine_report, fanout_plan, setup_rooms};
use crate::servercheck::HarnessFigures;

/// `calibrate`.
#[derive(Debug, Clone, Args)]
pub struct CalibrateArgs {
    #[command(flatten)]
    pub fanout: FanoutArgs,
    /// Rates (msg/s) to sweep on both servers, e.g. `50,100,200`; the
    /// highest deliveries/s with p99 within `--p99-max-ms` and no losses
    /// is compared. Default: only `--rate`.
    #[arg(long, value_delimiter = ',')]
    pub rates: Vec<f64>,
    /// The latency bound for the sweep's "highest deliveries/s".
    #[arg(long, default_value_t = 100.0)]
    pub p99_max_ms: f64,
    /// Run only the reference server (no Parley needed).
    #[arg(long)]
    pub reference_only: bool,
    /// Worker threads of the reference server's runtime.
    #[arg(long, default_value_t = 2)]
    pub reference_threads: usize,
    /// Run the reference server inside the harness process (on its own
    /// runtime) instead of in a process of its own. Its sockets then count
    /// against the harness's open-file limit (~2 per client socket), and
    /// it reports no RSS/CPU.
    #[arg(long)]
    pub reference_in_process: bool,
    /// The reference server process's maximum lifetime, seconds (default:
    /// a bound computed from the sweep, at least 3600). It is stopped as
    /// soon as the calibration ends; this bounds it if the harness dies.
    #[arg(long)]
    pub reference_max_secs: Option<u64>,
}

/// The reference server, in its own process or in this one.
#[derive(Debug)]
enum RefServer {
    Child(Box<ReferenceChild>),
    InProcess(Reference),
}

impl RefServer {
    async fn start(ctx: &Ctx, a: &CalibrateArgs, rates: usize) -> anyhow::Result<Self> {
        if a.reference_in_process {
            let r = Reference::start(a.reference_threads)?;
            eprintln!("reference broadcast server in this process on {}", r.addr);
            return Ok(Self::InProcess(r));
        }
        let max_secs = a.reference_max_secs.unwrap_or_else(|| {
            reference_lifetime(
                a,
                ctx.common.connect_timeout_secs,
                ctx.common.drain_secs,
                rates,
            )
        });
        let child = ReferenceChild::spawn(a.reference_threads, max_secs).await?;
        let r = &child.ready;
        eprintln!(
            "reference broadcast server: process {} on {} ({} threads, stops after {} s at most)",
            r.pid, r.addr, r.threads, r.max_secs
        );
        // Each socket is one file in the server; a few more for itself.
        if let Some(n) = r.nofile
            && n < a.fanout.sockets as u64 + 64
        {
            eprintln!(
                "warning: the reference server may hold only {n} open files, for {} sockets",
                a.fanout.sockets
            );
        }
        Ok(Self::Child(Box::new(child)))
    }

    fn addr(&self) -> std::net::SocketAddr {
        match self {
            Self::Child(c) => c.ready.addr,
            Self::InProcess(r) => r.addr,
        }
    }

    fn room(&self) -> RoomId {
        match self {
            Self::Child(c) => c.ready.room,
            Self::InProcess(r) => r.room,
        }
    }

    /// The process to sample (none in-process: it would be the harness's).
    fn pid(&self) -> Option<u32> {
        match self {
            Self::Child(c) => Some(c.ready.pid),
            Self::InProcess(_) => None,
        }
    }

    /// A note when the process has already ended.
    fn check_alive(&mut self) -> Option<String> {
        match self {
            Self::Child(c) => c.exited().map(|status| {
                format!("the reference server process ended before this run ({status})")
            }),
            Self::InProcess(_) => None,
        }
    }

    async fn stop(self) -> Option<String> {
        match self {
            Self::Child(c) => c.stop().await,
            Self::InProcess(r) => {
                r.stop();
                None
            }
        }
    }
}

/// A generous bound on how long the calibration can use the reference
/// server: per rate, two legs of connect + settle + load + drain, with
/// slack; at least an hour.
fn reference_lifetime(
    a: &CalibrateArgs,
    connect_timeout_secs: u64,
    drain_secs: u64,
    rates: usize,
) -> u64 {
    let f = &a.fanout;
    let connect = if f.connect_rate > 0.0 {
        (f.sockets as f64 / f.connect_rate).ceil() as u64
    } else {
        0
    };
    let leg = connect + connect_timeout_secs + f.settle_secs + f.duration + drain_secs + 60;
    (600 + 2 * leg * rates as u64).max(3600)
}

/// One rate's pair of runs.
#[derive(Debug, Clone, serde::Serialize)]
struct Point {
    rate: f64,
    reference_dps: f64,
    reference_p99_ms: f64,
    reference_losses: u64,
    /// Every socket reached `ready` (a point counts only then: sockets that
    /// never connected lose nothing but carry no load either).
    reference_all_ready: bool,
    /// The reference process's CPU (% of one core) and RSS, sampled like
    /// Parley's (absent in-process).
    #[serde(skip_serializing_if = "Option::is_none")]
    reference_cpu_avg_pct: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reference_rss_max_mib: Option<f64>,
    parley_dps: Option<f64>,
    parley_p99_ms: Option<f64>,
    parley_losses: Option<u64>,
    parley_all_ready: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    parley_cpu_avg_pct: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    parley_rss_max_mib: Option<f64>,
    /// Whether Parley's metrics agreed with the harness (when read).
    #[serde(skip_serializing_if = "Option::is_none")]
    parley_server_agrees: Option<bool>,
}

/// Runs the calibration; returns every run's report, then the summary.
pub async fn run(ctx: &Ctx, a: &CalibrateArgs) -> anyhow::Result<Vec<Report>> {
    let rates = if a.rates.is_empty() {
        vec![a.fanout.rate]
    } else {
        a.rates.clone()
    };
    let mut reference = RefServer::start(ctx, a, rates.len()).await?;
    let ref_target = Target::parse(&format!("http://{}", reference.addr()), false)?;
    let parley = if a.reference_only {
        None
    } else {
        let users = ctx.users(a.fanout.sockets)?;
        let rest = Rest::new(&ctx.target, 64)?;
        let members = vec![(0..users.len()).collect::<Vec<_>>()];
        let ids = setup_rooms(&rest, &users, &members, "calibrate").await?;
        Some((users, rest, ids))
    };
    let mut reports = Vec::new();
    let mut points = Vec::new();
    for rate in rates {
        let args = FanoutArgs {
            rate,
            ..a.fanout.clone()
        };
        // Reference: its process sampled as Parley's is.
        let rctx = ctx.fresh();
        let dead = reference.check_alive();
        let plan = fanout_plan(&rctx, &args, &[None], reference.room(), ref_target.clone());
        let ref_pid = reference.pid();
        let sampler = ref_pid.map(|pid| Sampler::start(pid, Duration::from_secs(1)));
        let result = engine::run(plan, Arc::clone(&rctx.stats), ref_pid).await;
        let usage = sampler.map(|s| s.finish(false));
        let mut point = Point {
            rate,
            reference_dps: result.deliveries_per_sec,
            reference_p99_ms: result.latency.p99_ms,
            reference_losses: result.losses.losses,
            reference_all_ready: result.slots_ready == result.slots as u64,
            reference_cpu_avg_pct: usage.as_ref().map(|u| u.cpu_avg_pct),
            reference_rss_max_mib: usage.as_ref().map(|u| mib(u.rss_max_bytes)),
            parley_dps: None,
            parley_p99_ms: None,
            parley_losses: None,
            parley_all_ready: None,
            parley_cpu_avg_pct: None,
            parley_rss_max_mib: None,
            parley_server_agrees: None,
        };
        let mut rep = engine_report(&rctx, "calibrate/reference", params(&args), &result, usage);
        rep.target = ref_target.http_base.clone();
        rep.notes.extend(dead);
        reports.push(rep);
        // Parley.
        if let Some((users, _, ids)) = &parley {
            let pctx = ctx.fresh();
            let tokens = tokens(users);
            let plan = fanout_plan(&pctx, &args, &tokens, ids[0], ctx.target.clone());
            let baseline = pctx.server_baseline().await;
            let sampler = pctx.sampler(Duration::from_secs(1));
            let result = engine::run(plan, Arc::clone(&pctx.stats), pctx.server_pid).await;
            let usage = sampler.map(|s| s.finish(false));
            point.parley_cpu_avg_pct = usage.as_ref().map(|u| u.cpu_avg_pct);
            point.parley_rss_max_mib = usage.as_ref().map(|u| mib(u.rss_max_bytes));
            let mut rep = engine_report(&pctx, "calibrate/parley", params(&args), &result, usage);
            if let Some(b) = baseline {
                let check = b.check(HarnessFigures::of_engine(&result, 0)).await;
                point.parley_server_agrees = check.available.then_some(check.agrees);
                rep.add_server_check(check);
            }
            point.parley_dps = Some(result.deliveries_per_sec);
            point.parley_p99_ms = Some(result.latency.p99_ms);
            point.parley_losses = Some(result.losses.losses);
            point.parley_all_ready = Some(result.slots_ready == result.slots as u64);
            reports.push(rep);
        }
        points.push(point);
    }
    let stopped = reference.stop().await;
    if let Some((users, rest, ids)) = &parley {
        delete_rooms(rest, users, &[0], ids).await;
    }
    let mut summary = summary(ctx, a, &points);
    summary.notes.extend(stopped);
    reports.push(summary);
    Ok(reports)
}

fn tokens(users: &[LoadUser]) -> Vec<Option<Arc<str>>> {
    users
        .iter()
        .map(|u| Some(Arc::from(u.access_token.as_str())))
        .collect()
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

fn params(a: &FanoutArgs) -> serde_json::Value {
    crate::scenarios::fanout_params(a)
}

fn summary(ctx: &Ctx, a: &CalibrateArgs, points: &[Point]) -> Report {
    let ok =
        |p99: f64, losses: u64, all_ready: bool| all_ready && p99 <= a.p99_max_ms && losses == 0;
    let best_ref = points
        .iter()
        .filter(|p| {
            ok(
                p.reference_p99_ms,
                p.reference_losses,
                p.reference_all_ready,
            )
        })
        .map(|p| p.reference_dps)
        .fold(0.0, f64::max);
    let best_parley = points
        .iter()
        .filter_map(|p| {
            let (dps, p99, losses) = (p.parley_dps?, p.parley_p99_ms?, p.parley_losses?);
            ok(p99, losses, p.parley_all_ready?).then_some(dps)
        })
        .fold(0.0, f64::max);
    let mut figures = std::collections::BTreeMap::new();
    figures.insert("reference_best_dps".into(), best_ref.round());
    if !a.reference_only {
        figures.insert("parley_best_dps".into(), best_parley.round());
        figures.insert(
            "best_ratio".into(),
            if best_ref > 0.0 {
                best_parley / best_ref
            } else {
                0.0
            },
        );
        if let Some(first) = points.first()
            && let (Some(dps), Some(p99)) = (first.parley_dps, first.parley_p99_ms)
        {
            figures.insert("dps_ratio".into(), dps / first.reference_dps.max(1e-9));
            figures.insert("p99_ratio".into(), p99 / first.reference_p99_ms.max(1e-9));
        }
        // 1 when every Parley run's server cross-check agreed.
        let checks: Vec<bool> = points
            .iter()
            .filter_map(|p| p.parley_server_agrees)
            .collect();
        if !checks.is_empty() {
            figures.insert(
                "server_agrees".into(),
                f64::from(u8::from(checks.iter().all(|a| *a))),
            );
        }
    }
    Report {
        scenario: "calibrate".into(),
        target: ctx.target.http_base.clone(),
        parameters: json!({"sockets": a.fanout.sockets, "duration_s": a.fanout.duration,
            "p99_max_ms": a.p99_max_ms}),
        figures,
        detail: json!({"points": points}),
        server: None,
        server_check: None,
        slo: Vec::new(),
        notes: vec![format!(
            "best_* = highest deliveries/s among the swept rates with every socket ready, p99 <= {} ms and 0 losses; \
             *_ratio = Parley / reference",
            a.p99_max_ms
        )],
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::{Cli, Scenario};

    fn calibrate(args: &[&str]) -> CalibrateArgs {
        let cli = Cli::try_parse_from(
            ["parley-loadtest", "calibrate"]
                .into_iter()
                .chain(args.iter().copied()),
        )
        .unwrap();
        match cli.scenario {
            Scenario::Calibrate(a) => a,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_reference_runs_in_its_own_process_by_default() {
        assert!(!calibrate(&[]).reference_in_process);
        assert!(calibrate(&["--reference-in-process"]).reference_in_process);
    }

    #[test]
    fn the_reference_lifetime_covers_the_sweep() {
        // Short sweeps: an hour.
        let a = calibrate(&["--rates", "5,10", "--duration", "2"]);
        assert_eq!(reference_lifetime(&a, 20, 15, 2), 3600);
        // Long ones: two legs per rate of connect + settle + load + drain.
        let a = calibrate(&[
            "--rates",
            "10,25,50,100",
            "--duration",
            "600",
            "--settle-secs",
            "10",
            "--sockets",
            "10000",
            "--connect-rate",
            "1000",
        ]);
        let leg = 10 + 20 + 10 + 600 + 15 + 60;
        assert_eq!(reference_lifetime(&a, 20, 15, 4), 600 + 2 * leg * 4);
    }

    #[test]
    fn reference_server_takes_its_options() {
        let cli = Cli::try_parse_from([
            "parley-loadtest",
            "reference-server",
            "--listen",
            "127.0.0.1:0",
            "--threads",
            "3",
            "--max-secs",
            "5",
        ])
        .unwrap();
        let Scenario::ReferenceServer(a) = cli.scenario else {
            panic!("{:?}", cli.scenario);
        };
        assert_eq!(a.listen, "127.0.0.1:0".parse().unwrap());
        assert_eq!((a.threads, a.max_secs, a.ignore_stdin), (3, 5, false));
    }
}
