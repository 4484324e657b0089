//! `connect`: a connection storm with bearer auth; sockets opened at a
//! paced rate, timed to `ready`, then held.

use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use serde_json::json;

use crate::engine;
use crate::report::Report;

use super::Ctx;
use super::common::{bare_plan, engine_report};

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

pub(super) async fn connect(ctx: &Ctx, a: &ConnectArgs) -> anyhow::Result<Report> {
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
