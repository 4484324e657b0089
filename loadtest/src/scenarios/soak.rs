//! `soak`: a long run mixing messages, typing, presence, churn and a REST
//! mix, with the server's RSS sampled over time.

use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use serde_json::json;

use crate::client::Rest;
use crate::engine;
use crate::report::Report;
use crate::servercheck::HarnessFigures;
use crate::{FanoutArgs, rest};

use super::Ctx;
use super::common::{engine_report, tokens};
use super::fanout::fanout_plan;
use super::setup::{delete_rooms, setup_rooms};

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

pub(super) async fn soak(ctx: &Ctx, a: &SoakArgs) -> anyhow::Result<Report> {
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
