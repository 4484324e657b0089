//! A small WebSocket test client for `GET /ws`.
//!
//! Frames are read as raw `serde_json::Value`, so the tests check the wire
//! format as any client sees it. Frames read while looking for something
//! else are kept in a backlog and handed out later, in order; ping/pong
//! control frames are skipped (tungstenite answers pings on its own while
//! the client reads).

use std::collections::VecDeque;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::{self, Message};

use crate::helpers::TestApp;

/// How long a positive wait (a frame that must arrive) may take.
pub const WAIT: Duration = Duration::from_secs(10);
/// How many unrelated frames `next_of_type` may skip before giving up.
const MAX_SKIPPED: usize = 5_000;

/// How to open a socket.
#[derive(Debug, Default, Clone)]
pub struct Connect<'a> {
    /// `Authorization: Bearer <token>` on the upgrade.
    pub bearer: Option<&'a str>,
    /// An `Origin` header on the upgrade.
    pub origin: Option<&'a str>,
    /// A small kernel receive buffer (bytes), for slow-consumer tests.
    pub recv_buffer: Option<u32>,
}

/// What one read produced.
#[derive(Debug)]
enum Incoming {
    Frame(Value),
    Closed(Option<u16>),
    TimedOut,
}

/// One test socket.
#[derive(Debug)]
pub struct WsClient {
    ws: WebSocketStream<TcpStream>,
    backlog: VecDeque<Value>,
    /// The close code once the server's close frame (or the end of the
    /// stream, `None`) has been read.
    closed: Option<Option<u16>>,
    next_ref: u64,
    /// The `ready` frame, once received by `connect*`.
    pub ready: Value,
}

/// `ws://addr/ws`.
pub fn ws_url(app: &TestApp) -> String {
    format!("ws://{}/ws", app.addr)
}

impl WsClient {
    /// Opens a socket without waiting for anything; the upgrade's error (an
    /// HTTP status, say) is returned as is.
    pub async fn open(app: &TestApp, how: Connect<'_>) -> Result<Self, tungstenite::Error> {
        let mut request = ws_url(app)
            .into_client_request()
            .expect("a valid ws request");
        let headers = request.headers_mut();
        if let Some(token) = how.bearer {
            headers.insert(
                "authorization",
                HeaderValue::from_str(&format!("Bearer {token}")).expect("a header value"),
            );
        }
        if let Some(origin) = how.origin {
            headers.insert(
                "origin",
                HeaderValue::from_str(origin).expect("a header value"),
            );
        }
        let socket = TcpSocket::new_v4().expect("a TCP socket");
        if let Some(size) = how.recv_buffer {
            socket
                .set_recv_buffer_size(size)
                .expect("SO_RCVBUF can be set");
        }
        let stream = socket.connect(app.addr).await.expect("TCP connect");
        let (ws, _response) = tokio_tungstenite::client_async(request, stream).await?;
        Ok(Self {
            ws,
            backlog: VecDeque::new(),
            closed: None,
            next_ref: 0,
            ready: Value::Null,
        })
    }

    /// Connects with `Authorization: Bearer` and waits for `ready`.
    pub async fn connect(app: &TestApp, token: &str) -> Self {
        let how = Connect {
            bearer: Some(token),
            ..Connect::default()
        };
        Self::connect_with(app, how).await
    }

    /// Connects as `how` says (with a bearer token) and waits for `ready`.
    pub async fn connect_with(app: &TestApp, how: Connect<'_>) -> Self {
        let mut client = Self::open(app, how)
            .await
            .unwrap_or_else(|e| panic!("the upgrade succeeds: {e}"));
        client.await_ready().await;
        client
    }

    /// Connects without a header, authenticates with a first `auth` frame
    /// and waits for `ready`.
    pub async fn connect_with_auth_frame(app: &TestApp, token: &str) -> Self {
        let mut client = Self::open(app, Connect::default())
            .await
            .unwrap_or_else(|e| panic!("the upgrade succeeds: {e}"));
        client.send(json!({"type": "auth", "token": token})).await;
        client.await_ready().await;
        client
    }

    async fn await_ready(&mut self) {
        let ready = self.next_frame().await;
        assert_eq!(ready["type"], "ready", "the first frame is ready: {ready}");
        self.ready = ready;
    }

    /// Reads one frame from the socket (not the backlog), until `deadline`.
    async fn read(&mut self, deadline: Instant) -> Incoming {
        if let Some(code) = self.closed {
            return Incoming::Closed(code);
        }
        loop {
            let next = match tokio::time::timeout_at(deadline, self.ws.next()).await {
                Err(_) => return Incoming::TimedOut,
                Ok(next) => next,
            };
            let message = match next {
                None => {
                    self.closed = Some(None);
                    return Incoming::Closed(None);
                }
                Some(Err(e)) => {
                    // A reset after the close frame, or no close frame at all.
                    eprintln!("ws read ended: {e}");
                    self.closed = Some(None);
                    return Incoming::Closed(None);
                }
                Some(Ok(message)) => message,
            };
            match message {
                Message::Text(text) => {
                    let value: Value = serde_json::from_str(text.as_str())
                        .unwrap_or_else(|e| panic!("server frame is JSON ({e}): {text}"));
                    assert!(
                        value.is_object() && value["type"].is_string(),
                        "server frame is an object with a string type: {value}"
                    );
                    return Incoming::Frame(value);
                }
                Message::Close(frame) => {
                    let code = frame.map(|f| u16::from(f.code));
                    self.closed = Some(code);
                    return Incoming::Closed(code);
                }
                Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => {}
                Message::Binary(bytes) => panic!("server sent a binary frame: {bytes:?}"),
            }
        }
    }

    /// The next frame within `within`, or `None` on timeout. Panics if the
    /// socket closes.
    pub async fn try_next_frame(&mut self, within: Duration) -> Option<Value> {
        if let Some(frame) = self.backlog.pop_front() {
            return Some(frame);
        }
        match self.read(Instant::now() + within).await {
            Incoming::Frame(v) => Some(v),
            Incoming::TimedOut => None,
            Incoming::Closed(code) => panic!("socket closed (code {code:?}) while reading"),
        }
    }

    /// The next frame, or the close code (`Err`) if the server closes
    /// first. Panics after [`WAIT`].
    pub async fn frame_or_close(&mut self) -> Result<Value, Option<u16>> {
        if let Some(frame) = self.backlog.pop_front() {
            return Ok(frame);
        }
        match self.read(Instant::now() + WAIT).await {
            Incoming::Frame(v) => Ok(v),
            Incoming::Closed(code) => Err(code),
            Incoming::TimedOut => panic!("neither a frame nor a close within {WAIT:?}"),
        }
    }

    /// The next frame (waiting up to [`WAIT`]).
    #[track_caller]
    pub fn next_frame(&mut self) -> impl Future<Output = Value> + '_ {
        let caller = std::panic::Location::caller();
        async move {
            self.try_next_frame(WAIT)
                .await
                .unwrap_or_else(|| panic!("no frame within {WAIT:?} (at {caller})"))
        }
    }

    /// The next frame matching `pred`, keeping the others in the backlog
    /// (at most `MAX_SKIPPED` of them), or `None` after `within`.
    pub async fn try_next_matching(
        &mut self,
        within: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Option<Value> {
        if let Some(i) = self.backlog.iter().position(&pred) {
            return self.backlog.remove(i);
        }
        let deadline = Instant::now() + within;
        loop {
            match self.read(deadline).await {
                Incoming::Frame(v) if pred(&v) => return Some(v),
                Incoming::Frame(v) => {
                    assert!(
                        self.backlog.len() < MAX_SKIPPED,
                        "too many unrelated frames while waiting; last: {v}"
                    );
                    self.backlog.push_back(v);
                }
                Incoming::TimedOut => return None,
                Incoming::Closed(code) => panic!(
                    "socket closed (code {code:?}) while waiting; unread: {:?}",
                    self.backlog
                ),
            }
        }
    }

    /// The next frame of type `kind` (others stay in the backlog).
    pub async fn next_of_type(&mut self, kind: &str) -> Value {
        self.try_next_matching(WAIT, |v| v["type"] == kind)
            .await
            .unwrap_or_else(|| {
                panic!(
                    "no `{kind}` frame within {WAIT:?}; unread: {:?}",
                    self.backlog
                )
            })
    }

    /// The next frame of type `kind` in room `room_id`.
    pub async fn next_in_room(&mut self, kind: &str, room_id: &str) -> Value {
        self.try_next_matching(WAIT, |v| v["type"] == kind && v["room_id"] == room_id)
            .await
            .unwrap_or_else(|| {
                panic!(
                    "no `{kind}` frame for room {room_id} within {WAIT:?}; unread: {:?}",
                    self.backlog
                )
            })
    }

    /// Panics if a frame of type `kind` arrives within `within` (or is
    /// already in the backlog).
    pub async fn expect_no_frame_of_type(&mut self, kind: &str, within: Duration) {
        if let Some(frame) = self.try_next_matching(within, |v| v["type"] == kind).await {
            panic!("unexpected `{kind}` frame: {frame}");
        }
    }

    /// Panics if a frame matching `pred` arrives within `within`.
    pub async fn expect_none_matching(
        &mut self,
        within: Duration,
        what: &str,
        pred: impl Fn(&Value) -> bool,
    ) {
        if let Some(frame) = self.try_next_matching(within, pred).await {
            panic!("unexpected frame ({what}): {frame}");
        }
    }

    /// Frames already read but not yet handed out.
    pub fn backlog(&self) -> &VecDeque<Value> {
        &self.backlog
    }

    /// Sends one JSON frame.
    pub async fn send(&mut self, frame: Value) {
        self.send_text(&frame.to_string()).await;
    }

    /// Sends raw text.
    pub async fn send_text(&mut self, text: &str) {
        self.try_send_text(text)
            .await
            .unwrap_or_else(|e| panic!("frame sent: {e}"));
    }

    /// Sends a binary frame.
    pub async fn send_binary(&mut self, bytes: Vec<u8>) {
        self.ws
            .send(Message::binary(bytes))
            .await
            .unwrap_or_else(|e| panic!("frame sent: {e}"));
    }

    /// Sends all `texts` as text frames in one flush (one TCP write as far
    /// as the kernel allows): a client that floods.
    pub async fn send_all_at_once(&mut self, texts: &[String]) {
        for text in texts {
            self.ws
                .feed(Message::text(text.as_str()))
                .await
                .expect("frame buffered");
        }
        self.ws.flush().await.expect("frames sent");
    }

    /// Sends a text frame whose payload is `bytes` as is, valid UTF-8 or not.
    pub async fn send_raw_text(&mut self, bytes: Vec<u8>) {
        let frame = tungstenite::protocol::frame::Frame::message(
            bytes,
            tungstenite::protocol::frame::coding::OpCode::Data(
                tungstenite::protocol::frame::coding::Data::Text,
            ),
            true,
        );
        self.ws
            .send(Message::Frame(frame))
            .await
            .expect("raw frame sent");
    }

    /// Sends raw text; the error (e.g. the server has closed) is returned.
    pub async fn try_send_text(&mut self, text: &str) -> Result<(), tungstenite::Error> {
        self.ws.send(Message::text(text)).await
    }

    /// A fresh `ref`.
    pub fn fresh_ref(&mut self) -> String {
        self.next_ref += 1;
        format!("r{}", self.next_ref)
    }

    /// Sends `frame` with a fresh `ref` (unless it has one) and returns the
    /// `ack`, `error` or `pong` carrying that ref; everything else read
    /// meanwhile stays in the backlog.
    pub async fn request(&mut self, mut frame: Value) -> Value {
        let reference = match frame.get("ref").and_then(Value::as_str) {
            Some(r) => r.to_owned(),
            None => {
                let r = self.fresh_ref();
                frame["ref"] = json!(r);
                r
            }
        };
        self.send(frame.clone()).await;
        self.try_next_matching(WAIT, |v| {
            v["ref"] == reference.as_str()
                && matches!(v["type"].as_str(), Some("ack" | "error" | "pong"))
        })
        .await
        .unwrap_or_else(|| {
            panic!(
                "no answer to {frame} within {WAIT:?}; unread: {:?}",
                self.backlog
            )
        })
    }

    /// Like [`request`](Self::request), asserting an `ack`.
    pub async fn ack(&mut self, frame: Value) -> Value {
        let reply = self.request(frame.clone()).await;
        assert_eq!(reply["type"], "ack", "{frame} is acknowledged: {reply}");
        reply
    }

    /// Sends `message.send` and returns the acked message object.
    pub async fn send_message(&mut self, room_id: &str, body: &str) -> Value {
        let reply = self
            .ack(json!({"type": "message.send", "room_id": room_id, "body": body}))
            .await;
        reply["message"].clone()
    }

    /// Like [`request`](Self::request), asserting an `error` with `code`.
    pub async fn expect_error(&mut self, frame: Value, code: &str) -> Value {
        let reply = self.request(frame.clone()).await;
        assert_eq!(reply["type"], "error", "{frame} is refused: {reply}");
        assert_eq!(reply["code"], code, "error code for {frame}: {reply}");
        assert!(
            reply["message"].as_str().is_some_and(|m| !m.is_empty()),
            "an error has a message: {reply}"
        );
        reply
    }

    /// Waits up to `within` for the server's close frame, skipping any
    /// frames still queued before it, and returns its code (`None` when
    /// the stream ended without one). Panics on timeout.
    pub async fn close_code_within(&mut self, within: Duration) -> Option<u16> {
        let deadline = Instant::now() + within;
        loop {
            match self.read(deadline).await {
                Incoming::Frame(v) => self.backlog.push_back(v),
                Incoming::Closed(code) => return code,
                Incoming::TimedOut => panic!("the server did not close within {within:?}"),
            }
        }
    }

    /// The server's close code (waiting up to [`WAIT`]).
    pub async fn close_code(&mut self) -> u16 {
        self.close_code_within(WAIT)
            .await
            .unwrap_or_else(|| panic!("the server sent no close frame"))
    }

    /// Closes from the client side (normal closure) and waits for the
    /// server's answer.
    pub async fn close(mut self) {
        if self.closed.is_some() {
            return;
        }
        if let Err(e) = self.ws.close(None).await {
            eprintln!("client close: {e}");
            return;
        }
        let deadline = Instant::now() + WAIT;
        while !matches!(
            self.read(deadline).await,
            Incoming::Closed(_) | Incoming::TimedOut
        ) {}
    }
}

/// The HTTP status of a refused upgrade.
#[track_caller]
pub fn upgrade_status(result: Result<WsClient, tungstenite::Error>) -> u16 {
    match result {
        Ok(_) => panic!("the upgrade was expected to be refused"),
        Err(tungstenite::Error::Http(response)) => response.status().as_u16(),
        Err(other) => panic!("the upgrade failed without an HTTP status: {other}"),
    }
}
