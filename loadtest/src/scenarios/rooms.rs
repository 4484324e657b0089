//! `rooms`: many rooms, each socket a member of several, messages in
//! every room.

use std::sync::Arc;
use std::time::Duration;

use anyhow::bail;
use clap::Args;
use serde_json::json;

use crate::client::Rest;
use crate::engine::{self, Load, Plan, SlotPlan};
use crate::report::Report;
use crate::servercheck::HarnessFigures;

use super::Ctx;
use super::common::engine_report;
use super::setup::{delete_rooms, setup_rooms};

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

pub(super) async fn rooms(ctx: &Ctx, a: &RoomsArgs) -> anyhow::Result<Report> {
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
