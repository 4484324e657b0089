//! `GET /ws`: the WebSocket upgrade, and per socket one reader (this task)
//! and ONE writer task around the socket's bounded [`Outbox`] queues.
//!
//! The reader parses, validates and rate-limits frames and hands them to
//! the socket's connection actor; it answers what it cannot pass on with an
//! `error` frame and keeps the connection. The writer drains the durable
//! queue first, then the ephemeral one, feeding several frames before each
//! flush, pings every heartbeat interval, and sends the close frame when the
//! socket is told to close (revocation 4003, slow consumer 4009, …).

use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use governor::{DefaultDirectRateLimiter, Quota};
use parley_actors::connection::ConnectionMsg;
use parley_actors::protocol::{CLIENT_TYPES, ClientFrame, ServerFrame, close};
use parley_actors::sockets::{CloseReason, Next, Outbox, OutboxReader};
use parley_actors::telemetry as rt_metrics;
use ractor::ActorRef;
use tokio_util::sync::CancellationToken;

use super::error::ApiError;
use super::extract::AuthUser;
use crate::startup::AppState;

/// Frames fed to the socket before one flush.
const WRITE_BATCH: usize = 64;
/// How long a closed socket waits for the client's close frame.
const CLOSE_LINGER: Duration = Duration::from_secs(3);

/// Bytes buffered before the WebSocket layer writes to the socket.
const WRITE_BUFFER_BYTES: usize = 16 * 1024;

/// The upgrade: checks `Origin`, the connection cap and (when present) the
/// bearer token, then hands the socket to [`run_socket`].
pub async fn upgrade(
    State(state): State<AppState>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    if !origin_allowed(&headers, &state.settings.allowed_origins()) {
        metrics::counter!(rt_metrics::WS_CLOSES, "code" => "origin").increment(1);
        return ApiError::Forbidden("this origin may not open a socket").into_response();
    }
    // Counts sockets from the upgrade on, authenticated or not, so sockets
    // waiting for their `auth` frame cannot exhaust the cap either.
    let Some(slot) = SocketSlot::take(&state.open_sockets, state.settings.ws_max_connections)
    else {
        return ApiError::Unavailable("the server is at its connection limit").into_response();
    };
    let pre_auth = match bearer(&headers) {
        Some(token) => match state.accounts.authenticate(&token).await {
            Ok(user) => Some(user),
            Err(e) => return e.into_response(),
        },
        None => None,
    };
    let settings = &state.settings;
    let frame_limit = settings.ws_max_frame_bytes;
    ws
        // Larger than the contract's frame limit so that a frame slightly
        // over it gets an error frame; far beyond it the socket closes (1009).
        .max_message_size(frame_limit.saturating_mul(4))
        .max_frame_size(frame_limit.saturating_mul(4))
        .read_buffer_size(4 * 1024)
        // Frames fed in one writer batch go out in few writes; the buffer
        // only grows on sockets that are sent to.
        .write_buffer_size(WRITE_BUFFER_BYTES)
        .max_write_buffer_size(settings.ws_max_write_buffer_bytes)
        .on_upgrade(move |socket| {
            // Boxed here, outside the task's own future: only the live
            // socket's state stays with the task once setup is done.
            let setup = Box::pin(open_socket(state, socket, pre_auth));
            async move {
                if let Some(live) = setup.await {
                    live.run().await;
                }
                drop(slot);
            }
        })
        .into_response()
}

/// One of the server's `ws_max_connections` socket slots; freed on drop
/// (also when an upgrade never completes and its callback is dropped).
#[derive(Debug)]
struct SocketSlot(Arc<AtomicUsize>);

impl SocketSlot {
    fn take(open: &Arc<AtomicUsize>, cap: usize) -> Option<Self> {
        open.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
            (n < cap).then_some(n + 1)
        })
        .ok()
        .map(|_| Self(Arc::clone(open)))
    }
}

impl Drop for SocketSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_owned())
}

/// Browsers send `Origin`; a page on another site must not open a socket
/// with the user's credentials. Same-origin and allowlisted origins pass;
/// clients that send no `Origin` (not browsers) pass.
fn origin_allowed(headers: &HeaderMap, allowlist: &[String]) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    if allowlist
        .iter()
        .any(|allowed| allowed.eq_ignore_ascii_case(origin))
    {
        return true;
    }
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    let origin_host = origin.split_once("://").map(|(_, rest)| rest);
    matches!((host, origin_host), (Some(h), Some(o)) if h.eq_ignore_ascii_case(o))
}

/// Closes a socket that never got going. Boxed: the socket moves into this
/// future, and inline its state would double the size of every socket's
/// task.
fn close_now(
    mut socket: WebSocket,
    code: u16,
    reason: &'static str,
) -> futures_util::future::BoxFuture<'static, ()> {
    Box::pin(async move {
        metrics::counter!(rt_metrics::WS_CLOSES, "code" => code.to_string()).increment(1);
        let frame = CloseFrame {
            code,
            reason: Utf8Bytes::from_static(reason),
        };
        if let Err(e) = socket.send(Message::Close(Some(frame))).await {
            tracing::debug!(error = %e, "close frame not sent");
        }
    })
}

/// Waits for `{"type": "auth", "token": …}` as the first frame.
async fn first_frame_auth(
    state: &AppState,
    socket: &mut WebSocket,
) -> Result<AuthUser, (u16, &'static str)> {
    let wait = Duration::from_secs(state.settings.ws_auth_timeout_secs);
    let read = async {
        loop {
            match socket.next().await {
                Some(Ok(Message::Text(text))) => return Some(text),
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                _ => return None,
            }
        }
    };
    let text = match tokio::time::timeout(wait, read).await {
        Ok(Some(text)) => text,
        Ok(None) => return Err((close::UNAUTHENTICATED, "not authenticated")),
        Err(_) => return Err((close::UNAUTHENTICATED, "auth timeout")),
    };
    match parse_frame(&text) {
        Some(ClientFrame::Auth { token }) => state
            .accounts
            .authenticate(&token)
            .await
            .map_err(|_| (close::UNAUTHENTICATED, "invalid token")),
        _ => Err((close::UNAUTHENTICATED, "first frame must be auth")),
    }
}

/// A socket that is authenticated and registered: what its reader task
/// keeps for the socket's life. The setup that produced it ([`open_socket`])
/// runs in a future of its own, freed once the socket is live, so its
/// larger states (the upgraded socket before the split, a store lookup, the
/// registration) are not kept in every socket's task.
struct LiveSocket {
    state: AppState,
    outbox: Arc<Outbox>,
    actor: ActorRef<ConnectionMsg>,
    stream: SplitStream<WebSocket>,
    writer: tokio::task::JoinHandle<()>,
    done: CancellationToken,
    heartbeat: Duration,
    /// The user's socket slot, freed once the socket is unregistered.
    slot: Option<parley_actors::sockets::UserSlot>,
}

/// Authenticates (unless the upgrade did), takes the user's slot, registers
/// the socket with the realtime core and starts its writer; a socket that
/// may not go live is closed here.
async fn open_socket(
    state: AppState,
    mut socket: WebSocket,
    pre_auth: Option<AuthUser>,
) -> Option<LiveSocket> {
    let auth = match pre_auth {
        Some(auth) => auth,
        None => match first_frame_auth(&state, &mut socket).await {
            Ok(auth) => auth,
            Err((code, reason)) => {
                close_now(socket, code, reason).await;
                return None;
            }
        },
    };
    let realtime = &state.realtime;
    let Some(slot) =
        realtime.reserve_slot(auth.user_id, state.settings.ws_max_connections_per_user)
    else {
        close_now(socket, close::POLICY, "too many connections for this user").await;
        return None;
    };
    let (outbox, reader) = realtime.outbox(auth.user_id, auth.session_id);
    let heartbeat = Duration::from_secs(state.settings.ws_heartbeat_secs.max(1));
    let connected = realtime
        .connect(
            &outbox,
            &auth.username,
            u64::try_from(heartbeat.as_millis()).unwrap_or(u64::MAX),
        )
        .await;
    let actor = match connected {
        Ok(actor) => actor,
        Err(e) => {
            tracing::error!(error = %e, "socket not accepted into the realtime core");
            close_now(socket, 1011, "server error").await;
            return None;
        }
    };
    // A token revoked between the check and the registration still closes.
    if state.accounts.revoked().contains(&auth.session_id) {
        outbox.close(close::REVOKED, "session revoked");
    }
    let (sink, stream) = socket.split();
    let done = CancellationToken::new();
    let writer = state
        .socket_writers
        .spawn(write_loop(sink, reader, done.clone()));
    Some(LiveSocket {
        state,
        outbox,
        actor,
        stream,
        writer,
        done,
        heartbeat,
        slot: Some(slot),
    })
}

impl LiveSocket {
    /// Reads until the socket ends, then unregisters it and lets the writer
    /// send what is queued and the close frame.
    async fn run(mut self) {
        read_loop(
            &self.state,
            &mut self.stream,
            &self.outbox,
            &self.actor,
            self.heartbeat,
            &self.done,
        )
        .await;
        self.state.realtime.disconnect(&self.outbox, &self.actor);
        if !self.outbox.is_closing() {
            self.outbox.close(1000, "bye");
        }
        if let Err(e) = (&mut self.writer).await {
            tracing::error!(error = %e, "socket writer failed");
        }
        // The user may open another socket while this one lingers.
        self.slot = None;
        // The closing handshake: read (and drop) what the client still
        // sends until its close frame arrives. Closed at once, the socket
        // would answer a late frame (a pong to a ping the client had not
        // read yet) with a reset, and the client could fail on it before
        // reading our close frame and its code.
        let drained = tokio::time::timeout(CLOSE_LINGER, async {
            while let Some(Ok(_)) = self.stream.next().await {}
        });
        if drained.await.is_err() {
            tracing::debug!("the client did not finish the closing handshake");
        }
    }
}

/// Per-socket event limiter with strike counting.
struct EventLimit {
    limiter: DefaultDirectRateLimiter,
    strikes: u32,
    max_strikes: u32,
}

impl EventLimit {
    fn new(per_second: u32, burst: u32, max_strikes: u32) -> Self {
        let per_second = NonZeroU32::new(per_second.max(1)).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(burst.max(1)).unwrap_or(NonZeroU32::MIN);
        Self {
            limiter: DefaultDirectRateLimiter::direct(
                Quota::per_second(per_second).allow_burst(burst),
            ),
            strikes: 0,
            max_strikes,
        }
    }
}

fn push_frame(outbox: &Outbox, frame: &ServerFrame) {
    metrics::counter!(rt_metrics::WS_EVENTS, "direction" => "out", "type" => frame.kind())
        .increment(1);
    outbox.push(frame.to_bytes(), frame.is_ephemeral());
}

async fn read_loop(
    state: &AppState,
    stream: &mut SplitStream<WebSocket>,
    outbox: &Arc<Outbox>,
    actor: &ActorRef<ConnectionMsg>,
    heartbeat: Duration,
    done: &CancellationToken,
) {
    let settings = &state.settings;
    let mut limit = EventLimit::new(
        settings.ws_events_per_second,
        settings.ws_events_burst,
        settings.ws_rate_strikes,
    );
    let silence = heartbeat * 2;
    loop {
        let next = tokio::select! {
            () = done.cancelled() => break,
            next = tokio::time::timeout(silence, stream.next()) => next,
        };
        let message = match next {
            Err(_) => {
                outbox.close(close::IDLE, "heartbeat timeout");
                break;
            }
            Ok(None) => break,
            Ok(Some(Err(e))) => {
                tracing::debug!(error = %e, "socket read failed");
                if e.to_string().contains("too long") || e.to_string().contains("Space limit") {
                    outbox.close(close::TOO_BIG, "frame too large");
                }
                break;
            }
            Ok(Some(Ok(message))) => message,
        };
        match message {
            Message::Text(text) => {
                if !handle_text(
                    &state.realtime,
                    settings,
                    outbox,
                    actor,
                    &mut limit,
                    text.as_str(),
                ) {
                    break;
                }
            }
            Message::Binary(_) => push_frame(
                outbox,
                &ServerFrame::error(
                    None,
                    "unsupported_frame",
                    "binary frames are not supported; send JSON text",
                ),
            ),
            Message::Ping(_) | Message::Pong(_) => {}
            Message::Close(_) => break,
        }
    }
}

/// Handles one text frame; `false` ends the connection.
fn handle_text(
    realtime: &parley_actors::Realtime,
    settings: &crate::config::Settings,
    outbox: &Outbox,
    actor: &ActorRef<ConnectionMsg>,
    limit: &mut EventLimit,
    text: &str,
) -> bool {
    if text.len() > settings.ws_max_frame_bytes {
        push_frame(
            outbox,
            &ServerFrame::error(
                None,
                "frame_too_large",
                format!(
                    "frames may be at most {} bytes",
                    settings.ws_max_frame_bytes
                ),
            ),
        );
        return true;
    }
    // The common case parses once, straight into the typed frame; only a
    // frame that fails is parsed again to say precisely what is wrong.
    let frame = match parse_frame(text) {
        Some(frame) => frame,
        None => {
            push_frame(outbox, &diagnose(text));
            return true;
        }
    };
    let reference = frame.reference().map(str::to_owned);
    let reference = reference.as_deref();
    metrics::counter!(rt_metrics::WS_EVENTS, "direction" => "in", "type" => frame.kind())
        .increment(1);
    if frame.is_rate_limited() {
        match limit.limiter.check() {
            Ok(()) => limit.strikes = 0,
            Err(not_until) => {
                limit.strikes += 1;
                metrics::counter!(rt_metrics::WS_RATE_LIMITED).increment(1);
                if limit.strikes > limit.max_strikes {
                    outbox.close(close::POLICY, "rate limit exceeded persistently");
                    return false;
                }
                let wait = not_until.wait_time_from(governor::clock::Clock::now(
                    &governor::clock::DefaultClock::default(),
                ));
                push_frame(
                    outbox,
                    &ServerFrame::Error {
                        reference: reference.map(str::to_owned),
                        code: "rate_limited".to_owned(),
                        message: "too many events; slow down".to_owned(),
                        retry_after_ms: Some(
                            u64::try_from(wait.as_millis()).unwrap_or(u64::MAX).max(1),
                        ),
                    },
                );
                return true;
            }
        }
    }
    if realtime.deliver_frame(actor, frame).is_err() {
        outbox.close(1011, "server error");
        return false;
    }
    true
}

/// The error frame for a text frame that is not a valid client frame.
/// A client frame, or `None` when the text is not one. Frames are JSON
/// objects: serde would also read an internally tagged enum from an array
/// (tag first, then the fields in order), which the contract does not allow.
fn parse_frame(text: &str) -> Option<ClientFrame> {
    if !text.trim_start().starts_with('{') {
        return None;
    }
    serde_json::from_str(text).ok()
}

fn diagnose(text: &str) -> ServerFrame {
    let value: serde_json::Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            return ServerFrame::error(
                None,
                "malformed_frame",
                format!("frame is not valid JSON: {e}"),
            );
        }
    };
    let reference = value.get("ref").and_then(|r| r.as_str());
    let Some(kind) = value.get("type").and_then(|t| t.as_str()) else {
        return ServerFrame::error(
            reference,
            "invalid_frame",
            "frame must be a JSON object with a string `type`",
        );
    };
    if !CLIENT_TYPES.contains(&kind) {
        return ServerFrame::error(
            reference,
            "unknown_type",
            format!("unknown frame type `{kind}`"),
        );
    }
    let detail = serde_json::from_value::<ClientFrame>(value.clone())
        .err()
        .map_or_else(|| "invalid frame".to_owned(), |e| e.to_string());
    ServerFrame::error(reference, "invalid_frame", format!("{kind}: {detail}"))
}

async fn write_loop(
    mut sink: SplitSink<WebSocket, Message>,
    outbox: OutboxReader,
    done: CancellationToken,
) {
    let result: Result<(), axum::Error> = async {
        loop {
            match outbox.next().await {
                // Whatever else is queued goes out in the same write, up to
                // a batch.
                Next::Frame(bytes) => {
                    sink.feed(text(bytes)).await?;
                    let mut fed = 1;
                    while fed < WRITE_BATCH
                        && let Some(bytes) = outbox.try_frame()
                    {
                        sink.feed(text(bytes)).await?;
                        fed += 1;
                    }
                    sink.flush().await?;
                }
                Next::Ping => sink.send(Message::Ping(Bytes::new())).await?,
                // Boxed: it runs once, and inline it would grow every idle
                // socket's task.
                Next::Close(reason) => return Box::pin(close_socket(&mut sink, reason)).await,
            }
        }
    }
    .await;
    if let Err(e) = result {
        tracing::debug!(error = %e, "socket write failed");
    }
    done.cancel();
}

/// Sends the close frame (an orderly close has had its queued events
/// written first: see `OutboxReader::next`).
async fn close_socket(
    sink: &mut SplitSink<WebSocket, Message>,
    reason: CloseReason,
) -> Result<(), axum::Error> {
    metrics::counter!(rt_metrics::WS_CLOSES, "code" => reason.code.to_string()).increment(1);
    sink.send(Message::Close(Some(CloseFrame {
        code: reason.code,
        reason: Utf8Bytes::from(reason.reason),
    })))
    .await
}

fn text(bytes: Bytes) -> Message {
    // Frames are serialised from Rust strings, so this never fails.
    Message::Text(Utf8Bytes::try_from(bytes).unwrap_or_else(|_| Utf8Bytes::from_static("{}")))
}

/// The runtime socket writer tasks run on, apart from the one that reads
/// sockets and runs the actors, the database and HTTP.
///
/// A message to a 10,000-member room wakes 10,000 writer tasks. On one
/// runtime they fill its run queues, and every step of the next message's
/// way in (the publisher's read, its connection and room actors, the group
/// commit) waits behind them: in `fanout` with 10,000 sockets that queueing
/// was most of the latency (p99 265–430 ms on one runtime, 146–187 ms with
/// the writers apart; `loadtest/RESULTS.md`, the runs of 2026-11-30 20:33 UTC). The operating
/// system shares the cores between the two runtimes' threads.
#[derive(Debug, Clone)]
pub struct SocketWriters(Arc<WriterRuntime>);

#[derive(Debug)]
struct WriterRuntime {
    runtime: Option<tokio::runtime::Runtime>,
    handle: tokio::runtime::Handle,
}

impl Drop for WriterRuntime {
    fn drop(&mut self) {
        // Dropping a runtime blocks, which is not allowed inside another
        // runtime (where the last handle usually goes).
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl SocketWriters {
    /// Starts the runtime with `threads` workers; 0 means half the cores
    /// (at least one).
    pub fn start(threads: usize) -> std::io::Result<Self> {
        let threads = if threads == 0 {
            std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1))
        } else {
            threads
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name("parley-ws-writer")
            .enable_all()
            .build()?;
        tracing::debug!(threads, "socket writer runtime started");
        Ok(Self(Arc::new(WriterRuntime {
            handle: runtime.handle().clone(),
            runtime: Some(runtime),
        })))
    }

    /// Runs a socket's writer task.
    fn spawn<F>(&self, task: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: std::future::Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.0.handle.spawn(task)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn writer_tasks_run_apart_and_the_runtime_can_be_dropped_inside_another() {
        let writers = SocketWriters::start(0).expect("start");
        let name = writers
            .spawn(async { std::thread::current().name().map(str::to_owned) })
            .await
            .expect("ran");
        assert_eq!(name.as_deref(), Some("parley-ws-writer"));
        // The last handle goes inside this test's runtime: no panic.
        drop(writers);
        let two = SocketWriters::start(2).expect("start");
        assert_eq!(two.spawn(async { 1 + 1 }).await.expect("ran"), 2);
    }
}
