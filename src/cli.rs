//! The command line: `serve`, `user create`, `migrate`, `keys rotate`, `config`.

use std::path::PathBuf;

use anyhow::Context;
use chrono::Utc;
use clap::{Parser, Subcommand};
use parley_actors::domain::{Email, Password, Role, UserId, Username};
use parley_actors::store::NewUser;

use crate::auth::PasswordHasher;
use crate::config::{Settings, SettingsArgs};
use crate::startup::{Application, open_store};
use crate::{storage, telemetry};

/// Parley, a realtime-first self-hosted chat server.
#[derive(Debug, Parser)]
#[command(name = "parley", version, about)]
pub struct Cli {
    /// Configuration file (default: ./parley.toml when present).
    #[arg(long, global = true, env = "PARLEY_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

/// What to do.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server.
    Serve {
        #[command(flatten)]
        settings: Box<SettingsArgs>,
    },
    /// Manage accounts directly in the database (works while the server runs).
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Apply database migrations, or revert the newest N with --down N.
    Migrate {
        /// Revert this many of the most recent migrations instead.
        #[arg(long)]
        down: Option<u32>,
        #[command(flatten)]
        settings: Box<SettingsArgs>,
    },
    /// Manage the keys that sign access tokens.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Print the settings: in force (secrets hidden), or the README table.
    Config {
        /// Print every setting with its default as a Markdown table.
        #[arg(long)]
        markdown: bool,
        #[command(flatten)]
        settings: Box<SettingsArgs>,
    },
}

/// `parley keys …`.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Add a new signing key (of `jwt_algorithm`) to the key ring in the data
    /// dir. Tokens signed by the previous key stay valid until they expire;
    /// then that key is dropped. A running server picks the new key up
    /// within seconds.
    Rotate {
        #[command(flatten)]
        settings: Box<SettingsArgs>,
    },
}

/// `parley user …`.
#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create an account.
    Create {
        #[arg(long)]
        username: String,
        #[arg(long)]
        email: String,
        /// Must meet the password rules.
        #[arg(long)]
        password: String,
        /// Give the account the admin role.
        #[arg(long)]
        admin: bool,
        #[command(flatten)]
        settings: Box<SettingsArgs>,
    },
    /// Provision many accounts for load tests: creates `--count` users named
    /// `<prefix>0 … <prefix>N-1` (one shared password hash), a session for
    /// each, and writes one JSON line per user with an access token signed
    /// with the server's own secret. Operators only: it needs the database
    /// and the JWT secret.
    Seed {
        /// How many users.
        #[arg(long)]
        count: u32,
        /// Username prefix.
        #[arg(long, default_value = "load")]
        prefix: String,
        /// Password of every seeded user (must meet the rules).
        #[arg(long, default_value = "Load7Test-Password")]
        password: String,
        /// Lifetime of the minted access tokens, seconds.
        #[arg(long, default_value_t = 6 * 3600)]
        token_ttl_secs: u64,
        /// Where to write the JSON lines (`-` for standard output).
        #[arg(long, default_value = "-")]
        out: PathBuf,
        #[command(flatten)]
        settings: Box<SettingsArgs>,
    },
}

/// Runs the parsed command.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let config = cli.config.as_deref();
    match cli.command {
        Command::Serve { settings: args } => {
            let settings = Settings::load(&args, config)?;
            telemetry::init_tracing(settings.log_format, &settings.log_level);
            warn_about_secret_flags(&args);
            let app = Application::build(settings).await?;
            app.run_until_stopped().await
        }
        Command::User {
            command:
                UserCommand::Create {
                    username,
                    email,
                    password,
                    admin,
                    settings,
                },
        } => {
            let settings = Settings::load(&settings, config)?;
            telemetry::init_tracing(settings.log_format, "warn");
            let user = create_user(&settings, &username, &email, &password, admin).await?;
            println!("created user {} ({user})", username.to_lowercase());
            Ok(())
        }
        Command::User {
            command:
                UserCommand::Seed {
                    count,
                    prefix,
                    password,
                    token_ttl_secs,
                    out,
                    settings,
                },
        } => {
            let settings = Settings::load(&settings, config)?;
            telemetry::init_tracing(settings.log_format, "warn");
            let seed = Seed {
                count,
                prefix,
                password,
                token_ttl: std::time::Duration::from_secs(token_ttl_secs),
            };
            let written = seed_users(&settings, &seed, &out).await?;
            eprintln!("seeded {written} users");
            Ok(())
        }
        Command::Migrate { down, settings } => {
            let settings = Settings::load(&settings, config)?;
            telemetry::init_tracing(settings.log_format, "warn");
            if settings.database_url.is_none() {
                std::fs::create_dir_all(&settings.data_dir)?;
            }
            let url = settings.database_url();
            match down {
                Some(steps) => {
                    let reverted = storage::migrate_down(&url, steps).await?;
                    println!("reverted migrations {reverted:?}");
                }
                None => {
                    storage::migrate_up(&url).await?;
                    println!("database is up to date");
                }
            }
            Ok(())
        }
        Command::Keys {
            command: KeysCommand::Rotate { settings: args },
        } => {
            let settings = Settings::load(&args, config)?;
            telemetry::init_tracing(settings.log_format, "warn");
            warn_about_secret_flags(&args);
            let rotation = rotate_keys(&settings).await?;
            println!(
                "new signing key {}; {} stays valid until its tokens expire",
                rotation.new_kid,
                rotation.retired_kid.as_deref().unwrap_or("no previous key")
            );
            Ok(())
        }
        Command::Config { markdown, settings } => {
            if markdown {
                print!("{}", Settings::markdown_table());
            } else {
                let settings = Settings::load(&settings, config)?;
                println!("{settings:#?}");
            }
            Ok(())
        }
    }
}

/// Secrets given as flags show in the process list (`ps`, `/proc`): say so.
pub fn warn_about_secret_flags(args: &SettingsArgs) {
    if args.jwt_secret.is_some() {
        tracing::warn!(
            "--jwt-secret is visible to every user of this machine in the process list; \
             use PARLEY_JWT_SECRET, jwt_secret_file or parley.toml instead"
        );
    }
    if args
        .smtp_url
        .as_ref()
        .and_then(Option::as_ref)
        .is_some_and(|url| url.expose().contains('@'))
    {
        tracing::warn!(
            "--smtp-url holds credentials that are visible in the process list; \
             use PARLEY_SMTP_URL or parley.toml instead"
        );
    }
}

/// `parley keys rotate`: a new signing key, audited.
pub async fn rotate_keys(settings: &Settings) -> anyhow::Result<crate::auth::keys::Rotation> {
    let rotation = crate::auth::keys::rotate(
        &settings.data_dir,
        settings.jwt_algorithm,
        settings.configured_jwt_secret()?.as_ref(),
        std::time::Duration::from_secs(settings.access_token_ttl_secs),
    )?;
    let store = open_store(settings).await?;
    let audited = store
        .create_audit_entry(parley_actors::store::NewAuditEntry {
            id: parley_actors::domain::AuditId::new(),
            at: Utc::now(),
            actor_id: None,
            action: "key_rotation".to_owned(),
            target_type: Some("signing_key".to_owned()),
            target_id: Some(rotation.new_kid.clone()),
            ip: None,
            user_agent: Some("parley keys rotate".to_owned()),
            request_id: None,
            details: serde_json::json!({
                "algorithm": settings.jwt_algorithm.to_string(),
                "retired_kid": rotation.retired_kid,
                "dropped_kids": rotation.dropped,
            }),
        })
        .await;
    store.close().await;
    audited.context("writing the audit entry")?;
    Ok(rotation)
}

/// Creates an account straight in the database.
pub async fn create_user(
    settings: &Settings,
    username: &str,
    email: &str,
    password: &str,
    admin: bool,
) -> anyhow::Result<UserId> {
    let username = Username::parse(username).map_err(|e| anyhow::anyhow!("username: {e}"))?;
    let email = Email::parse(email).map_err(|e| anyhow::anyhow!("email: {e}"))?;
    let password = Password::parse(password).map_err(|e| anyhow::anyhow!("password: {e}"))?;
    let store = open_store(settings).await?;
    let hasher = tokio::task::spawn_blocking(|| PasswordHasher::new(1)).await??;
    let password_hash = hasher.hash(password.expose()).await?;
    let id = UserId::new();
    let created = store
        .create_user(NewUser {
            id,
            username,
            email,
            password_hash,
            role: if admin { Role::Admin } else { Role::User },
            created_at: Utc::now(),
        })
        .await
        .context("creating the user");
    store.close().await;
    created?;
    Ok(id)
}

/// What `parley user seed` makes.
#[derive(Debug, Clone)]
pub struct Seed {
    pub count: u32,
    pub prefix: String,
    pub password: String,
    pub token_ttl: std::time::Duration,
}

/// One seeded user, as written (one JSON object per line).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct SeededUser {
    pub user_id: String,
    pub username: String,
    pub session_id: String,
    pub access_token: String,
}

/// Creates (or reuses, when they exist) `count` users with a session and an
/// access token each; writes them as JSON lines to `out`. Returns how many.
pub async fn seed_users(
    settings: &Settings,
    seed: &Seed,
    out: &std::path::Path,
) -> anyhow::Result<usize> {
    use std::io::Write;
    let password = Password::parse(&seed.password).map_err(|e| anyhow::anyhow!("password: {e}"))?;
    let keys = crate::auth::TokenKeys::with_ring(
        crate::startup::signing_keys(settings)?.ring().clone(),
        &settings.jwt_issuer,
        &settings.jwt_audience,
        seed.token_ttl,
    );
    let store = open_store(settings).await?;
    let hasher = tokio::task::spawn_blocking(|| PasswordHasher::new(1)).await??;
    // One hash for all: seeding 10,000 users must not take 10,000 hashes.
    let password_hash = hasher.hash(password.expose()).await?;
    let mut writer: Box<dyn Write> = if out.as_os_str() == "-" {
        Box::new(std::io::BufWriter::new(std::io::stdout()))
    } else {
        Box::new(std::io::BufWriter::new(std::fs::File::create(out)?))
    };
    let now = Utc::now();
    for i in 0..seed.count {
        let username = Username::parse(&format!("{}{i}", seed.prefix))
            .map_err(|e| anyhow::anyhow!("username: {e}"))?;
        let email = Email::parse(&format!("{username}@seed.parley.invalid"))
            .map_err(|e| anyhow::anyhow!("email: {e}"))?;
        let user = match store.user_by_login(username.as_str()).await? {
            Some(user) => user,
            None => {
                store
                    .create_user(NewUser {
                        id: UserId::new(),
                        username: username.clone(),
                        email,
                        password_hash: password_hash.clone(),
                        role: Role::User,
                        created_at: now,
                    })
                    .await?
            }
        };
        let session = parley_actors::domain::SessionId::new();
        let refresh = crate::auth::tokens::new_refresh_token();
        store
            .create_session(
                parley_actors::store::NewSession {
                    id: session,
                    user_id: user.id,
                    user_agent: Some("parley user seed".to_owned()),
                    ip: None,
                    created_at: now,
                },
                parley_actors::store::NewRefreshToken {
                    token_hash: crate::auth::tokens::hash_refresh_token(&refresh),
                    session_id: session,
                    created_at: now,
                    expires_at: now + chrono::Duration::from_std(seed.token_ttl)?,
                },
            )
            .await?;
        let access_token = keys
            .issue(user.id, user.username.as_str(), user.role, session)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let line = SeededUser {
            user_id: user.id.to_string(),
            username: user.username.to_string(),
            session_id: session.to_string(),
            access_token,
        };
        serde_json::to_writer(&mut writer, &line)?;
        writer.write_all(b"\n")?;
    }
    writer.flush()?;
    store.close().await;
    Ok(seed.count as usize)
}
