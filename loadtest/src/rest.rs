//! `rest`: a mix of REST calls (profile, my rooms, history, message send)
//! at a target rate, open loop, with a cap on requests in flight.
//!
//! Latency is measured from the moment a request was *due*, so a server
//! (or harness) that falls behind shows as latency instead of silently
//! lowering the rate (no coordinated omission).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use anyhow::bail;
use clap::Args;
use parley_actors::domain::RoomId;
use serde::Deserialize;
use serde_json::json;
use tokio::task::JoinSet;

use crate::client::{LoadUser, Rest};
use crate::engine::ExternalAcks;
use crate::report::Report;
use crate::scenarios::{Ctx, delete_rooms, setup_rooms};
use crate::stats::{self, Sharded, Summary};
use crate::token::{self, Token};

/// `rest`.
#[derive(Debug, Clone, Args)]
pub struct RestArgs {
    /// Requests per second.
    #[arg(long, default_value_t = 200.0)]
    pub rate: f64,
    /// Seconds of load.
    #[arg(long, default_value_t = 10)]
    pub duration: u64,
    /// Requests in flight at most (beyond it the harness is saturated and
    /// says so).
    #[arg(long, default_value_t = 256)]
    pub concurrency: usize,
    /// Weights of each request kind.
    #[arg(long, default_value = "profile=3,rooms=2,history=3,send=2")]
    pub mix: String,
    /// Users to spread the requests over (the server limits each user to
    /// `--api-per-minute`).
    #[arg(long, default_value_t = 200)]
    pub rest_users: usize,
}

/// What a REST run uses.
#[derive(Debug, Clone)]
pub struct RestPlan {
    pub users: Vec<LoadUser>,
    pub room: RoomId,
    pub progress: bool,
    /// When set, the highest seq of the messages sent (read from the
    /// answers to sends), for the server cross-check.
    pub max_seq: Option<Arc<AtomicI64>>,
    /// When set, every message sent, for the socket engine's ledger (the
    /// room is the engine plan's room 0).
    pub acks: Option<Arc<ExternalAcks>>,
}

/// The seq of a sent message, from the answer to `POST …/messages`.
#[derive(Deserialize)]
struct Sent {
    seq: i64,
}

/// Sends answered 2xx (new messages: every `client_id` is unique), and
/// sends that failed in a way that may still have stored the message (a
/// 5xx, a timeout, a transport error; a 4xx refusal does not store).
pub fn send_outcomes(stats: &stats::Stats) -> (u64, u64) {
    let acked = stats.counters.acked.load(Ordering::Relaxed);
    let failed = stats
        .errors
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .filter(|(kind, _)| kind.starts_with("send_") && !kind.starts_with("send_http_4"))
        .map(|(_, n)| *n)
        .sum();
    (acked, failed)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Profile,
    Rooms,
    History,
    Send,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Self::Profile => "profile",
            Self::Rooms => "rooms",
            Self::History => "history",
            Self::Send => "send",
        }
    }
}

/// Parses `profile=3,rooms=2,…` into a repeating schedule of kinds.
fn parse_mix(mix: &str) -> anyhow::Result<Vec<Kind>> {
    let mut out = Vec::new();
    for part in mix.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (name, weight) = part.split_once('=').unwrap_or((part, "1"));
        let kind = match name.trim() {
            "profile" => Kind::Profile,
            "rooms" => Kind::Rooms,
            "history" => Kind::History,
            "send" => Kind::Send,
            other => bail!("unknown request kind `{other}` (profile, rooms, history, send)"),
        };
        let weight: usize = weight.trim().parse()?;
        out.extend(std::iter::repeat_n(kind, weight));
    }
    if out.is_empty() {
        bail!("the mix is empty");
    }
    // Interleave so that a short run still sees every kind.
    let mut interleaved = Vec::with_capacity(out.len());
    let kinds = [Kind::Profile, Kind::Rooms, Kind::History, Kind::Send];
    let mut left: Vec<usize> = kinds
        .iter()
        .map(|k| out.iter().filter(|x| *x == k).count())
        .collect();
    while interleaved.len() < out.len() {
        for (i, k) in kinds.iter().enumerate() {
            if left[i] > 0 {
                left[i] -= 1;
                interleaved.push(*k);
            }
        }
    }
    Ok(interleaved)
}

/// Provisions users and a room, then runs the mix.
pub async fn run(ctx: &Ctx, a: &RestArgs) -> anyhow::Result<Report> {
    let users = ctx.users(a.rest_users.max(1))?;
    let rest = Rest::new(&ctx.target, a.concurrency)?;
    let members = vec![(0..users.len()).collect::<Vec<_>>()];
    let ids = setup_rooms(&rest, &users, &members, "rest").await?;
    let sampler = ctx.sampler(Duration::from_secs(1));
    let plan = RestPlan {
        users: users.clone(),
        room: ids[0],
        progress: !ctx.common.no_progress && !ctx.common.json,
        max_seq: None,
        acks: None,
    };
    let mut report = run_plan(ctx, a, plan).await?;
    if let Some(s) = sampler {
        report.add_server(s.finish(false));
    }
    delete_rooms(&rest, &users, &[0], &ids).await;
    Ok(report)
}

/// Runs the mix against a prepared room.
pub async fn run_plan(ctx: &Ctx, a: &RestArgs, plan: RestPlan) -> anyhow::Result<Report> {
    // However this ends, the socket engine stops waiting for more sends.
    let _finished = plan.acks.clone().map(Finish);
    let mix = parse_mix(&a.mix)?;
    let rest = Rest::new(&ctx.target, a.concurrency)?;
    let stats = Arc::clone(&ctx.stats);
    let per_kind: Arc<BTreeMap<&'static str, Sharded>> = Arc::new(
        [Kind::Profile, Kind::Rooms, Kind::History, Kind::Send]
            .iter()
            .map(|k| (k.name(), Sharded::new(4)))
            .collect(),
    );
    let sem = Arc::new(tokio::sync::Semaphore::new(a.concurrency.max(1)));
    let total = (a.rate * a.duration as f64).round() as u64;
    let duration = Duration::from_secs(a.duration);
    let progress = crate::report::Progress::start(Arc::clone(&stats), plan.progress, 0, duration);
    progress.phase("load");
    let started = Instant::now();
    let mut set = JoinSet::new();
    let mut issued = 0u64;
    let mut saturated = 0u64;
    let mut tick = tokio::time::interval(Duration::from_millis(2));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let users = Arc::new(plan.users);
    while issued < total {
        tick.tick().await;
        let t = started.elapsed();
        // Request i is due at i / rate: by time t, floor(rate·t) + 1 of
        // them are (without the + 1 each went out a full interval late,
        // and that interval counted as latency: +50 ms at 20 req/s).
        let due = ((a.rate * t.as_secs_f64()) as u64 + 1).min(total);
        while issued < due {
            let due_at = started + Duration::from_secs_f64(issued as f64 / a.rate);
            let permit = match Arc::clone(&sem).try_acquire_owned() {
                Ok(p) => p,
                Err(_) => {
                    saturated += 1;
                    match Arc::clone(&sem).acquire_owned().await {
                        Ok(p) => p,
                        Err(_) => break,
                    }
                }
            };
            let kind = mix[(issued as usize) % mix.len()];
            let user = &users[(issued as usize) % users.len()];
            let req = build(&rest, kind, user, plan.room, issued);
            let task_stats = Arc::clone(&stats);
            let per_kind = Arc::clone(&per_kind);
            let max_seq = plan.max_seq.clone();
            let acks = plan.acks.clone();
            let key = issued as usize;
            set.spawn(async move {
                let stats = task_stats;
                let outcome = req.send().await;
                let us = u64::try_from(due_at.elapsed().as_micros()).unwrap_or(u64::MAX);
                drop(permit);
                match outcome {
                    Ok(resp) if resp.status().is_success() => {
                        stats::inc(&stats.counters.http_ok);
                        if kind == Kind::Send {
                            stats::inc(&stats.counters.acked);
                            if (max_seq.is_some() || acks.is_some())
                                && let Ok(sent) = resp.json::<Sent>().await
                            {
                                if let Some(max) = max_seq {
                                    max.fetch_max(sent.seq, Ordering::Relaxed);
                                }
                                if let Some(acks) = acks {
                                    acks.push(0, sent.seq);
                                }
                            }
                        }
                        stats.latency.record(key, us);
                        if let Some(h) = per_kind.get(kind.name()) {
                            h.record(key, us);
                        }
                    }
                    Ok(resp) => {
                        stats::inc(&stats.counters.http_errors);
                        stats.error(format!("{}_http_{}", kind.name(), resp.status().as_u16()));
                    }
                    Err(e) => {
                        stats::inc(&stats.counters.http_errors);
                        let why = if e.is_timeout() {
                            "timeout"
                        } else if e.is_connect() {
                            "connect"
                        } else {
                            "transport"
                        };
                        stats.error(format!("{}_{why}", kind.name()));
                    }
                }
            });
            if kind == Kind::Send {
                stats::inc(&stats.counters.sent);
            }
            issued += 1;
            while let Some(done) = set.try_join_next() {
                if let Err(e) = done {
                    stats.error(format!("task: {e}"));
                }
            }
        }
    }
    // Requests in flight finish within the client's 30 s timeout.
    while let Some(done) = set.join_next().await {
        if let Err(e) = done {
            stats.error(format!("task: {e}"));
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    progress.finish();
    let c = stats.counters.snapshot();
    let latency = Summary::of(&stats.latency.merged());
    let mut report = Report {
        scenario: "rest".into(),
        target: ctx.target.http_base.clone(),
        parameters: json!({"rate": a.rate, "duration_s": a.duration, "concurrency": a.concurrency,
            "mix": a.mix, "users": users.len()}),
        figures: Default::default(),
        detail: json!({
            "errors": stats.errors.lock().unwrap_or_else(|e| e.into_inner()).clone(),
            "per_kind": per_kind.iter().map(|(k, h)| (k.to_string(), Summary::of(&h.merged()))).collect::<BTreeMap<_, _>>(),
        }),
        server: None,
        server_check: None,
        slo: Vec::new(),
        notes: Vec::new(),
    };
    report.add_summary("", &latency);
    for (k, h) in per_kind.iter() {
        let s = Summary::of(&h.merged());
        report.figures.insert(format!("{k}_p99"), s.p99_ms);
    }
    let f = &mut report.figures;
    f.insert("requests".into(), (c.http_ok + c.http_errors) as f64);
    f.insert(
        "rps".into(),
        (c.http_ok + c.http_errors) as f64 / elapsed.max(1e-3),
    );
    f.insert("http_errors".into(), c.http_errors as f64);
    f.insert("errors".into(), stats.error_total() as f64);
    f.insert("harness_saturated".into(), saturated as f64);
    if saturated > 0 {
        report.notes.push(format!(
            "{saturated} requests waited for a free slot (--concurrency {}): latency includes that wait",
            a.concurrency
        ));
    }
    Ok(report)
}

/// Marks an [`ExternalAcks`] finished when dropped.
struct Finish(Arc<ExternalAcks>);

impl Drop for Finish {
    fn drop(&mut self) {
        self.0.finish();
    }
}

fn build(
    rest: &Rest,
    kind: Kind,
    user: &LoadUser,
    room: RoomId,
    n: u64,
) -> reqwest::RequestBuilder {
    let base = &rest.base;
    let token = &user.access_token;
    match kind {
        Kind::Profile => rest
            .http
            .get(format!("{base}/users/profile"))
            .bearer_auth(token),
        Kind::Rooms => rest.http.get(format!("{base}/rooms")).bearer_auth(token),
        Kind::History => rest
            .http
            .get(format!("{base}/rooms/{room}/messages?limit=50"))
            .bearer_auth(token),
        Kind::Send => {
            let body = token::encode(
                Token {
                    publisher: u32::MAX,
                    sequence: n,
                    sent_unix_nanos: token::unix_nanos(),
                },
                64,
            );
            rest.http
                .post(format!("{base}/rooms/{room}/messages"))
                .bearer_auth(token)
                .json(&json!({"body": body, "client_id": format!("lt-rest-{}-{n}", token::unix_nanos())}))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mix_follows_its_weights_interleaved() {
        let mix = parse_mix("profile=3,rooms=2,history=3,send=2").unwrap();
        assert_eq!(mix.len(), 10);
        assert_eq!(mix.iter().filter(|k| **k == Kind::Send).count(), 2);
        assert_eq!(
            &mix[..4],
            &[Kind::Profile, Kind::Rooms, Kind::History, Kind::Send]
        );
        assert!(parse_mix("nope=1").is_err());
        assert!(parse_mix("").is_err());
    }
}
