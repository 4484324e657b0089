//! `churn`: fanout while a share of the non-publishing sockets is
//! dropped and reconnects with `resume` every second.

use std::time::Duration;

use clap::Args;
use serde_json::json;

use crate::FanoutArgs;
use crate::report::Report;

use super::Ctx;
use super::common::one_room_run;
use super::fanout::{fanout_params, fanout_plan};

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

pub(super) async fn churn(ctx: &Ctx, a: &ChurnArgs) -> anyhow::Result<Report> {
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
