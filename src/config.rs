//! Typed settings.
//!
//! Precedence, lowest to highest: built-in defaults < `parley.toml` (or the
//! file named by `--config` / `PARLEY_CONFIG`) < `PARLEY_*` environment
//! variables < command-line flags. Every setting is declared once, in the
//! `settings!` table below, which generates the `Settings` struct, its
//! defaults, the matching `--flag` for clap, and the README table
//! (`parley config --markdown`). Secrets never print.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

/// A secret string: deserialises and parses like a `String`, but its
/// `Debug`/`Display` never show the value.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    /// The secret itself; call only where it is used.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl FromStr for Secret {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self(s.to_owned()))
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable, coloured when on a terminal.
    Pretty,
    /// One JSON object per line.
    Json,
}

impl fmt::Display for LogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Pretty => "pretty",
            Self::Json => "json",
        })
    }
}

/// How access tokens are signed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
pub enum JwtAlgorithm {
    /// HMAC-SHA-256 with a shared secret: only Parley can verify its tokens.
    #[serde(rename = "HS256", alias = "hs256")]
    #[value(name = "HS256", alias = "hs256")]
    Hs256,
    /// Ed25519 signatures: anyone can verify with the public keys served at
    /// `/.well-known/jwks.json`.
    #[serde(rename = "EdDSA", alias = "eddsa")]
    #[value(name = "EdDSA", alias = "eddsa")]
    EdDsa,
}

impl fmt::Display for JwtAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Hs256 => "HS256",
            Self::EdDsa => "EdDSA",
        })
    }
}

macro_rules! settings {
    ($( $(#[doc = $doc:literal])+ $name:ident : $ty:ty = $default:expr ; )+) => {
        /// Every setting of the server, with its value in force.
        #[derive(Debug, Clone, Serialize, Deserialize)]
        #[serde(default)]
        pub struct Settings {
            $( $(#[doc = $doc])+ pub $name: $ty, )+
        }

        impl Default for Settings {
            fn default() -> Self {
                Self { $( $name: $default, )+ }
            }
        }

        /// The same settings as optional flags; only those given override.
        #[derive(Debug, Clone, Default, Serialize, clap::Args)]
        pub struct SettingsArgs {
            $(
                $(#[doc = $doc])+
                #[arg(long, num_args = 1)]
                #[serde(skip_serializing_if = "Option::is_none")]
                pub $name: Option<$ty>,
            )+
        }

        impl Settings {
            /// `(name, environment variable, default, description)` of every
            /// setting, for the README table.
            pub fn describe() -> Vec<(&'static str, String, String, String)> {
                let defaults = Self::default();
                let _ = &defaults;
                vec![$(
                    (
                        stringify!($name),
                        format!("PARLEY_{}", stringify!($name).to_uppercase()),
                        describe_default(&serde_json::to_value(&defaults.$name).unwrap_or_default()),
                        [$($doc),+].iter().map(|l| l.trim()).collect::<Vec<_>>().join(" "),
                    ),
                )+]
            }
        }
    };
}

fn describe_default(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::Null => "(unset)".to_owned(),
        serde_json::Value::String(s) if s.is_empty() => "(empty)".to_owned(),
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

settings! {
    /// Address the HTTP and WebSocket server listens on.
    listen: SocketAddr = SocketAddr::from(([127, 0, 0, 1], 8080));
    /// Pending-connection queue of the listening socket (a connection storm waits here).
    listen_backlog: u32 = 4096;
    /// Folder for the SQLite database, the generated JWT secret, avatars and backups.
    data_dir: PathBuf = PathBuf::from("./data");
    /// Database URL: `sqlite://…` or `postgres://…`. Unset: SQLite at `<data_dir>/parley.db`.
    database_url: Option<String> = None;
    /// Maximum pooled database connections.
    database_max_connections: u32 = 10;
    /// Redis URL; set to join several nodes into a cluster (not used yet).
    redis_url: Option<String> = None;
    /// How access tokens are signed: `HS256` (a shared secret) or `EdDSA` (an Ed25519 key pair in `<data_dir>/signing_keys.json`, public keys at `/.well-known/jwks.json`).
    jwt_algorithm: JwtAlgorithm = JwtAlgorithm::Hs256;
    /// HS256 secret for access tokens (at least 32 characters). Prefer `jwt_secret_file` or the environment: a flag shows in the process list. Unset: Parley keeps its own keys in the data dir (first one in `<data_dir>/jwt_secret`, mode 0600) and `parley keys rotate` can replace them.
    jwt_secret: Option<Secret> = None;
    /// File holding the HS256 secret (surrounding whitespace ignored); the same as `jwt_secret`, which wins when both are set.
    jwt_secret_file: Option<PathBuf> = None;
    /// `iss` claim of access tokens.
    jwt_issuer: String = "parley".to_owned();
    /// `aud` claim of access tokens.
    jwt_audience: String = "parley".to_owned();
    /// Access token lifetime, seconds.
    access_token_ttl_secs: u64 = 900;
    /// Refresh token lifetime, seconds: a session not refreshed within this ends.
    refresh_token_ttl_secs: u64 = 30 * 24 * 3600;
    /// A session unused (no refresh) for this many seconds dies: refresh fails and its sockets close. 0: only `refresh_token_ttl_secs` applies.
    session_idle_secs: u64 = 0;
    /// Live sessions per user; a login past it revokes the oldest (its sockets close). 0: unlimited.
    max_sessions_per_user: u32 = 0;
    /// Refuse login (403 `email_not_verified`) to accounts whose email address is not verified.
    require_verified_email: bool = false;
    /// Admins without two-factor authentication get 403 `two_factor_required` on admin routes.
    admin_require_2fa: bool = false;
    /// Issuer shown by authenticator apps for Parley's two-factor codes.
    totp_issuer: String = "Parley".to_owned();
    /// Lifetime of an email verification token, seconds.
    email_verify_ttl_secs: u64 = 24 * 3600;
    /// Verification mails one user may request (`/auth/email/resend`) per hour.
    email_resend_per_hour: u32 = 3;
    /// Lifetime of a password reset token, seconds.
    password_reset_ttl_secs: u64 = 3600;
    /// Password reset requests (`/auth/password/forgot`) per email address per hour, known or not.
    password_forgot_per_address_per_hour: u32 = 3;
    /// Password reset requests per source IP per hour.
    password_forgot_per_ip_per_hour: u32 = 5;
    /// SMTP server for outgoing mail, e.g. `smtps://user:pass@host`, `smtp://host:587?tls=required` (STARTTLS). Unset: mails are written as `.eml` files under `<data_dir>/mail/`.
    smtp_url: Option<Secret> = None;
    /// Sender of outgoing mail.
    mail_from: String = "Parley <parley@localhost>".to_owned();
    /// Consecutive failed logins that lock an account.
    login_max_failures: u32 = 5;
    /// How long a locked account stays locked, seconds.
    login_lockout_secs: u64 = 15 * 60;
    /// Registrations allowed per source IP per minute (also the burst).
    register_per_minute: u32 = 10;
    /// Login and refresh attempts allowed per source IP per minute (also the burst).
    login_per_minute: u32 = 30;
    /// Authenticated API requests allowed per user per minute (also the burst).
    api_per_minute: u32 = 600;
    /// Argon2 hashes computed at once (0 = number of CPUs); more wait their turn.
    password_hash_concurrency: usize = 0;
    /// Largest accepted request body, bytes.
    body_limit_bytes: usize = 1024 * 1024;
    /// Time limit for one HTTP request, seconds.
    request_timeout_secs: u64 = 30;
    /// Comma-separated origins allowed by CORS (and, later, for WebSocket upgrades). Empty: none.
    cors_allowed_origins: String = String::new();
    /// Take the client IP from `X-Forwarded-For` (only behind a trusted proxy).
    trust_forwarded_for: bool = false;
    /// Serve `/metrics` on this address instead of the main listener.
    metrics_listen: Option<SocketAddr> = None;
    /// Log format: `pretty` or `json`.
    log_format: LogFormat = LogFormat::Pretty;
    /// Log filter, in `RUST_LOG` syntax.
    log_level: String = "info".to_owned();
    /// Seconds to wait for in-flight requests at shutdown.
    shutdown_grace_secs: u64 = 10;
    /// Largest WebSocket text frame, bytes (up to 4× this gets an error frame; beyond, close 1009).
    ws_max_frame_bytes: usize = 64 * 1024;
    /// Seconds a socket opened without a token has to send its `auth` frame (then close 4001).
    ws_auth_timeout_secs: u64 = 5;
    /// Server heartbeat (ping) interval, seconds; a socket silent for twice this is closed (4000).
    ws_heartbeat_secs: u64 = 30;
    /// Rate-limited client events (messages, edits, reactions, typing, read, presence) per socket per second.
    ws_events_per_second: u32 = 10;
    /// Burst of such events allowed above that rate.
    ws_events_burst: u32 = 30;
    /// Refused events in a row before the socket is closed with 1008.
    ws_rate_strikes: u32 = 20;
    /// Open sockets allowed per user (more: close 1008).
    ws_max_connections_per_user: usize = 10;
    /// Open sockets allowed in all (more: HTTP 503 on the upgrade).
    ws_max_connections: usize = 20_000;
    /// Durable events queued per socket; a socket whose queue fills is closed with 4009.
    ws_durable_queue: usize = 1024;
    /// Ephemeral events (typing, presence) queued per socket before they are shed.
    ws_ephemeral_queue: usize = 64;
    /// Bytes the WebSocket layer may buffer for a socket that is not reading.
    ws_max_write_buffer_bytes: usize = 1024 * 1024;
    /// Threads that write to sockets, apart from those that read them and run the actors; 0: half the cores, at least 1.
    ws_writer_threads: usize = 0;
    /// Longest message body, in characters (at most 4000, the API's limit).
    message_max_chars: usize = 4000;
    /// Distinct emoji one message may carry; adding a new one past this is refused (409).
    message_max_reactions: usize = 50;
    /// Members one room may have; joining or accepting an invite past this is refused (409).
    room_max_members: usize = 10_000;
    /// A `resume` further behind than this many messages in a room gets `resync_required`.
    resume_max_gap: u32 = 1000;
    /// Presence changes are pushed only through rooms with at most this many open sockets.
    presence_max_room: usize = 1000;
    /// Seconds after a user's last socket closes before they show as offline.
    presence_grace_secs: u64 = 5;
    /// `expires_in_ms` of typing events.
    typing_ttl_ms: u64 = 5000;
    /// Seconds without requests before a room actor stops (it restarts on use).
    room_idle_secs: u64 = 300;
}

/// The `parley.toml` looked for when no `--config` is given.
pub const DEFAULT_CONFIG_FILE: &str = "parley.toml";

impl Settings {
    /// Loads settings from defaults, the config file, the environment and
    /// the flags, in that order of precedence.
    pub fn load(args: &SettingsArgs, config_file: Option<&Path>) -> anyhow::Result<Self> {
        let file = config_file.unwrap_or_else(|| Path::new(DEFAULT_CONFIG_FILE));
        if config_file.is_some() && !file.exists() {
            anyhow::bail!("config file {} does not exist", file.display());
        }
        let settings: Settings = Figment::from(Serialized::defaults(Settings::default()))
            .merge(Toml::file(file))
            .merge(Env::prefixed("PARLEY_").ignore(&["config"]))
            .merge(Serialized::defaults(args))
            .extract()?;
        settings.validate()?;
        Ok(settings)
    }

    /// Checks values that would otherwise fail later and obscurely.
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.access_token_ttl_secs > 0,
            "access_token_ttl_secs must be > 0"
        );
        anyhow::ensure!(
            self.refresh_token_ttl_secs > 0,
            "refresh_token_ttl_secs must be > 0"
        );
        anyhow::ensure!(
            self.login_max_failures > 0,
            "login_max_failures must be > 0"
        );
        anyhow::ensure!(
            self.register_per_minute > 0,
            "register_per_minute must be > 0"
        );
        anyhow::ensure!(self.login_per_minute > 0, "login_per_minute must be > 0");
        anyhow::ensure!(self.api_per_minute > 0, "api_per_minute must be > 0");
        anyhow::ensure!(
            self.body_limit_bytes >= 1024,
            "body_limit_bytes must be >= 1024"
        );
        anyhow::ensure!(
            self.database_max_connections > 0,
            "database_max_connections must be > 0"
        );
        if let Some(secret) = &self.jwt_secret {
            anyhow::ensure!(
                secret.expose().len() >= 32,
                "jwt_secret must be at least 32 characters"
            );
        }
        anyhow::ensure!(
            self.email_verify_ttl_secs > 0 && self.password_reset_ttl_secs > 0,
            "email_verify_ttl_secs and password_reset_ttl_secs must be > 0"
        );
        anyhow::ensure!(
            self.password_forgot_per_address_per_hour > 0
                && self.password_forgot_per_ip_per_hour > 0
                && self.email_resend_per_hour > 0,
            "password_forgot_per_address_per_hour, password_forgot_per_ip_per_hour and email_resend_per_hour must be > 0"
        );
        anyhow::ensure!(
            self.mail_from.parse::<lettre::message::Mailbox>().is_ok(),
            "mail_from must be a mail address, optionally with a name: `Parley <parley@example.com>`"
        );
        Ok(())
    }

    /// The HS256 secret when one is configured: `jwt_secret`, else the
    /// content of `jwt_secret_file`.
    pub fn configured_jwt_secret(&self) -> anyhow::Result<Option<Secret>> {
        if let Some(secret) = &self.jwt_secret {
            return Ok(Some(secret.clone()));
        }
        let Some(path) = &self.jwt_secret_file else {
            return Ok(None);
        };
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("reading jwt_secret_file {}: {e}", path.display()))?;
        let secret = text.trim();
        anyhow::ensure!(
            secret.len() >= 32,
            "jwt_secret_file {} must hold at least 32 characters",
            path.display()
        );
        Ok(Some(Secret::new(secret)))
    }

    /// The database URL in force: the configured one, or SQLite in the data dir.
    pub fn database_url(&self) -> String {
        match &self.database_url {
            Some(url) if !url.trim().is_empty() => url.clone(),
            _ => format!("sqlite://{}", self.data_dir.join("parley.db").display()),
        }
    }

    /// The realtime core's tunables.
    pub fn realtime(&self) -> parley_actors::RealtimeConfig {
        use std::time::Duration;
        parley_actors::RealtimeConfig {
            room_tick: Duration::from_secs(self.room_idle_secs.clamp(1, 30)),
            room_idle: Duration::from_secs(self.room_idle_secs),
            typing_ttl: Duration::from_millis(self.typing_ttl_ms),
            typing_coalesce: Duration::from_millis((self.typing_ttl_ms / 5).max(100)),
            presence_grace: Duration::from_secs(self.presence_grace_secs),
            resume_max_gap: self.resume_max_gap,
            presence_max_room: self.presence_max_room,
            durable_queue: self.ws_durable_queue,
            ephemeral_queue: self.ws_ephemeral_queue,
            max_body_chars: self.message_max_chars,
            max_reactions_per_message: self.message_max_reactions,
            max_room_members: self.room_max_members,
        }
    }

    /// The CORS allowlist as separate origins.
    pub fn allowed_origins(&self) -> Vec<String> {
        self.cors_allowed_origins
            .split(',')
            .map(str::trim)
            .filter(|o| !o.is_empty())
            .map(str::to_owned)
            .collect()
    }

    /// The README's configuration table, in Markdown.
    pub fn markdown_table() -> String {
        let mut out = String::from(
            "| setting (`parley.toml`) | flag | environment | default | meaning |\n|---|---|---|---|---|\n",
        );
        for (name, env, default, doc) in Self::describe() {
            out.push_str(&format!(
                "| `{name}` | `--{}` | `{env}` | `{default}` | {doc} |\n",
                name.replace('_', "-")
            ));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    // figment's Jail closure returns figment's own (large) error type.
    #[allow(clippy::result_large_err)]
    fn flags_beat_environment_beat_file_beat_defaults() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "parley.toml",
                "listen = \"127.0.0.1:7000\"\nlogin_max_failures = 9\napi_per_minute = 11\n",
            )?;
            jail.set_env("PARLEY_LOGIN_MAX_FAILURES", "7");
            jail.set_env("PARLEY_API_PER_MINUTE", "12");
            let args = SettingsArgs {
                api_per_minute: Some(13),
                ..Default::default()
            };
            let s = Settings::load(&args, None).expect("load");
            assert_eq!(s.listen, "127.0.0.1:7000".parse().expect("addr"));
            assert_eq!(s.login_max_failures, 7);
            assert_eq!(s.api_per_minute, 13);
            assert_eq!(s.login_lockout_secs, 900);
            Ok(())
        });
    }

    #[test]
    fn secrets_never_print() {
        let s = Settings {
            jwt_secret: Some(Secret::new("x".repeat(40))),
            ..Default::default()
        };
        assert!(!format!("{s:?}").contains("xxxx"));
    }

    #[test]
    fn bad_values_are_refused() {
        let s = Settings {
            jwt_secret: Some(Secret::new("short")),
            ..Default::default()
        };
        assert!(s.validate().is_err());
    }

    #[test]
    fn database_defaults_to_sqlite_in_the_data_dir() {
        let s = Settings {
            data_dir: PathBuf::from("/tmp/x"),
            ..Default::default()
        };
        assert_eq!(s.database_url(), "sqlite:///tmp/x/parley.db");
    }

    #[test]
    fn the_readme_carries_the_current_settings_table() {
        let readme = include_str!("../README.md");
        assert!(
            readme.contains(&Settings::markdown_table()),
            "README.md's settings table is out of date: paste `parley config --markdown`"
        );
    }

    #[test]
    fn the_readme_table_lists_every_setting() {
        let table = Settings::markdown_table();
        assert!(table.contains("`PARLEY_LISTEN`"));
        assert!(table.contains("`127.0.0.1:8080`"));
        assert!(table.contains("`--login-max-failures`"));
    }
}
