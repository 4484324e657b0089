//! `presence`: `typing` and `presence.set` storms in one room.

use clap::Args;
use serde_json::json;

use crate::FanoutArgs;
use crate::report::Report;

use super::Ctx;
use super::common::one_room_run;
use super::fanout::fanout_plan;

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

pub(super) async fn presence(ctx: &Ctx, a: &PresenceArgs) -> anyhow::Result<Report> {
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
