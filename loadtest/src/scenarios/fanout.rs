//! `fanout`: one room, every socket a member, the first publishers send;
//! its plan and parameters are shared with `calibrate`.

use std::sync::Arc;
use std::time::Duration;

use parley_actors::domain::RoomId;
use serde_json::json;

use crate::FanoutArgs;
use crate::client::Target;
use crate::engine::{Load, Plan, SlotPlan};
use crate::report::Report;

use super::Ctx;
use super::common::one_room_run;

pub(super) fn publishers(a: &FanoutArgs) -> usize {
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

pub(super) async fn fanout(ctx: &Ctx, a: &FanoutArgs) -> anyhow::Result<Report> {
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
