//! `calibrate`: the fanout scenario against a minimal broadcast server the
//! harness starts in-process, then against Parley, and Parley's figures as
//! a ratio of the reference's. Machines here are noisy; the ratio measured
//! in one run is the figure that counts.
//!
//! The reference server speaks just enough of Parley's protocol for the
//! harness (`ready`, `message.send` → `ack` + `message.created`, `resume` →
//! `resumed`, other requests → `ack`): tokio + tokio-tungstenite, one room,
//! no auth, no persistence. Each message is serialised once and the same
//! bytes are queued to every socket; one writer task per socket feeds up to
//! 64 queued frames and flushes once; a full queue (1024) drops the socket.
//! It runs on its own runtime and threads, beside the harness, as Parley
//! would.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Args;
use futures_util::{SinkExt, StreamExt};
use parley_actors::domain::{MessageId, RoomId, UserId};
use parley_actors::protocol::{
    ClientFrame, MessageView, ReadyRoom, ReadyUser, ServerFrame, wire_time,
};
use serde_json::json;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

use crate::FanoutArgs;
use crate::client::{LoadUser, Rest, Target};
use crate::engine;
use crate::report::Report;
use crate::scenarios::{Ctx, delete_rooms, engine_report, fanout_plan, setup_rooms};
use crate::servercheck::HarnessFigures;

/// `calibrate`.
#[derive(Debug, Clone, Args)]
pub struct CalibrateArgs {
    #[command(flatten)]
    pub fanout: FanoutArgs,
    /// Rates (msg/s) to sweep on both servers, e.g. `50,100,200`; the
    /// highest deliveries/s with p99 within `--p99-max-ms` and no losses
    /// is compared. Default: only `--rate`.
    #[arg(long, value_delimiter = ',')]
    pub rates: Vec<f64>,
    /// The latency bound for the sweep's "highest deliveries/s".
    #[arg(long, default_value_t = 100.0)]
    pub p99_max_ms: f64,
    /// Run only the reference server (no Parley needed).
    #[arg(long)]
    pub reference_only: bool,
    /// Worker threads of the reference server's runtime.
    #[arg(long, default_value_t = 2)]
    pub reference_threads: usize,
}

/// One rate's pair of runs.
#[derive(Debug, Clone, serde::Serialize)]
struct Point {
    rate: f64,
    reference_dps: f64,
    reference_p99_ms: f64,
    reference_losses: u64,
    parley_dps: Option<f64>,
    parley_p99_ms: Option<f64>,
    parley_losses: Option<u64>,
    /// Whether Parley's metrics agreed with the harness (when read).
    #[serde(skip_serializing_if = "Option::is_none")]
    parley_server_agrees: Option<bool>,
}

/// Runs the calibration; returns every run's report, then the summary.
pub async fn run(ctx: &Ctx, a: &CalibrateArgs) -> anyhow::Result<Vec<Report>> {
    let rates = if a.rates.is_empty() {
        vec![a.fanout.rate]
    } else {
        a.rates.clone()
    };
    let reference = Reference::start(a.reference_threads)?;
    eprintln!("reference broadcast server on {}", reference.addr);
    let ref_target = Target::parse(&format!("http://{}", reference.addr), false)?;
    let parley = if a.reference_only {
        None
    } else {
        let users = ctx.users(a.fanout.sockets)?;
        let rest = Rest::new(&ctx.target, 64)?;
        let members = vec![(0..users.len()).collect::<Vec<_>>()];
        let ids = setup_rooms(&rest, &users, &members, "calibrate").await?;
        Some((users, rest, ids))
    };
    let mut reports = Vec::new();
    let mut points = Vec::new();
    for rate in rates {
        let args = FanoutArgs {
            rate,
            ..a.fanout.clone()
        };
        // Reference.
        let rctx = ctx.fresh();
        let plan = fanout_plan(&rctx, &args, &[None], reference.room, ref_target.clone());
        let result = engine::run(plan, Arc::clone(&rctx.stats), None).await;
        let mut rep = engine_report(&rctx, "calibrate/reference", params(&args), &result, None);
        rep.target = ref_target.http_base.clone();
        let mut point = Point {
            rate,
            reference_dps: result.deliveries_per_sec,
            reference_p99_ms: result.latency.p99_ms,
            reference_losses: result.losses.losses,
            parley_dps: None,
            parley_p99_ms: None,
            parley_losses: None,
            parley_server_agrees: None,
        };
        reports.push(rep);
        // Parley.
        if let Some((users, _, ids)) = &parley {
            let pctx = ctx.fresh();
            let tokens = tokens(users);
            let plan = fanout_plan(&pctx, &args, &tokens, ids[0], ctx.target.clone());
            let baseline = pctx.server_baseline().await;
            let sampler = pctx.sampler(Duration::from_secs(1));
            let result = engine::run(plan, Arc::clone(&pctx.stats), pctx.server_pid).await;
            let usage = sampler.map(|s| s.finish(false));
            let mut rep = engine_report(&pctx, "calibrate/parley", params(&args), &result, usage);
            if let Some(b) = baseline {
                let check = b.check(HarnessFigures::of_engine(&result, 0)).await;
                point.parley_server_agrees = check.available.then_some(check.agrees);
                rep.add_server_check(check);
            }
            point.parley_dps = Some(result.deliveries_per_sec);
            point.parley_p99_ms = Some(result.latency.p99_ms);
            point.parley_losses = Some(result.losses.losses);
            reports.push(rep);
        }
        points.push(point);
    }
    reference.stop();
    if let Some((users, rest, ids)) = &parley {
        delete_rooms(rest, users, &[0], ids).await;
    }
    reports.push(summary(ctx, a, &points));
    Ok(reports)
}

fn tokens(users: &[LoadUser]) -> Vec<Option<Arc<str>>> {
    users
        .iter()
        .map(|u| Some(Arc::from(u.access_token.as_str())))
        .collect()
}

fn params(a: &FanoutArgs) -> serde_json::Value {
    crate::scenarios::fanout_params(a)
}

fn summary(ctx: &Ctx, a: &CalibrateArgs, points: &[Point]) -> Report {
    let ok = |p99: f64, losses: u64| p99 <= a.p99_max_ms && losses == 0;
    let best_ref = points
        .iter()
        .filter(|p| ok(p.reference_p99_ms, p.reference_losses))
        .map(|p| p.reference_dps)
        .fold(0.0, f64::max);
    let best_parley = points
        .iter()
        .filter_map(|p| Some((p.parley_dps?, p.parley_p99_ms?, p.parley_losses?)))
        .filter(|(_, p99, losses)| ok(*p99, *losses))
        .map(|(dps, _, _)| dps)
        .fold(0.0, f64::max);
    let mut figures = std::collections::BTreeMap::new();
    figures.insert("reference_best_dps".into(), best_ref.round());
    if !a.reference_only {
        figures.insert("parley_best_dps".into(), best_parley.round());
        figures.insert(
            "best_ratio".into(),
            if best_ref > 0.0 {
                best_parley / best_ref
            } else {
                0.0
            },
        );
        if let Some(first) = points.first()
            && let (Some(dps), Some(p99)) = (first.parley_dps, first.parley_p99_ms)
        {
            figures.insert("dps_ratio".into(), dps / first.reference_dps.max(1e-9));
            figures.insert("p99_ratio".into(), p99 / first.reference_p99_ms.max(1e-9));
        }
        // 1 when every Parley run's server cross-check agreed.
        let checks: Vec<bool> = points
            .iter()
            .filter_map(|p| p.parley_server_agrees)
            .collect();
        if !checks.is_empty() {
            figures.insert(
                "server_agrees".into(),
                f64::from(u8::from(checks.iter().all(|a| *a))),
            );
        }
    }
    Report {
        scenario: "calibrate".into(),
        target: ctx.target.http_base.clone(),
        parameters: json!({"sockets": a.fanout.sockets, "duration_s": a.fanout.duration,
            "p99_max_ms": a.p99_max_ms}),
        figures,
        detail: json!({"points": points}),
        server: None,
        server_check: None,
        slo: Vec::new(),
        notes: vec![format!(
            "best_* = highest deliveries/s among the swept rates with p99 <= {} ms and 0 losses; \
             *_ratio = Parley / reference",
            a.p99_max_ms
        )],
    }
}

/// The reference broadcast server.
#[derive(Debug)]
pub struct Reference {
    pub addr: SocketAddr,
    pub room: RoomId,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// One room: the seq counter and every socket's queue.
#[derive(Debug)]
struct Hub {
    room: RoomId,
    user: UserId,
    inner: Mutex<HubInner>,
}

#[derive(Debug, Default)]
struct HubInner {
    seq: i64,
    next_id: u64,
    conns: HashMap<u64, mpsc::Sender<Message>>,
}

impl Reference {
    /// Binds 127.0.0.1:0 and serves on its own runtime.
    pub fn start(threads: usize) -> anyhow::Result<Self> {
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        std_listener.set_nonblocking(true)?;
        let addr = std_listener.local_addr()?;
        let room = RoomId::new();
        let hub = Arc::new(Hub {
            room,
            user: UserId::new(),
            inner: Mutex::new(HubInner::default()),
        });
        let (tx, rx) = tokio::sync::oneshot::channel();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads.max(1))
            .thread_name("reference")
            .enable_all()
            .build()?;
        let thread = std::thread::Builder::new()
            .name("reference-server".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let listener = match TcpListener::from_std(std_listener) {
                        Ok(l) => l,
                        Err(e) => {
                            eprintln!("reference server: {e}");
                            return;
                        }
                    };
                    tokio::select! {
                        _ = rx => {}
                        () = accept_loop(listener, hub) => {}
                    }
                });
                runtime.shutdown_timeout(Duration::from_secs(1));
            })?;
        Ok(Self {
            addr,
            room,
            shutdown: Some(tx),
            thread: Some(thread),
        })
    }

    /// Stops the server and its thread.
    pub fn stop(mut self) {
        if let Some(tx) = self.shutdown.take()
            && tx.send(()).is_err()
        {
            eprintln!("reference server already stopped");
        }
        if let Some(t) = self.thread.take()
            && t.join().is_err()
        {
            eprintln!("reference server thread panicked");
        }
    }
}

async fn accept_loop(listener: TcpListener, hub: Arc<Hub>) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                // Connection tasks end with their socket; the runtime's
                // shutdown ends the rest.
                tokio::spawn(serve(stream, Arc::clone(&hub)));
            }
            Err(e) => {
                eprintln!("reference accept: {e}");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

fn text(frame: &ServerFrame) -> Option<Message> {
    Utf8Bytes::try_from(frame.to_bytes())
        .ok()
        .map(Message::Text)
}

async fn serve(stream: TcpStream, hub: Arc<Hub>) {
    if stream.set_nodelay(true).is_err() {
        return;
    }
    let config = WebSocketConfig::default()
        .read_buffer_size(4 * 1024)
        .write_buffer_size(64 * 1024);
    let Ok(ws) = tokio_tungstenite::accept_async_with_config(stream, Some(config)).await else {
        return;
    };
    let (mut sink, mut source) = ws.split();
    let (tx, mut rx) = mpsc::channel::<Message>(1024);
    let id = {
        let mut inner = hub.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.next_id += 1;
        let id = inner.next_id;
        inner.conns.insert(id, tx.clone());
        let ready = ServerFrame::Ready {
            session_id: format!("reference-{id}"),
            user: ReadyUser {
                id: hub.user,
                username: "reference".into(),
            },
            rooms: vec![ReadyRoom {
                id: hub.room,
                name: "reference".into(),
                last_seq: inner.seq,
                unread_count: 0,
            }],
            heartbeat_interval_ms: 30_000,
        };
        if let Some(m) = text(&ready)
            && tx.try_send(m).is_err()
        {
            return;
        }
        id
    };
    let writer = tokio::spawn(async move {
        while let Some(first) = rx.recv().await {
            if sink.feed(first).await.is_err() {
                return;
            }
            for _ in 0..63 {
                match rx.try_recv() {
                    Ok(m) => {
                        if sink.feed(m).await.is_err() {
                            return;
                        }
                    }
                    Err(_) => break,
                }
            }
            if sink.flush().await.is_err() {
                return;
            }
        }
        let _closed = sink.close().await;
    });
    while let Some(Ok(msg)) = source.next().await {
        let Message::Text(raw) = msg else {
            if matches!(msg, Message::Close(_)) {
                break;
            }
            continue;
        };
        let reply = match serde_json::from_str::<ClientFrame>(&raw) {
            Ok(ClientFrame::MessageSend {
                body,
                client_id,
                reference,
                ..
            }) => {
                let mut inner = hub.inner.lock().unwrap_or_else(|e| e.into_inner());
                inner.seq += 1;
                let view = MessageView {
                    id: MessageId::new(),
                    room_id: hub.room,
                    seq: inner.seq,
                    author_id: Some(hub.user),
                    body,
                    reply_to: None,
                    created_at: wire_time(chrono::Utc::now()),
                    edited_at: None,
                    deleted: false,
                    reactions: Default::default(),
                    client_id,
                };
                // Serialised once; every queue gets the same bytes.
                let created = ServerFrame::MessageCreated {
                    room_id: hub.room,
                    message: view.clone(),
                };
                if let Some(m) = text(&created) {
                    inner.conns.retain(|_, q| q.try_send(m.clone()).is_ok());
                }
                ServerFrame::Ack {
                    reference,
                    message: Some(view),
                }
            }
            Ok(ClientFrame::Resume { rooms, reference }) => {
                let seq = hub.inner.lock().unwrap_or_else(|e| e.into_inner()).seq;
                ServerFrame::Resumed {
                    reference,
                    rooms: rooms.into_keys().map(|r| (r, seq)).collect(),
                }
            }
            Ok(other) => ServerFrame::Ack {
                reference: other.reference().map(str::to_owned),
                message: None,
            },
            Err(e) => ServerFrame::error(None, "malformed", e.to_string()),
        };
        if let Some(m) = text(&reply)
            && tx.try_send(m).is_err()
        {
            break;
        }
    }
    hub.inner
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .conns
        .remove(&id);
    drop(tx);
    if writer.await.is_err() {
        eprintln!("reference writer panicked");
    }
}
