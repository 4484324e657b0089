//! What the harness's black-box tests share: the real server started here
//! on port 0 with users provisioned by `parley user seed`'s code, and the
//! harness binary run against it.

use std::path::PathBuf;
use std::time::Duration;

use parley::{Application, Settings};
use serde_json::Value;

/// A running server and the users file seeded for it.
pub struct Server {
    pub url: String,
    pub users: PathBuf,
    _dir: tempfile::TempDir,
}

impl Server {
    /// Starts a server with limits a load run does not hit, and seeds
    /// `count` users.
    pub async fn start(count: u32, prefix: &str) -> Self {
        let dir = tempfile::tempdir().expect("a temp dir");
        let settings = Settings {
            listen: "127.0.0.1:0".parse().expect("an address"),
            data_dir: dir.path().to_path_buf(),
            ws_events_per_second: 1000,
            ws_events_burst: 2000,
            api_per_minute: 1_000_000,
            ..Settings::default()
        };
        let users = dir.path().join("users.jsonl");
        let seed = parley::cli::Seed {
            count,
            prefix: prefix.to_owned(),
            password: "Seeded-users-1".to_owned(),
            token_ttl: Duration::from_secs(3600),
        };
        let app = Box::pin(Application::build(settings.clone()))
            .await
            .expect("the server builds");
        let url = format!("http://{}", app.local_addr());
        tokio::spawn(async move {
            if let Err(e) = app.run_until_stopped().await {
                eprintln!("server stopped: {e:#}");
            }
        });
        parley::cli::seed_users(&settings, &seed, &users)
            .await
            .expect("users seeded");
        Self {
            url,
            users,
            _dir: dir,
        }
    }

    /// Runs the harness with `--url`, `--users`, `--json` and
    /// `--no-progress` before `args`; it must exit 0. Returns its report.
    pub async fn run_harness(&self, args: &[&str]) -> Value {
        let harness = env!("CARGO_BIN_EXE_parley-loadtest");
        let users = self.users.to_str().expect("a UTF-8 path");
        let out = tokio::process::Command::new(harness)
            .args([
                "--url",
                &self.url,
                "--users",
                users,
                "--json",
                "--no-progress",
            ])
            .args(args)
            .output()
            .await
            .expect("the harness runs");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "exit {:?}; stderr:\n{stderr}",
            out.status
        );
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "JSON report ({e}): {}",
                String::from_utf8_lossy(&out.stdout)
            )
        })
    }
}

/// A figure of a report; panics when it is missing.
pub fn figure(report: &Value, name: &str) -> f64 {
    report["figures"][name]
        .as_f64()
        .unwrap_or_else(|| panic!("figure {name} in {report}"))
}
