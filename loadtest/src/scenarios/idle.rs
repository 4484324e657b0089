//! `idle`: N authenticated idle sockets held; the server's RSS per
//! connection.

use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use serde_json::json;

use crate::engine;
use crate::procinfo;
use crate::report::{self, Report};

use super::Ctx;
use super::common::{bare_plan, engine_report};

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

pub(super) async fn idle(ctx: &Ctx, a: &IdleArgs) -> anyhow::Result<Report> {
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
