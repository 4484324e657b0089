//! [`AppState`]: what every handler can reach, built once by
//! `startup::Application::build`.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::Instant;

use metrics_exporter_prometheus::PrometheusHandle;
use parley_actors::Realtime;
use parley_actors::domain::UserId;
use parley_actors::store::Store;

use super::ratelimit::KeyedLimiter;
use axum::extract::FromRef;

use super::ws::{SocketState, SocketWriters};
use crate::accounts::Accounts;
use crate::config::Settings;

/// Reports (`POST /users/report`) allowed per user per minute (also the
/// burst). Not a setting: the README's settings table is generated from
/// the settings, and this one is not worth a row yet.
pub const REPORTS_PER_MINUTE: u32 = 5;

/// The rate limiters guarding the HTTP API.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Registrations per IP.
    pub register: KeyedLimiter<IpAddr>,
    /// Logins and refreshes per IP.
    pub login: KeyedLimiter<IpAddr>,
    /// Authenticated requests per user.
    pub api: KeyedLimiter<UserId>,
    /// Reports per user.
    pub reports: KeyedLimiter<UserId>,
    /// Password reset requests per IP.
    pub forgot: KeyedLimiter<IpAddr>,
}

impl Limits {
    /// The limiters at the configured rates.
    pub fn new(settings: &Settings) -> Self {
        Self {
            register: KeyedLimiter::per_minute(settings.register_per_minute, "register"),
            login: KeyedLimiter::per_minute(settings.login_per_minute, "login"),
            api: KeyedLimiter::per_minute(settings.api_per_minute, "api"),
            reports: KeyedLimiter::per_minute(REPORTS_PER_MINUTE, "reports"),
            forgot: KeyedLimiter::per_hour(settings.password_forgot_per_ip_per_hour, "forgot"),
        }
    }

    /// Forgets keys not seen lately (periodic upkeep).
    pub fn retain_recent(&self) {
        self.register.retain_recent();
        self.login.retain_recent();
        self.api.retain_recent();
        self.reports.retain_recent();
        self.forgot.retain_recent();
    }
}

/// What every handler can reach. Cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState {
    pub settings: Arc<Settings>,
    pub store: Arc<dyn Store>,
    pub accounts: Arc<Accounts>,
    pub limits: Limits,
    pub realtime: Realtime,
    /// Where socket writer tasks run (see [`SocketWriters`]).
    pub socket_writers: SocketWriters,
    /// Upgraded WebSocket connections, authenticated or not (the cap).
    pub open_sockets: Arc<AtomicUsize>,
    pub metrics: PrometheusHandle,
    pub started: Instant,
}

impl AppState {
    /// `postgres` or `sqlite`, for the startup log line.
    pub fn store_kind(&self) -> &'static str {
        if self.settings.database_url().starts_with("postgres") {
            "postgres"
        } else {
            "sqlite"
        }
    }
}

impl FromRef<AppState> for SocketState {
    fn from_ref(state: &AppState) -> Self {
        Self {
            settings: Arc::clone(&state.settings),
            accounts: Arc::clone(&state.accounts),
            realtime: state.realtime.clone(),
            socket_writers: state.socket_writers.clone(),
            open_sockets: Arc::clone(&state.open_sockets),
        }
    }
}

/// The settings alone, for extractors that read one (see
/// `extract::Client`'s `trust_forwarded_for`).
impl FromRef<AppState> for Arc<Settings> {
    fn from_ref(state: &AppState) -> Self {
        Arc::clone(&state.settings)
    }
}
