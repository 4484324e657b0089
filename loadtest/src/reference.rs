//! The minimal reference broadcast server `calibrate` compares Parley with.
//!
//! It speaks just enough of Parley's protocol for the harness (`ready`,
//! `message.send` → `ack` + `message.created`, `resume` → `resumed`, other
//! requests → `ack`): tokio + tokio-tungstenite, one room, no auth, no
//! persistence. Each message is serialised once and the same bytes are
//! queued to every socket; one writer task per socket feeds up to 64 queued
//! frames and flushes once; a full queue (1024) drops the socket.
//!
//! By default `calibrate` runs it in its own process, like Parley: the
//! harness re-executes itself as `parley-loadtest reference-server`
//! ([`ReferenceChild`]), which prints one JSON line on stdout with its
//! address, room and pid ([`ReadyLine`]) and serves until its stdin
//! closes, SIGTERM, ctrl-c, or `--max-secs`. [`Reference`] runs the same
//! server on a runtime of its own inside the harness process
//! (`calibrate --reference-in-process`).

use std::collections::HashMap;
use std::io::Write;
use std::net::SocketAddr;
use std::process::{ExitCode, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use futures_util::{SinkExt, StreamExt};
use parley_actors::domain::{MessageId, RoomId, UserId};
use parley_actors::protocol::{
    ClientFrame, MessageView, ReadyRoom, ReadyUser, ServerFrame, wire_time,
};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, ChildStdin, ChildStdout};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

/// `reference-server`.
#[derive(Debug, Clone, Args)]
pub struct ReferenceServerArgs {
    /// Address to listen on (port 0: any free port; the bound address is
    /// printed). Loopback only unless `--allow-remote`.
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
    /// Worker threads of the server's runtime.
    #[arg(long, default_value_t = 2)]
    pub threads: usize,
    /// Stop after this many seconds whatever happens.
    #[arg(long, default_value_t = 3600)]
    pub max_secs: u64,
    /// Keep serving when stdin closes (by default a closed stdin stops the
    /// server, so that it never outlives the harness that started it).
    #[arg(long)]
    pub ignore_stdin: bool,
}

/// What `reference-server` prints on stdout once it listens, as the one
/// line `{"reference_server":{…}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReferenceReady {
    /// The bound address.
    pub addr: SocketAddr,
    /// The one room every socket is in.
    pub room: RoomId,
    /// The server's process id (for RSS/CPU from /proc).
    pub pid: u32,
    /// Worker threads of its runtime.
    pub threads: usize,
    /// Its soft open-file limit, when it could be read.
    pub nofile: Option<u64>,
    /// Its maximum lifetime, seconds.
    pub max_secs: u64,
}

/// The line's envelope: a key no other output starts with.
#[derive(Debug, Serialize, Deserialize)]
struct ReadyLine {
    reference_server: ReferenceReady,
}

impl ReferenceReady {
    /// The line to print (no newline).
    pub fn to_line(&self) -> String {
        serde_json::to_string(&ReadyLine {
            reference_server: self.clone(),
        })
        .unwrap_or_default()
    }

    /// Parses the line; `None` for any other line.
    pub fn parse_line(line: &str) -> Option<Self> {
        serde_json::from_str::<ReadyLine>(line.trim())
            .ok()
            .map(|l| l.reference_server)
    }
}

/// Runs `reference-server` on a runtime of `--threads` workers until it is
/// told to stop.
pub fn server_main(a: &ReferenceServerArgs, allow_remote: bool) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(a.threads.max(1))
        .thread_name("reference")
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: reference server runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = runtime.block_on(serve_until_stopped(a, allow_remote));
    // Connection tasks still open are dropped with the runtime.
    runtime.shutdown_timeout(Duration::from_secs(1));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: reference server: {e:#}");
            ExitCode::from(1)
        }
    }
}

async fn serve_until_stopped(a: &ReferenceServerArgs, allow_remote: bool) -> anyhow::Result<()> {
    if !a.listen.ip().is_loopback() && !allow_remote {
        bail!(
            "{} is not a loopback address (the reference server has no auth); pass --allow-remote",
            a.listen
        );
    }
    let listener = TcpListener::bind(a.listen)
        .await
        .with_context(|| format!("binding {}", a.listen))?;
    let addr = listener.local_addr()?;
    let hub = Hub::new();
    let ready = ReferenceReady {
        addr,
        room: hub.room,
        pid: std::process::id(),
        threads: a.threads.max(1),
        nofile: rlimit::getrlimit(rlimit::Resource::NOFILE)
            .ok()
            .map(|(soft, _)| soft),
        max_secs: a.max_secs,
    };
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    // The banner first: whoever reads the line may print next.
    eprintln!(
        "reference server {} on {addr}, room {}, {} threads; stops {}after {} s, on SIGTERM or ctrl-c",
        ready.pid,
        ready.room,
        ready.threads,
        if a.ignore_stdin {
            ""
        } else {
            "when stdin closes, "
        },
        a.max_secs
    );
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{}", ready.to_line())?;
        out.flush()?;
    }
    let stdin_closed = stdin_closed(a.ignore_stdin);
    let why = tokio::select! {
        () = accept_loop(listener, hub) => "the accept loop ended",
        () = stdin_closed => "stdin closed",
        _ = term.recv() => "SIGTERM",
        _ = tokio::signal::ctrl_c() => "interrupted",
        () = tokio::time::sleep(Duration::from_secs(a.max_secs)) => "its maximum lifetime was reached",
    };
    eprintln!("reference server {} stops: {why}", ready.pid);
    Ok(())
}

/// Resolves when stdin reaches its end (or fails); never when `ignore`.
async fn stdin_closed(ignore: bool) {
    if ignore {
        return std::future::pending().await;
    }
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    // A plain thread: a blocking read in the runtime's blocking pool would
    // hold up the runtime's shutdown. It ends with stdin or the process.
    let spawned = std::thread::Builder::new()
        .name("reference-stdin".into())
        .spawn(move || {
            let mut sink = std::io::sink();
            let _copied = std::io::copy(&mut std::io::stdin().lock(), &mut sink);
            let _closed = tx.send(());
        });
    if let Err(e) = spawned {
        eprintln!("reference server: not watching stdin: {e}");
        return std::future::pending().await;
    }
    let _eof = rx.await;
}

/// The reference server in its own process: `parley-loadtest
/// reference-server` started from the harness's own executable. Dropping
/// it kills the process.
#[derive(Debug)]
pub struct ReferenceChild {
    pub ready: ReferenceReady,
    child: Child,
    stdin: Option<ChildStdin>,
    /// Kept open so that the child never writes into a closed pipe.
    _stdout: Lines<BufReader<ChildStdout>>,
}

impl ReferenceChild {
    /// Starts the process and waits (at most 15 s) for its address line.
    pub async fn spawn(threads: usize, max_secs: u64) -> anyhow::Result<Self> {
        let exe = std::env::current_exe().context("finding the harness's own executable")?;
        let mut child = tokio::process::Command::new(&exe)
            .arg("reference-server")
            .args(["--listen", "127.0.0.1:0"])
            .args(["--threads", &threads.to_string()])
            .args(["--max-secs", &max_secs.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {} reference-server", exe.display()))?;
        let stdin = child.stdin.take();
        let stdout = child
            .stdout
            .take()
            .context("the reference server's stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let ready = tokio::time::timeout(Duration::from_secs(15), async {
            for _ in 0..64 {
                match lines.next_line().await? {
                    Some(line) => match ReferenceReady::parse_line(&line) {
                        Some(ready) => return Ok(ready),
                        None => eprintln!("reference server: {line}"),
                    },
                    None => bail!("the reference server exited before printing its address"),
                }
            }
            bail!("the reference server printed 64 lines but no address")
        })
        .await
        .context("the reference server did not print its address within 15 s")??;
        // `child` is killed on the way out of an error above.
        Ok(Self {
            ready,
            child,
            stdin,
            _stdout: lines,
        })
    }

    /// Whether the process has already ended, and how.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Stops the process: closes its stdin, waits up to 3 s for it to end,
    /// then kills it; reaps it either way. Returns a note when it had
    /// ended before, or did not end cleanly.
    pub async fn stop(mut self) -> Option<String> {
        if let Some(status) = self.exited() {
            return Some(format!(
                "the reference server process ended during the run ({status})"
            ));
        }
        drop(self.stdin.take());
        match tokio::time::timeout(Duration::from_secs(3), self.child.wait()).await {
            Ok(Ok(status)) if status.success() => None,
            Ok(Ok(status)) => Some(format!("the reference server process ended with {status}")),
            Ok(Err(e)) => Some(format!("waiting for the reference server process: {e}")),
            Err(_) => match self.child.kill().await {
                Ok(()) => Some("the reference server process had to be killed".into()),
                Err(e) => Some(format!("killing the reference server process: {e}")),
            },
        }
    }
}

/// The reference server on its own runtime and threads inside the harness
/// process (`calibrate --reference-in-process`). Dropping it stops the
/// server without waiting for its thread.
#[derive(Debug)]
pub struct Reference {
    pub addr: SocketAddr,
    pub room: RoomId,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Reference {
    /// Binds 127.0.0.1:0 and serves on its own runtime.
    pub fn start(threads: usize) -> anyhow::Result<Self> {
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        std_listener.set_nonblocking(true)?;
        let addr = std_listener.local_addr()?;
        let hub = Hub::new();
        let room = hub.room;
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

    /// Stops the server and joins its thread.
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

impl Drop for Reference {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _stopped = tx.send(());
        }
    }
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

impl Hub {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            room: RoomId::new(),
            user: UserId::new(),
            inner: Mutex::new(HubInner::default()),
        })
    }
}

async fn accept_loop(listener: TcpListener, hub: Arc<Hub>) {
    // Accept errors (e.g. EMFILE) are reported at most once a second.
    let mut failed = 0u64;
    let mut last_report: Option<Instant> = None;
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                // Connection tasks end with their socket; the runtime's
                // shutdown ends the rest.
                tokio::spawn(serve(stream, Arc::clone(&hub)));
            }
            Err(e) => {
                failed += 1;
                if last_report.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
                    eprintln!("reference accept: {e} ({failed} accept errors so far)");
                    last_report = Some(Instant::now());
                }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn ready() -> ReferenceReady {
        ReferenceReady {
            addr: "127.0.0.1:40123".parse().unwrap(),
            room: RoomId::new(),
            pid: 4242,
            threads: 2,
            nofile: Some(20_000),
            max_secs: 3600,
        }
    }

    #[test]
    fn the_address_line_round_trips() {
        let r = ready();
        let line = r.to_line();
        assert!(!line.contains('\n'));
        assert!(line.starts_with(r#"{"reference_server":{"addr":"127.0.0.1:40123","room":""#));
        assert_eq!(ReferenceReady::parse_line(&line), Some(r.clone()));
        // With the newline and spaces a reader may leave.
        assert_eq!(
            ReferenceReady::parse_line(&format!("  {line}\r\n")),
            Some(r)
        );
    }

    #[test]
    fn the_address_line_is_parsed_from_its_fields() {
        let line = r#"{"reference_server":{"addr":"[::1]:8081","room":"0190f1c2-7d2e-7000-8000-000000000001","pid":7,"threads":4,"nofile":null,"max_secs":60}}"#;
        let r = ReferenceReady::parse_line(line).unwrap();
        assert_eq!(r.addr, "[::1]:8081".parse().unwrap());
        assert_eq!(r.room.to_string(), "0190f1c2-7d2e-7000-8000-000000000001");
        assert_eq!((r.pid, r.threads, r.nofile, r.max_secs), (7, 4, None, 60));
    }

    #[test]
    fn other_lines_are_not_the_address_line() {
        for line in [
            "",
            "reference server 7 on 127.0.0.1:1",
            "{}",
            r#"{"addr":"127.0.0.1:1"}"#,
            r#"{"reference_server":{"addr":"127.0.0.1:1"}}"#,
            r#"{"reference_server":{"addr":"nowhere","room":"0190f1c2-7d2e-7000-8000-000000000001","pid":7,"threads":4,"nofile":null,"max_secs":60}}"#,
        ] {
            assert_eq!(ReferenceReady::parse_line(line), None, "{line}");
        }
    }

    #[tokio::test]
    async fn a_non_loopback_listen_address_is_refused() {
        let a = ReferenceServerArgs {
            listen: "0.0.0.0:0".parse().unwrap(),
            threads: 1,
            max_secs: 1,
            ignore_stdin: true,
        };
        let err = serve_until_stopped(&a, false).await.unwrap_err();
        assert!(err.to_string().contains("not a loopback address"), "{err}");
    }

    #[tokio::test]
    async fn the_in_process_server_answers_ready() {
        let r = Reference::start(1).unwrap();
        let url = format!("ws://{}/ws", r.addr);
        let (mut ws, _) = tokio_tungstenite::connect_async(url.as_str())
            .await
            .unwrap();
        let first = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        let text = first.into_text().unwrap();
        assert!(text.contains(r#""type":"ready""#), "{text}");
        assert!(text.contains(&r.room.to_string()), "{text}");
        drop(ws);
        r.stop();
    }
}
