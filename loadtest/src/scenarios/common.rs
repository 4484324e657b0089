//! What several scenarios share: the single-room run against Parley,
//! the bare plan, the tokens of the load users, and the engine report.

use std::sync::Arc;
use std::time::Duration;

use parley_actors::domain::RoomId;

use crate::client::{LoadUser, Rest};
use crate::engine::{self, EngineResult, Load, Plan, SlotPlan};
use crate::procinfo::ServerUsage;
use crate::report::Report;
use crate::servercheck::HarnessFigures;

use super::Ctx;
use super::setup::{delete_rooms, setup_rooms};

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

pub(super) fn tokens(users: &[LoadUser]) -> Vec<Option<Arc<str>>> {
    users
        .iter()
        .map(|u| Some(Arc::from(u.access_token.as_str())))
        .collect()
}

/// A single-room run against Parley: provision, run, clean up. With
/// `cross_check` (scenarios that send messages), the server's metrics are
/// scraped before and after the run and compared.
pub(super) async fn one_room_run(
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

/// Sockets with no room traffic (connect, idle).
pub(super) fn bare_plan(
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
