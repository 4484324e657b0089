//! The command line: `serve`, `user create`, `migrate`, `config`.

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
    /// Print the settings: in force (secrets hidden), or the README table.
    Config {
        /// Print every setting with its default as a Markdown table.
        #[arg(long)]
        markdown: bool,
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
}

/// Runs the parsed command.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let config = cli.config.as_deref();
    match cli.command {
        Command::Serve { settings } => {
            let settings = Settings::load(&settings, config)?;
            telemetry::init_tracing(settings.log_format, &settings.log_level);
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
