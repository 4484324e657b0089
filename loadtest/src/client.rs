//! Talking to the server: the target URL, WebSocket connections up to
//! `ready`, the REST calls the scenarios need, and load users.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use parley_actors::domain::RoomId;
use parley_actors::protocol::{ReadyRoom, ServerFrame};
use serde::Deserialize;
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

/// A WebSocket over plain TCP.
pub type Ws = WebSocketStream<TcpStream>;

/// Where the server under test is.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Target {
    /// e.g. `http://127.0.0.1:8080` (no trailing slash).
    pub http_base: String,
    /// e.g. `ws://127.0.0.1:8080/ws`.
    pub ws_url: String,
    /// The resolved address sockets connect to.
    pub addr: SocketAddr,
}

impl Target {
    /// Parses `http(s)://host:port` (or `ws://…`); refuses a non-loopback
    /// host unless `allow_remote`.
    pub fn parse(url: &str, allow_remote: bool) -> anyhow::Result<Self> {
        let parsed = reqwest::Url::parse(url).with_context(|| format!("target URL `{url}`"))?;
        let scheme = match parsed.scheme() {
            "http" | "ws" => "http",
            "https" | "wss" => bail!("TLS targets are not supported; point at the plain listener"),
            other => bail!("unsupported scheme `{other}`"),
        };
        let host = parsed.host_str().context("the target URL has no host")?;
        let port = parsed.port_or_known_default().unwrap_or(80);
        let addr = (host, port)
            .to_socket_addrs()
            .with_context(|| format!("resolving {host}"))?
            .next()
            .with_context(|| format!("{host} resolves to nothing"))?;
        if !addr.ip().is_loopback() && !allow_remote {
            bail!(
                "{host} ({}) is not a loopback address; pass --allow-remote to load a remote server",
                addr.ip()
            );
        }
        let authority = match addr {
            SocketAddr::V4(a) => a.to_string(),
            SocketAddr::V6(a) => a.to_string(),
        };
        Ok(Self {
            http_base: format!("{scheme}://{authority}"),
            ws_url: format!("ws://{authority}/ws"),
            addr,
        })
    }

    /// Whether the server is on this machine (so `/proc` can be read).
    pub fn is_local(&self) -> bool {
        self.addr.ip().is_loopback()
    }
}

/// Source addresses to spread client sockets over (`--source-ips N`:
/// 127.0.0.1 … 127.0.0.N), each giving its own ~28,000 ephemeral ports.
pub fn source_ips(n: u8, target: &Target) -> Vec<IpAddr> {
    if n <= 1 || !target.addr.is_ipv4() {
        return Vec::new();
    }
    (1..=n)
        .map(|i| IpAddr::V4(Ipv4Addr::new(127, 0, 0, i)))
        .collect()
}

/// What `ready` said.
#[derive(Debug, Clone)]
pub struct Ready {
    pub rooms: Vec<ReadyRoom>,
}

/// A socket that reached `ready`.
#[derive(Debug)]
pub struct Opened {
    pub ws: Ws,
    pub ready: Ready,
    /// TCP connect + upgrade, µs.
    pub connect_us: u64,
    /// Start → `ready`, µs.
    pub ready_us: u64,
}

/// Why a socket did not reach `ready`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpenError {
    /// The upgrade was answered with this HTTP status.
    Http(u16),
    /// The server closed with this code before `ready`.
    Closed(u16),
    /// TCP or WebSocket failure.
    Io(String),
    /// No `ready` in time.
    Timeout,
    /// Something else came before `ready`.
    Protocol(String),
}

impl OpenError {
    /// A short label for the error table.
    pub fn kind(&self) -> String {
        match self {
            Self::Http(status) => format!("upgrade_http_{status}"),
            Self::Closed(code) => format!("closed_before_ready_{code}"),
            Self::Io(e) => format!("io: {e}"),
            Self::Timeout => "ready_timeout".to_owned(),
            Self::Protocol(e) => format!("protocol: {e}"),
        }
    }
}

/// Per-socket buffers kept small: the harness may hold 18,000 sockets.
/// The read buffer is also zero-filled before every read (tungstenite),
/// so its size is CPU per received frame: 2 KiB holds several of the
/// ~300-byte frames the scenarios send, and grows for a larger one.
pub fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(2 * 1024)
        .write_buffer_size(0)
        .max_message_size(Some(1 << 20))
        .max_frame_size(Some(1 << 20))
}

/// Connects, upgrades (with `Authorization: Bearer` when a token is
/// given) and waits for `ready`.
pub async fn open(
    target: &Target,
    token: Option<&str>,
    bind: Option<IpAddr>,
    timeout: Duration,
) -> Result<Opened, OpenError> {
    let started = Instant::now();
    let work = async {
        let socket = match target.addr {
            SocketAddr::V4(_) => TcpSocket::new_v4(),
            SocketAddr::V6(_) => TcpSocket::new_v6(),
        }
        .map_err(|e| OpenError::Io(e.kind().to_string()))?;
        if let Some(ip) = bind {
            socket
                .bind(SocketAddr::new(ip, 0))
                .map_err(|e| OpenError::Io(format!("bind {ip}: {}", e.kind())))?;
        }
        let stream = socket
            .connect(target.addr)
            .await
            .map_err(|e| OpenError::Io(format!("connect: {}", e.kind())))?;
        stream
            .set_nodelay(true)
            .map_err(|e| OpenError::Io(e.kind().to_string()))?;
        let mut request = target
            .ws_url
            .as_str()
            .into_client_request()
            .map_err(|e| OpenError::Io(e.to_string()))?;
        if let Some(token) = token {
            let value = HeaderValue::from_str(&format!("Bearer {token}"))
                .map_err(|e| OpenError::Protocol(e.to_string()))?;
            request.headers_mut().insert("authorization", value);
        }
        let (mut ws, _) =
            tokio_tungstenite::client_async_with_config(request, stream, Some(ws_config()))
                .await
                .map_err(|e| match e {
                    WsError::Http(resp) => OpenError::Http(resp.status().as_u16()),
                    other => OpenError::Io(short_ws_error(&other)),
                })?;
        let connect_us = elapsed_us(started);
        let ready = wait_ready(&mut ws).await?;
        Ok(Opened {
            ws,
            ready,
            connect_us,
            ready_us: elapsed_us(started),
        })
    };
    tokio::time::timeout(timeout, work)
        .await
        .unwrap_or(Err(OpenError::Timeout))
}

async fn wait_ready(ws: &mut Ws) -> Result<Ready, OpenError> {
    use futures_util::StreamExt;
    while let Some(msg) = ws.next().await {
        match msg.map_err(|e| OpenError::Io(short_ws_error(&e)))? {
            Message::Text(text) => match serde_json::from_str::<ServerFrame>(&text) {
                Ok(ServerFrame::Ready { rooms, .. }) => return Ok(Ready { rooms }),
                Ok(other) => {
                    return Err(OpenError::Protocol(format!(
                        "{} before ready",
                        other.kind()
                    )));
                }
                Err(e) => return Err(OpenError::Protocol(format!("bad frame before ready: {e}"))),
            },
            Message::Close(frame) => {
                return Err(OpenError::Closed(frame.map_or(1005, |f| u16::from(f.code))));
            }
            _ => {}
        }
    }
    Err(OpenError::Io("eof before ready".to_owned()))
}

/// A WebSocket error in a few words (for the error table).
pub fn short_ws_error(e: &WsError) -> String {
    match e {
        WsError::Io(io) => io.kind().to_string(),
        WsError::ConnectionClosed | WsError::AlreadyClosed => "closed".to_owned(),
        WsError::Protocol(p) => format!("protocol: {p}"),
        other => {
            let s = other.to_string();
            s.chars().take(60).collect()
        }
    }
}

/// Microseconds since `t`.
pub fn elapsed_us(t: Instant) -> u64 {
    u64::try_from(t.elapsed().as_micros()).unwrap_or(u64::MAX)
}

/// A provisioned load user, as `parley user seed` writes it
/// (`{"user_id","username","session_id","access_token"}`; only the token
/// is needed here).
#[derive(Debug, Clone, Deserialize)]
pub struct LoadUser {
    pub access_token: String,
}

/// Reads users from a JSON-lines file.
pub fn load_users(path: &Path) -> anyhow::Result<Vec<LoadUser>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, line)| {
            serde_json::from_str(line)
                .with_context(|| format!("{} line {}: not a load user", path.display(), i + 1))
        })
        .collect()
}

/// Provisions users through the operator path: runs
/// `PARLEY user seed --count N --prefix P --out FILE --data-dir DIR`.
pub fn seed_users(
    parley_bin: &Path,
    data_dir: &Path,
    count: usize,
    prefix: &str,
    token_ttl_secs: u64,
) -> anyhow::Result<Vec<LoadUser>> {
    let out: PathBuf = std::env::temp_dir().join(format!(
        "parley-loadtest-users-{}-{prefix}-{count}.jsonl",
        std::process::id()
    ));
    let status = std::process::Command::new(parley_bin)
        .args([
            "user",
            "seed",
            "--count",
            &count.to_string(),
            "--prefix",
            prefix,
        ])
        .args(["--token-ttl-secs", &token_ttl_secs.to_string()])
        .arg("--out")
        .arg(&out)
        .arg("--data-dir")
        .arg(data_dir)
        .status()
        .with_context(|| format!("running {}", parley_bin.display()))?;
    if !status.success() {
        bail!("`{} user seed` failed: {status}", parley_bin.display());
    }
    let users = load_users(&out)?;
    if let Err(e) = std::fs::remove_file(&out) {
        eprintln!("could not remove {}: {e}", out.display());
    }
    Ok(users)
}

/// The REST calls the scenarios make.
#[derive(Debug, Clone)]
pub struct Rest {
    pub http: reqwest::Client,
    pub base: String,
}

#[derive(Deserialize)]
struct Created {
    id: RoomId,
}

impl Rest {
    /// A client for a target, with a connection pool sized for load.
    pub fn new(target: &Target, pool: usize) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(pool)
            .timeout(Duration::from_secs(30))
            .tcp_nodelay(true)
            .build()?;
        Ok(Self {
            http,
            base: format!("{}/api/v1", target.http_base),
        })
    }

    /// Sends a request, waiting out 429s (up to 5 times, `Retry-After`).
    async fn send(
        &self,
        build: impl Fn() -> reqwest::RequestBuilder,
    ) -> anyhow::Result<reqwest::Response> {
        for _ in 0..5 {
            let resp = build().send().await?;
            if resp.status() == reqwest::StatusCode::TOO_MANY_REQUESTS {
                let wait = resp
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(1);
                tokio::time::sleep(Duration::from_secs(wait.clamp(1, 30))).await;
                continue;
            }
            return Ok(resp);
        }
        bail!("still rate limited after 5 tries")
    }

    /// Creates a public room; returns its id.
    pub async fn create_room(&self, token: &str, name: &str) -> anyhow::Result<RoomId> {
        let url = format!("{}/rooms", self.base);
        let body = serde_json::json!({"name": name, "visibility": "public"});
        let resp = self
            .send(|| self.http.post(&url).bearer_auth(token).json(&body))
            .await?;
        let status = resp.status();
        if status.as_u16() != 201 {
            bail!(
                "POST /rooms: {status}: {}",
                resp.text().await.unwrap_or_default()
            );
        }
        Ok(resp.json::<Created>().await?.id)
    }

    /// Joins a public room (200, or already a member).
    pub async fn join_room(&self, token: &str, room: RoomId) -> anyhow::Result<()> {
        let url = format!("{}/rooms/{room}/join", self.base);
        let resp = self
            .send(|| self.http.post(&url).bearer_auth(token))
            .await?;
        let status = resp.status();
        if !status.is_success() && status.as_u16() != 409 {
            bail!(
                "POST /rooms/{room}/join: {status}: {}",
                resp.text().await.unwrap_or_default()
            );
        }
        Ok(())
    }
}
