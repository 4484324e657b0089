//! The scenarios: each builds an [`engine::Plan`] (or a REST plan), runs it
//! with server sampling, and turns the result into a [`Report`].

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use parley_actors::domain::RoomId;
use serde_json::json;
use tokio::task::JoinSet;

use crate::client::{self, LoadUser, Rest, Target};
use crate::engine::{self, EngineOpts, EngineResult, Load, Plan, SlotPlan};
use crate::procinfo::{self, Sampler, ServerUsage};
use crate::report::{self, Report};
use crate::servercheck::{self, Baseline, HarnessFigures};
use crate::stats::Stats;
use crate::{Cli, Common, FanoutArgs, Scenario, calibrate, rest};

/// `rooms`.
#[derive(Debug, Clone, Args)]
pub struct RoomsArgs {
    /// Number of rooms.
    #[arg(long, default_value_t = 100)]
    pub rooms: usize,
    /// Members (sockets) per room.
    #[arg(long, default_value_t = 10)]
    pub room_size: usize,
    /// Rooms each socket is in (sockets = rooms × room-size / this).
    #[arg(long, default_value_t = 2)]
    pub rooms_per_socket: usize,
    /// Messages per second in each room.
    #[arg(long, default_value_t = 1.0)]
    pub rate_per_room: f64,
    /// Seconds of load.
    #[arg(long, default_value_t = 10)]
    pub duration: u64,
    /// Message body size in bytes.
    #[arg(long, default_value_t = 64)]
    pub body_bytes: usize,
}

/// `connect`.
#[derive(Debug, Clone, Args)]
pub struct ConnectArgs {
    /// Sockets to open.
    #[arg(long, default_value_t = 1000)]
    pub sockets: usize,
    /// Connections started per second (0: as fast as
    /// `--connect-concurrency` allows).
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
    /// Seconds to hold every socket open once all are ready.
    #[arg(long, default_value_t = 1)]
    pub hold_secs: u64,
}

/// `churn`.
#[derive(Debug, Clone, Args)]
pub struct ChurnArgs {
    #[command(flatten)]
    pub fanout: FanoutArgs,
    /// Percentage of the non-publishing sockets dropped (then resumed)
    /// every second.
    #[arg(long, default_value_t = 10.0)]
    pub churn_pct: f64,
    /// Wait before reconnecting, milliseconds.
    #[arg(long, default_value_t = 200)]
    pub reconnect_delay_ms: u64,
}

/// `presence`.
#[derive(Debug, Clone, Args)]
pub struct PresenceArgs {
    /// Sockets in the room.
    #[arg(long, default_value_t = 200)]
    pub sockets: usize,
    /// `typing` events per second, all sockets together.
    #[arg(long, default_value_t = 200.0)]
    pub typing_rate: f64,
    /// `presence.set` per second, all sockets together.
    #[arg(long, default_value_t = 50.0)]
    pub presence_rate: f64,
    /// Seconds of load.
    #[arg(long, default_value_t = 10)]
    pub duration: u64,
}

/// `soak`.
#[derive(Debug, Clone, Args)]
pub struct SoakArgs {
    /// Sockets in the room.
    #[arg(long, default_value_t = 200)]
    pub sockets: usize,
    /// Messages per second.
    #[arg(long, default_value_t = 20.0)]
    pub rate: f64,
    /// `typing` per second.
    #[arg(long, default_value_t = 20.0)]
    pub typing_rate: f64,
    /// `presence.set` per second.
    #[arg(long, default_value_t = 2.0)]
    pub presence_rate: f64,
    /// Percentage of sockets dropped and resumed every second.
    #[arg(long, default_value_t = 1.0)]
    pub churn_pct: f64,
    /// REST requests per second beside the sockets.
    #[arg(long, default_value_t = 20.0)]
    pub rest_rate: f64,
    /// Seconds of load.
    #[arg(long, default_value_t = 300)]
    pub duration: u64,
    /// Seconds between RSS samples.
    #[arg(long, default_value_t = 5)]
    pub sample_secs: u64,
}

/// `idle`.
#[derive(Debug, Clone, Args)]
pub struct IdleArgs {
    /// Sockets to hold.
    #[arg(long, default_value_t = 1000)]
    pub sockets: usize,
    /// Seconds to hold them once all are ready.
    #[arg(long, default_value_t = 10)]
    pub duration: u64,
    /// Seconds to wait after connecting before reading the server's RSS.
    #[arg(long, default_value_t = 3)]
    pub settle_secs: u64,
    /// New connections per second (0: as fast as allowed).
    #[arg(long, default_value_t = 0.0)]
    pub connect_rate: f64,
}

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

/// Creates rooms and joins their members over REST. `members[r]` lists
/// user indexes; the first creates the room. Returns the room ids.
pub async fn setup_rooms(
    rest: &Rest,
    users: &[LoadUser],
    members: &[Vec<usize>],
    label: &str,
) -> anyhow::Result<Vec<RoomId>> {
    let stamp = crate::token::unix_nanos() / 1_000_000;
    let mut ids = Vec::with_capacity(members.len());
    // Creation, a few at a time.
    for chunk in members.chunks(32).enumerate() {
        let (c, chunk) = chunk;
        let mut set = JoinSet::new();
        for (j, m) in chunk.iter().enumerate() {
            let owner = users[m[0]].access_token.clone();
            let rest = rest.clone();
            let name = format!("lt-{label}-{stamp}-{}", c * 32 + j);
            set.spawn(async move { (j, rest.create_room(&owner, &name).await) });
        }
        let mut got: Vec<(usize, RoomId)> = Vec::new();
        while let Some(r) = set.join_next().await {
            let (j, id) = r?;
            got.push((j, id.context("creating a load room")?));
        }
        got.sort_by_key(|(j, _)| *j);
        ids.extend(got.into_iter().map(|(_, id)| id));
    }
    // Joins, 64 in flight.
    let joins: Vec<(RoomId, usize)> = members
        .iter()
        .zip(&ids)
        .flat_map(|(m, id)| {
            let mut seen = std::collections::HashSet::new();
            seen.insert(m[0]);
            m.iter()
                .skip(1)
                .filter(|u| seen.insert(**u))
                .map(|u| (*id, *u))
                .collect::<Vec<_>>()
        })
        .collect();
    let total = joins.len();
    let sem = Arc::new(tokio::sync::Semaphore::new(64));
    let mut set = JoinSet::new();
    for (room, user) in joins {
        let permit = Arc::clone(&sem).acquire_owned().await?;
        let rest = rest.clone();
        let token = users[user].access_token.clone();
        set.spawn(async move {
            let r = rest.join_room(&token, room).await;
            drop(permit);
            r
        });
        while let Some(done) = set.try_join_next() {
            done??;
        }
    }
    while let Some(done) = set.join_next().await {
        done??;
    }
    if total > 0 {
        eprintln!("joined {total} memberships in {} rooms", ids.len());
    }
    Ok(ids)
}

/// Deletes the load rooms (so reused users do not pile up rooms).
pub async fn delete_rooms(rest: &Rest, users: &[LoadUser], owners: &[usize], ids: &[RoomId]) {
    for (owner, id) in owners.iter().zip(ids) {
        let url = format!("{}/rooms/{id}", rest.base);
        let resp = rest
            .http
            .delete(&url)
            .bearer_auth(&users[*owner].access_token)
            .send()
            .await;
        match resp {
            Ok(r) if r.status().is_success() => {}
            Ok(r) => eprintln!("note: deleting room {id}: {}", r.status()),
            Err(e) => eprintln!("note: deleting room {id}: {e}"),
        }
    }
}

/// Turns an engine result into a report.
pub fn engine_report(
    ctx: &Ctx,
    scenario: &str,
    parameters: serde_json::Value,
    r: &EngineResult,
    server: Option<ServerUsage>,
) -> Report {
    let mut report = Report {
        scenario: scenario.to_owned(),
        target: ctx.target.http_base.clone(),
        parameters,
        figures: Default::default(),
        detail: serde_json::to_value(r).unwrap_or_default(),
        server: None,
        server_check: None,
        slo: Vec::new(),
        notes: Vec::new(),
    };
    report.add_summary("", &r.latency);
    report.add_summary("ack_", &r.ack);
    report.add_summary("ready_", &r.ready);
    report.add_summary("connect_", &r.connect);
    let f = &mut report.figures;
    let c = &r.counters;
    f.insert("all_ready".into(), r.all_ready_s * 1000.0);
    f.insert("slots".into(), r.slots as f64);
    f.insert("slots_ready".into(), r.slots_ready as f64);
    f.insert("connect_failures".into(), c.connect_failures as f64);
    f.insert("sent".into(), c.sent as f64);
    f.insert("acked".into(), c.acked as f64);
    f.insert("send_errors".into(), c.send_errors as f64);
    f.insert("expected".into(), r.losses.expected as f64);
    f.insert("delivered".into(), r.losses.delivered as f64);
    f.insert("recovered".into(), r.losses.recovered as f64);
    f.insert("losses".into(), r.losses.losses as f64);
    f.insert("duplicates".into(), r.losses.duplicates as f64);
    f.insert("unexpected".into(), r.losses.unexpected as f64);
    f.insert("dps".into(), r.deliveries_per_sec.round());
    f.insert("sends_per_sec".into(), r.sends_per_sec);
    f.insert("server_closes".into(), c.server_closes as f64);
    f.insert("client_drops".into(), c.client_drops as f64);
    f.insert("resumes".into(), c.resumes as f64);
    f.insert("resyncs".into(), c.resyncs as f64);
    f.insert("events".into(), c.events as f64);
    f.insert("errors".into(), r.errors.values().sum::<u64>() as f64);
    if !r.drained {
        report.notes.push(format!(
            "drain timed out after {}s: not every ack/delivery arrived (counted as losses)",
            ctx.common.drain_secs
        ));
    }
    if let Some(s) = server {
        report.add_server(s);
    }
    report
}

fn publishers(a: &FanoutArgs) -> usize {
    a.publishers
        .unwrap_or_else(|| (a.rate / 5.0).ceil() as usize)
        .clamp(1, a.sockets.max(1))
}

/// The fanout plan: every slot in room 0, the first P slots publish.
pub fn fanout_plan(
    ctx: &Ctx,
    a: &FanoutArgs,
    tokens: &[Option<Arc<str>>],
    room: RoomId,
    target: Target,
) -> Plan {
    let slots = (0..a.sockets)
        .map(|i| SlotPlan {
            token: tokens[i % tokens.len()].clone(),
            rooms: vec![0],
            bind: ctx.bind_for(i),
        })
        .collect();
    Plan {
        target,
        rooms: vec![room],
        slots,
        load: Load {
            duration: Duration::from_secs(a.duration),
            msg_rate: a.rate,
            publishers: (0..publishers(a)).map(|s| (s, 0)).collect(),
            typing_rate: 0.0,
            presence_rate: 0.0,
            churn_per_sec: 0.0,
            reconnect_delay: Duration::from_millis(100),
            body_bytes: a.body_bytes,
        },
        opts: ctx.opts(a.connect_rate, Duration::from_secs(a.settle_secs)),
        external: None,
    }
}

/// The parameters of a fanout run, as reported.
pub fn fanout_params(a: &FanoutArgs) -> serde_json::Value {
    json!({
        "sockets": a.sockets,
        "publishers": publishers(a),
        "rate": a.rate,
        "duration_s": a.duration,
        "body_bytes": a.body_bytes,
        "settle_s": a.settle_secs,
    })
}

fn tokens(users: &[LoadUser]) -> Vec<Option<Arc<str>>> {
    users
        .iter()
        .map(|u| Some(Arc::from(u.access_token.as_str())))
        .collect()
}

/// A single-room run against Parley: provision, run, clean up. With
/// `cross_check` (scenarios that send messages), the server's metrics are
/// scraped before and after the run and compared.
async fn one_room_run(
    ctx: &Ctx,
    scenario: &str,
    sockets: usize,
    params: serde_json::Value,
    cross_check: bool,
    make: impl FnOnce(&[Option<Arc<str>>], RoomId) -> Plan,
) -> anyhow::Result<Report> {
    let users = ctx.users(sockets)?;
    let rest = Rest::new(&ctx.target, 64)?;
    let members = vec![(0..users.len()).collect::<Vec<_>>()];
    let ids = setup_rooms(&rest, &users, &members, scenario).await?;
    let plan = make(&tokens(&users), ids[0]);
    let baseline = if cross_check {
        ctx.server_baseline().await
    } else {
        None
    };
    let sampler = ctx.sampler(Duration::from_secs(1));
    let result = engine::run(plan, Arc::clone(&ctx.stats), ctx.server_pid).await;
    let usage = sampler.map(|s| s.finish(false));
    let check = match baseline {
        Some(b) => Some(b.check(HarnessFigures::of_engine(&result, 0)).await),
        None => None,
    };
    delete_rooms(&rest, &users, &[0], &ids).await;
    let mut report = engine_report(ctx, scenario, params, &result, usage);
    if let Some(check) = check {
        report.add_server_check(check);
    }
    Ok(report)
}

async fn fanout(ctx: &Ctx, a: &FanoutArgs) -> anyhow::Result<Report> {
    let target = ctx.target.clone();
    one_room_run(
        ctx,
        "fanout",
        a.sockets,
        fanout_params(a),
        true,
        |tokens, room| fanout_plan(ctx, a, tokens, room, target),
    )
    .await
}

async fn churn(ctx: &Ctx, a: &ChurnArgs) -> anyhow::Result<Report> {
    let target = ctx.target.clone();
    let mut params = fanout_params(&a.fanout);
    params["churn_pct_per_s"] = json!(a.churn_pct);
    params["reconnect_delay_ms"] = json!(a.reconnect_delay_ms);
    let mut report = one_room_run(
        ctx,
        "churn",
        a.fanout.sockets,
        params,
        true,
        |tokens, room| {
            let mut plan = fanout_plan(ctx, &a.fanout, tokens, room, target);
            plan.load.churn_per_sec = a.churn_pct / 100.0;
            plan.load.reconnect_delay = Duration::from_millis(a.reconnect_delay_ms);
            plan
        },
    )
    .await?;
    if report.figures.get("client_drops").copied().unwrap_or(0.0) == 0.0 {
        report
            .notes
            .push("no socket was dropped: churn did not happen".into());
    }
    Ok(report)
}

async fn presence(ctx: &Ctx, a: &PresenceArgs) -> anyhow::Result<Report> {
    let target = ctx.target.clone();
    let params = json!({
        "sockets": a.sockets,
        "typing_rate": a.typing_rate,
        "presence_rate": a.presence_rate,
        "duration_s": a.duration,
    });
    // No chat messages: no server cross-check.
    let mut report = one_room_run(ctx, "presence", a.sockets, params, false, |tokens, room| {
        let fan = FanoutArgs {
            sockets: a.sockets,
            publishers: None,
            rate: 0.0,
            duration: a.duration,
            body_bytes: 0,
            connect_rate: 0.0,
            settle_secs: 0,
        };
        let mut plan = fanout_plan(ctx, &fan, tokens, room, target);
        plan.load.publishers.clear();
        plan.load.typing_rate = a.typing_rate;
        plan.load.presence_rate = a.presence_rate;
        plan
    })
    .await?;
    let events = report.figures.get("events").copied().unwrap_or(0.0);
    report
        .figures
        .insert("events_per_sec".into(), events / a.duration.max(1) as f64);
    Ok(report)
}

async fn rooms(ctx: &Ctx, a: &RoomsArgs) -> anyhow::Result<Report> {
    if a.rooms == 0 || a.room_size == 0 || a.rooms_per_socket == 0 {
        bail!("--rooms, --room-size and --rooms-per-socket must be > 0");
    }
    let sockets = (a.rooms * a.room_size).div_ceil(a.rooms_per_socket);
    if a.room_size > sockets {
        bail!(
            "room size {} is larger than the {sockets} sockets",
            a.room_size
        );
    }
    let users = ctx.users(sockets)?;
    if users.len() < sockets {
        bail!(
            "rooms needs one user per socket: {sockets} users, got {}",
            users.len()
        );
    }
    // Room r has slots (r·k + j) mod S: with S = R·k/m every slot is in m
    // distinct rooms.
    let members: Vec<Vec<usize>> = (0..a.rooms)
        .map(|r| {
            (0..a.room_size)
                .map(|j| (r * a.room_size + j) % sockets)
                .collect()
        })
        .collect();
    let rest = Rest::new(&ctx.target, 64)?;
    let ids = setup_rooms(&rest, &users, &members, "rooms").await?;
    let mut slot_rooms = vec![Vec::new(); sockets];
    for (r, m) in members.iter().enumerate() {
        for &s in m {
            if !slot_rooms[s].contains(&r) {
                slot_rooms[s].push(r);
            }
        }
    }
    let slots = (0..sockets)
        .map(|i| SlotPlan {
            token: Some(Arc::from(users[i].access_token.as_str())),
            rooms: slot_rooms[i].clone(),
            bind: ctx.bind_for(i),
        })
        .collect();
    let plan = Plan {
        target: ctx.target.clone(),
        rooms: ids.clone(),
        slots,
        load: Load {
            duration: Duration::from_secs(a.duration),
            msg_rate: a.rate_per_room * a.rooms as f64,
            publishers: members.iter().enumerate().map(|(r, m)| (m[0], r)).collect(),
            typing_rate: 0.0,
            presence_rate: 0.0,
            churn_per_sec: 0.0,
            reconnect_delay: Duration::from_millis(100),
            body_bytes: a.body_bytes,
        },
        opts: ctx.opts(0.0, Duration::ZERO),
        external: None,
    };
    let baseline = ctx.server_baseline().await;
    let sampler = ctx.sampler(Duration::from_secs(1));
    let result = engine::run(plan, Arc::clone(&ctx.stats), ctx.server_pid).await;
    let usage = sampler.map(|s| s.finish(false));
    let check = match baseline {
        Some(b) => Some(b.check(HarnessFigures::of_engine(&result, 0)).await),
        None => None,
    };
    let owners: Vec<usize> = members.iter().map(|m| m[0]).collect();
    delete_rooms(&rest, &users, &owners, &ids).await;
    let params = json!({
        "rooms": a.rooms,
        "room_size": a.room_size,
        "rooms_per_socket": a.rooms_per_socket,
        "sockets": sockets,
        "rate_per_room": a.rate_per_room,
        "duration_s": a.duration,
    });
    let mut report = engine_report(ctx, "rooms", params, &result, usage);
    if let Some(check) = check {
        report.add_server_check(check);
    }
    Ok(report)
}

/// Sockets with no room traffic (connect, idle).
fn bare_plan(
    ctx: &Ctx,
    users: &[LoadUser],
    sockets: usize,
    hold: Duration,
    connect_rate: f64,
    settle: Duration,
) -> Plan {
    let tokens = tokens(users);
    Plan {
        target: ctx.target.clone(),
        rooms: Vec::new(),
        slots: (0..sockets)
            .map(|i| SlotPlan {
                token: tokens[i % tokens.len()].clone(),
                rooms: Vec::new(),
                bind: ctx.bind_for(i),
            })
            .collect(),
        load: Load::idle(hold),
        opts: ctx.opts(connect_rate, settle),
        external: None,
    }
}

async fn connect(ctx: &Ctx, a: &ConnectArgs) -> anyhow::Result<Report> {
    let users = ctx.users(a.sockets)?;
    let plan = bare_plan(
        ctx,
        &users,
        a.sockets,
        Duration::from_secs(a.hold_secs),
        a.rate,
        Duration::ZERO,
    );
    let sampler = ctx.sampler(Duration::from_secs(1));
    let result = engine::run(plan, Arc::clone(&ctx.stats), ctx.server_pid).await;
    let usage = sampler.map(|s| s.finish(false));
    let params = json!({"sockets": a.sockets, "rate": a.rate, "hold_s": a.hold_secs,
        "connect_concurrency": ctx.common.connect_concurrency});
    let mut report = engine_report(ctx, "connect", params, &result, usage);
    report.figures.insert(
        "connects_per_sec".into(),
        result.slots_ready as f64 / result.all_ready_s.max(1e-3),
    );
    Ok(report)
}

async fn idle(ctx: &Ctx, a: &IdleArgs) -> anyhow::Result<Report> {
    let users = ctx.users(a.sockets)?;
    let baseline = ctx.server_pid.and_then(procinfo::rss_bytes);
    let harness_before = procinfo::rss_bytes(std::process::id());
    let plan = bare_plan(
        ctx,
        &users,
        a.sockets,
        Duration::from_secs(a.duration),
        a.connect_rate,
        Duration::from_secs(a.settle_secs),
    );
    let sampler = ctx.sampler(Duration::from_secs(1));
    let result = engine::run(plan, Arc::clone(&ctx.stats), ctx.server_pid).await;
    let usage = sampler.map(|s| s.finish(false));
    let params = json!({"sockets": a.sockets, "hold_s": a.duration, "settle_s": a.settle_secs});
    let mut report = engine_report(ctx, "idle", params, &result, usage);
    if let (Some(before), Some(after)) = (baseline, result.server_rss_connected_bytes) {
        let per = after.saturating_sub(before) as f64 / result.slots_ready.max(1) as f64 / 1024.0;
        report.figures.insert("rss_per_conn_kib".into(), per);
        report
            .figures
            .insert("server_rss_before_mib".into(), report::mib(before));
        report
            .figures
            .insert("server_rss_connected_mib".into(), report::mib(after));
    } else {
        report
            .notes
            .push("server RSS unknown: no rss_per_conn_kib (pass --server-pid)".into());
    }
    if let (Some(before), Some(after)) = (harness_before, procinfo::rss_bytes(std::process::id())) {
        report.figures.insert(
            "harness_rss_per_conn_kib".into(),
            after.saturating_sub(before) as f64 / result.slots_ready.max(1) as f64 / 1024.0,
        );
    }
    Ok(report)
}

async fn soak(ctx: &Ctx, a: &SoakArgs) -> anyhow::Result<Report> {
    let users = ctx.users(a.sockets)?;
    let rest_client = Rest::new(&ctx.target, 64)?;
    let members = vec![(0..users.len()).collect::<Vec<_>>()];
    let ids = setup_rooms(&rest_client, &users, &members, "soak").await?;
    let fan = FanoutArgs {
        sockets: a.sockets,
        publishers: None,
        rate: a.rate,
        duration: a.duration,
        body_bytes: 64,
        connect_rate: 0.0,
        settle_secs: 0,
    };
    let mut plan = fanout_plan(ctx, &fan, &tokens(&users), ids[0], ctx.target.clone());
    plan.load.typing_rate = a.typing_rate;
    plan.load.presence_rate = a.presence_rate;
    plan.load.churn_per_sec = a.churn_pct / 100.0;
    plan.load.reconnect_delay = Duration::from_millis(200);
    // The REST mix's sends go to the same room: the ledger expects them on
    // every socket too.
    let rest_acks = Arc::new(engine::ExternalAcks::default());
    plan.external = Some(Arc::clone(&rest_acks));
    let sampler = ctx.sampler(Duration::from_secs(a.sample_secs.max(1)));
    let rest_ctx = ctx.fresh();
    let rest_args = rest::RestArgs {
        rate: a.rest_rate,
        duration: a.duration,
        concurrency: 64,
        mix: "profile=3,rooms=2,history=3,send=2".into(),
        rest_users: a.sockets,
    };
    let rest_max_seq = Arc::new(std::sync::atomic::AtomicI64::new(0));
    let rest_plan = rest::RestPlan {
        users: users.clone(),
        room: ids[0],
        progress: false,
        max_seq: Some(Arc::clone(&rest_max_seq)),
        acks: Some(Arc::clone(&rest_acks)),
    };
    // The REST mix starts with the load, once every socket is ready (or
    // when the engine ends without a load). The scrapes enclose both.
    let baseline = ctx.server_baseline().await;
    let (result, rest_report) = tokio::join!(
        Box::pin(async {
            let result = engine::run(plan, Arc::clone(&ctx.stats), ctx.server_pid).await;
            rest_acks.start();
            result
        }),
        Box::pin(async {
            rest_acks.started().await;
            rest::run_plan(&rest_ctx, &rest_args, rest_plan).await
        }),
    );
    let usage = sampler.map(|s| s.finish(true));
    let check = match baseline {
        Some(b) => {
            let (acked, failed) = rest::send_outcomes(&rest_ctx.stats);
            let known = rest_max_seq.load(std::sync::atomic::Ordering::Relaxed);
            let harness = HarnessFigures::of_engine(&result, known).with_rest(acked, failed);
            Some(b.check(harness).await)
        }
        None => None,
    };
    delete_rooms(&rest_client, &users, &[0], &ids).await;
    let params = json!({"sockets": a.sockets, "rate": a.rate, "typing_rate": a.typing_rate,
        "presence_rate": a.presence_rate, "churn_pct": a.churn_pct, "rest_rate": a.rest_rate,
        "duration_s": a.duration});
    let mut report = engine_report(ctx, "soak", params, &result, usage);
    if let Some(check) = check {
        report.add_server_check(check);
    }
    let rest_report = rest_report?;
    for (k, v) in &rest_report.figures {
        report.figures.insert(format!("rest_{k}"), *v);
    }
    Ok(report)
}
