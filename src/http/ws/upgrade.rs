//! The upgrade: origin, connection cap and authentication (a bearer
//! header, or the first frame); then the socket's life: registration with
//! the realtime core, its reader here and its writer on the writer
//! runtime, and the closing handshake.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use futures_util::stream::SplitStream;
use parley_actors::Realtime;
use parley_actors::connection::ConnectionMsg;
use parley_actors::protocol::{ClientFrame, close};
use parley_actors::sockets::{CloseReason, Outbox, flushes_before_close};
use parley_actors::telemetry as rt_metrics;
use ractor::ActorRef;
use tokio_util::sync::CancellationToken;

use super::code;
use super::reader::{ReadLimits, Undelivered, parse_frame, read_loop};
use super::runtime::SocketWriters;
use super::writer::write_loop;
use crate::accounts::{Accounts, Identity};
use crate::config::Settings;
use crate::http::error::ApiError;
use crate::http::extract::bearer_token;

/// How long a closing socket waits for the frames it handed on to be
/// answered before it sends the close frame.
const SETTLE_BEFORE_CLOSE: Duration = Duration::from_secs(5);

/// How long a closed socket waits for the client's close frame.
const CLOSE_LINGER: Duration = Duration::from_secs(3);

/// Bytes buffered before the WebSocket layer writes to the socket.
const WRITE_BUFFER_BYTES: usize = 16 * 1024;

/// What the socket endpoint needs of the application's state (taken from
/// it per upgrade; every field is a shared handle).
#[derive(Debug, Clone)]
pub struct SocketState {
    /// Limits, origins, heartbeat.
    pub settings: Arc<Settings>,
    /// Checks the token (header or first frame) and revocations.
    pub accounts: Arc<Accounts>,
    /// The core a live socket is registered with.
    pub realtime: Realtime,
    /// Where socket writer tasks run.
    pub socket_writers: SocketWriters,
    /// Upgraded WebSocket connections, authenticated or not (the cap).
    pub open_sockets: Arc<AtomicUsize>,
}

/// The upgrade: checks `Origin`, the connection cap and (when present) the
/// bearer token, then [`open_socket`] makes the socket live and
/// [`LiveSocket::run`] serves it.
pub async fn upgrade(
    State(state): State<SocketState>,
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
    let pre_auth = match bearer_token(&headers) {
        Some(token) => match state.accounts.authenticate(&token).await {
            Ok(who) => Some(who),
            Err(e) => return ApiError::from(e).into_response(),
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
    state: &SocketState,
    socket: &mut WebSocket,
) -> Result<Identity, (u16, &'static str)> {
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
    state: SocketState,
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
    state: SocketState,
    mut socket: WebSocket,
    pre_auth: Option<Identity>,
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
            close_now(socket, code::SERVER_ERROR, "server error").await;
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
        let limits = ReadLimits::new(&self.state.settings, self.heartbeat);
        let realtime = &self.state.realtime;
        let actor = &self.actor;
        let decided = read_loop(
            &mut self.stream,
            &self.outbox,
            &limits,
            &self.done,
            |frame: ClientFrame| {
                realtime
                    .deliver_frame(actor, frame)
                    .map_err(|_| Undelivered)
            },
        )
        .await;
        let close = decided.unwrap_or_else(|| CloseReason {
            code: code::NORMAL,
            reason: "bye".to_owned(),
        });
        // Every frame handed on is answered before the close: a send that
        // was stored gets its ack. Pointless when the writer is gone or the
        // close drops what is queued; bounded for a slow store (a send still
        // waiting then is not acted on: the actor skips frames of a closing
        // socket).
        if !self.done.is_cancelled()
            && !self.outbox.is_closing()
            && flushes_before_close(close.code)
            && !realtime.settle(actor, SETTLE_BEFORE_CLOSE).await
        {
            tracing::debug!("closing before the frames handed on were answered");
        }
        self.outbox.close(close.code, &close.reason);
        self.state.realtime.disconnect(&self.outbox, &self.actor);
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
