//! `Application`: storage, credentials, the router and the listener, wired
//! once. `build` binds (port 0 in tests) and exposes the bound address;
//! `run_until_stopped` serves until SIGINT/SIGTERM or [`ShutdownHandle`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use parley_actors::Realtime;
use parley_actors::protocol::close;
use parley_actors::store::Store;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::accounts::Accounts;
use crate::auth::keys::KeyRing;
use crate::auth::{PasswordHasher, RevokedSessions, TokenKeys};
use crate::config::{Secret, Settings};
use crate::http::state::{AppState, Limits};
use crate::http::ws::SocketWriters;
use crate::mail::{self, Outbox};
use crate::{http, storage, telemetry};

/// Stops a running [`Application`] gracefully.
#[derive(Debug, Clone)]
pub struct ShutdownHandle(CancellationToken);

impl ShutdownHandle {
    /// Begins a graceful shutdown.
    pub fn shutdown(&self) {
        self.0.cancel();
    }
}

/// A built, bound, not yet serving server.
#[derive(Debug)]
pub struct Application {
    state: AppState,
    listener: TcpListener,
    metrics_listener: Option<TcpListener>,
    local_addr: SocketAddr,
    shutdown: CancellationToken,
}

/// The access-token keys the settings ask for (see [`KeyRing`]).
pub fn signing_keys(settings: &Settings) -> anyhow::Result<TokenKeys> {
    let ttl = Duration::from_secs(settings.access_token_ttl_secs);
    let ring = KeyRing::load(
        &settings.data_dir,
        settings.jwt_algorithm,
        settings.configured_jwt_secret()?.as_ref(),
        ttl,
    )
    .context("loading the signing keys")?;
    Ok(TokenKeys::with_ring(
        ring,
        &settings.jwt_issuer,
        &settings.jwt_audience,
        ttl,
    ))
}

/// Opens the store named by the settings (running migrations).
pub async fn open_store(settings: &Settings) -> anyhow::Result<Arc<dyn Store>> {
    if settings.database_url.is_none() {
        std::fs::create_dir_all(&settings.data_dir)
            .with_context(|| format!("creating data dir {}", settings.data_dir.display()))?;
    }
    storage::connect(&settings.database_url(), settings.database_max_connections)
        .await
        .context("opening the database")
}

impl Application {
    /// Opens storage, loads credentials, builds the router and binds.
    pub async fn build(mut settings: Settings) -> anyhow::Result<Self> {
        settings.validate()?;
        settings.ws_max_connections = socket_cap(settings.ws_max_connections);
        std::fs::create_dir_all(&settings.data_dir)
            .with_context(|| format!("creating data dir {}", settings.data_dir.display()))?;
        let store = open_store(&settings).await?;
        let keys = signing_keys(&settings)?;
        let concurrency = settings.password_hash_concurrency;
        let hasher =
            tokio::task::spawn_blocking(move || PasswordHasher::new(concurrency)).await??;
        let realtime = Realtime::start(Arc::clone(&store), settings.realtime())
            .await
            .context("starting the realtime core")?;
        let closer = realtime.clone();
        let revoked = RevokedSessions::load(store.as_ref(), keys.ttl())
            .await?
            .with_listener(Arc::new(move |session| {
                closer.close_sessions(&[session], close::REVOKED, "session revoked");
            }));
        let mailer = mail::from_settings(
            settings.smtp_url.as_ref().map(Secret::expose),
            &settings.mail_from,
            &settings.data_dir,
        )
        .context("setting up mail")?;
        let outbox = Outbox::start(mailer);
        let accounts = Accounts::new(&settings, Arc::clone(&store), hasher, keys, revoked, outbox);
        let listener = bind(settings.listen, settings.listen_backlog)
            .with_context(|| format!("binding {}", settings.listen))?;
        let local_addr = listener.local_addr()?;
        let metrics_listener = match settings.metrics_listen {
            Some(addr) => Some(
                TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("binding metrics listener {addr}"))?,
            ),
            None => None,
        };
        let socket_writers = SocketWriters::start(settings.ws_writer_threads)
            .context("starting the socket writer runtime")?;
        let state = AppState {
            socket_writers,
            limits: Limits::new(&settings),
            realtime,
            open_sockets: Arc::default(),
            settings: Arc::new(settings),
            store,
            accounts: Arc::new(accounts),
            metrics: telemetry::metrics_handle(),
            started: Instant::now(),
        };
        Ok(Self {
            state,
            listener,
            metrics_listener,
            local_addr,
            shutdown: CancellationToken::new(),
        })
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The metrics listener's address, when separate.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_listener
            .as_ref()
            .and_then(|l| l.local_addr().ok())
    }

    /// The realtime core (tests use it to inject faults).
    pub fn realtime(&self) -> Realtime {
        self.state.realtime.clone()
    }

    /// The store (tests close it to simulate a lost database).
    pub fn store(&self) -> Arc<dyn Store> {
        Arc::clone(&self.state.store)
    }

    /// A handle that stops the server gracefully.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        ShutdownHandle(self.shutdown.clone())
    }

    /// Serves until a signal or the shutdown handle, then drains in-flight
    /// requests (up to `shutdown_grace_secs`) and closes storage.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let Self {
            state,
            listener,
            metrics_listener,
            local_addr,
            shutdown,
        } = self;
        tracing::info!(%local_addr, database = %state.store_kind(), "parley listening");
        let grace = Duration::from_secs(state.settings.shutdown_grace_secs);
        let signal = shutdown.clone();
        let signals = tokio::spawn(async move {
            tokio::select! {
                () = wait_for_signal() => signal.cancel(),
                () = signal.cancelled() => {}
            }
        });
        let upkeep = tokio::spawn(upkeep(state.clone(), shutdown.clone()));
        let idle_sweep = tokio::spawn(sweep_idle_sessions(state.clone(), shutdown.clone()));
        let heartbeat = tokio::spawn(heartbeat(state.clone(), shutdown.clone()));
        let db_sampler = tokio::spawn(telemetry::sample_database(
            state.store.clone(),
            shutdown.clone(),
        ));
        let metrics_server = metrics_listener.map(|listener| {
            let router = http::metrics_router(state.clone());
            let stop = shutdown.clone();
            tokio::spawn(async move {
                axum::serve(listener, router)
                    .with_graceful_shutdown(async move { stop.cancelled().await })
                    .await
            })
        });
        let app = http::router(state.clone(), metrics_server.is_none());
        let stop = shutdown.clone();
        // Small frames go out at once: with Nagle's algorithm a frame
        // written while an earlier one is unacknowledged waits for the
        // peer's (possibly delayed) ACK.
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
            if let Err(e) = tcp.set_nodelay(true) {
                tracing::debug!(error = %e, "TCP_NODELAY not set");
            }
        });
        let server = axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move { stop.cancelled().await });
        // Sockets are upgraded connections the HTTP server no longer tracks:
        // close them (1001) as soon as shutdown begins.
        let realtime = state.realtime.clone();
        let stop = shutdown.clone();
        let sockets_closed = tokio::spawn(async move {
            stop.cancelled().await;
            realtime.shutdown().await;
        });
        let served = tokio::select! {
            result = server => result.context("serving HTTP"),
            () = async { shutdown.cancelled().await; tokio::time::sleep(grace).await } => {
                tracing::warn!("in-flight requests did not finish within the grace period");
                Ok(())
            }
        };
        shutdown.cancel();
        for task in [
            signals,
            upkeep,
            idle_sweep,
            heartbeat,
            db_sampler,
            sockets_closed,
        ] {
            if let Err(e) = task.await {
                tracing::error!(error = %e, "background task failed");
            }
        }
        if let Some(task) = metrics_server {
            match task.await {
                Ok(Err(e)) => tracing::error!(error = %e, "metrics listener failed"),
                Err(e) => tracing::error!(error = %e, "metrics task failed"),
                Ok(Ok(())) => {}
            }
        }
        // Mail queued by the last requests still goes out (its jobs may
        // need the store, so before it closes).
        state.accounts.outbox().shutdown(grace).await;
        state.store.close().await;
        tracing::info!("parley stopped");
        served
    }
}

/// Binds with a deep accept queue (std's default of 128 overflows in a
/// connection storm, and clients then wait a second for TCP to retry).
fn bind(addr: SocketAddr, backlog: u32) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(backlog)
}

/// Raises the soft open-file limit to the hard one and returns how many
/// sockets may be open at once: the configured cap, lowered to leave room
/// for the database, listeners and HTTP requests under the file limit. Past
/// the cap an upgrade gets a clean 503 instead of `accept` failing.
fn socket_cap(configured: usize) -> usize {
    const RESERVED_FILES: u64 = 512;
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(files) => {
            let cap = usize::try_from(files.saturating_sub(RESERVED_FILES)).unwrap_or(usize::MAX);
            let cap = configured.min(cap);
            tracing::info!(
                open_files = files,
                socket_cap = cap,
                "open-file limit raised"
            );
            cap
        }
        Err(e) => {
            tracing::warn!(error = %e, "could not raise the open-file limit");
            configured
        }
    }
}

/// Periodic upkeep: prune in-memory views and limiter keys.
async fn upkeep(state: AppState, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(60));
    tick.tick().await;
    loop {
        tokio::select! {
            _ = tick.tick() => {
                state.accounts.prune();
                state.limits.retain_recent();
            }
            () = shutdown.cancelled() => break,
        }
    }
}

/// With `session_idle_secs` set, revokes idle sessions (closing their
/// sockets) twice per idle period; returns at once when it is not set.
async fn sweep_idle_sessions(state: AppState, shutdown: CancellationToken) {
    let Some(every) = state.accounts.policy().sweep_every() else {
        return;
    };
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {
                match state.accounts.sweep_idle_sessions().await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(sessions = n, "idle sessions revoked"),
                    Err(e) => tracing::error!(error = %e, "idle-session sweep failed"),
                }
            }
            () = shutdown.cancelled() => break,
        }
    }
}

/// Pings every socket once per `ws_heartbeat_secs`, from one task instead
/// of a timer per socket: four times a second it pings one share of the
/// sockets, so the pings are spread over the interval. A socket that
/// answers nothing for twice the interval is closed by its reader (4000).
async fn heartbeat(state: AppState, shutdown: CancellationToken) {
    const SHARES_PER_SECOND: u64 = 4;
    let shares = state.settings.ws_heartbeat_secs.max(1) * SHARES_PER_SECOND;
    let mut tick = tokio::time::interval(Duration::from_millis(1000 / SHARES_PER_SECOND));
    tick.tick().await;
    let mut share = 0;
    loop {
        tokio::select! {
            _ = tick.tick() => {
                state.realtime.sockets().ping_share(share, shares);
                share = (share + 1) % shares;
            }
            () = shutdown.cancelled() => break,
        }
    }
}

async fn wait_for_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("could not install signal handlers; stop with the shutdown handle");
        std::future::pending::<()>().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = int.recv() => tracing::info!("SIGINT: shutting down"),
    }
}
