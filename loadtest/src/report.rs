//! The live progress bar, the final table, `--json`, and the harness's own
//! `/metrics` endpoint.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::procinfo::ServerUsage;
use crate::servercheck::ServerCheck;
use crate::slo::Verdict;
use crate::stats::{Stats, Summary};

/// A progress bar fed from the counters twice a second.
#[derive(Debug)]
pub struct Progress {
    bar: Option<ProgressBar>,
    phase: Arc<Mutex<&'static str>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Progress {
    /// Starts the bar (hidden when `show` is false or stderr is no terminal).
    pub fn start(stats: Arc<Stats>, show: bool, slots: usize, duration: Duration) -> Self {
        let phase = Arc::new(Mutex::new("connect"));
        if !show {
            return Self {
                bar: None,
                phase,
                task: None,
            };
        }
        let bar = ProgressBar::with_draw_target(
            Some(duration.as_secs().max(1)),
            ProgressDrawTarget::stderr_with_hz(4),
        );
        bar.set_style(
            ProgressStyle::with_template("{prefix:>8} [{elapsed_precise}] {bar:20} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar.set_prefix("connect");
        let ticker_bar = bar.clone();
        let ticker_phase = Arc::clone(&phase);
        let task = tokio::spawn(async move {
            let mut last = stats.counters.snapshot();
            let mut last_t = Instant::now();
            let mut load_started: Option<Instant> = None;
            let mut tick = tokio::time::interval(Duration::from_millis(500));
            loop {
                tick.tick().await;
                let now = stats.counters.snapshot();
                let dt = last_t.elapsed().as_secs_f64().max(1e-3);
                let rate = |a: u64, b: u64| (a.saturating_sub(b)) as f64 / dt;
                let phase = *ticker_phase.lock().unwrap_or_else(|e| e.into_inner());
                if phase == "load" {
                    let started = *load_started.get_or_insert_with(Instant::now);
                    ticker_bar.set_position(started.elapsed().as_secs());
                }
                ticker_bar.set_prefix(phase);
                ticker_bar.set_message(format!(
                    "open {}/{slots} | sent {} ({:.0}/s) acked {} | dlv {} ({:.0}/s) rec {} | http {} ({:.0}/s) | err {} closes {}",
                    now.open,
                    now.sent,
                    rate(now.sent, last.sent),
                    now.acked,
                    now.delivered,
                    rate(now.delivered + now.recovered, last.delivered + last.recovered),
                    now.recovered,
                    now.http_ok,
                    rate(now.http_ok + now.http_errors, last.http_ok + last.http_errors),
                    now.send_errors + now.connect_failures + now.http_errors,
                    now.server_closes + now.client_drops,
                ));
                last = now;
                last_t = Instant::now();
            }
        });
        Self {
            bar: Some(bar),
            phase,
            task: Some(task),
        }
    }

    /// Names the current phase.
    pub fn phase(&self, phase: &'static str) {
        *self.phase.lock().unwrap_or_else(|e| e.into_inner()) = phase;
    }

    /// Stops and clears the bar.
    pub fn finish(self) {
        if let Some(task) = self.task {
            task.abort();
        }
        if let Some(bar) = self.bar {
            bar.finish_and_clear();
        }
    }
}

/// The report of one scenario run.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub scenario: String,
    pub target: String,
    pub parameters: serde_json::Value,
    /// Named figures the SLO is checked against.
    pub figures: BTreeMap<String, f64>,
    pub detail: serde_json::Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server: Option<ServerUsage>,
    /// The server's metrics against the harness's own accounting.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_check: Option<ServerCheck>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub slo: Vec<Verdict>,
    /// Notes for the reader (e.g. "drain timed out").
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

impl Report {
    /// Whether every SLO clause was met.
    pub fn slo_met(&self) -> bool {
        self.slo.iter().all(|v| v.met)
    }

    /// Adds the latency summary's figures under a prefix (`""` for the
    /// end-to-end latency, `"ready_"`, `"ack_"`, …).
    pub fn add_summary(&mut self, prefix: &str, s: &Summary) {
        if s.count == 0 {
            return;
        }
        let f = &mut self.figures;
        f.insert(format!("{prefix}p50"), s.p50_ms);
        f.insert(format!("{prefix}p90"), s.p90_ms);
        f.insert(format!("{prefix}p99"), s.p99_ms);
        f.insert(format!("{prefix}p999"), s.p999_ms);
        f.insert(format!("{prefix}max"), s.max_ms);
    }

    /// Adds the server figures.
    pub fn add_server(&mut self, usage: ServerUsage) {
        self.figures
            .insert("server_rss_max_mib".into(), mib(usage.rss_max_bytes));
        self.figures
            .insert("server_cpu_avg_pct".into(), usage.cpu_avg_pct);
        self.figures
            .insert("rss_growth_pct".into(), usage.rss_growth_pct);
        self.server = Some(usage);
    }

    /// Adds the server cross-check, and the figure `server_agrees` (1 or 0)
    /// when the server's metrics could be read (none when not, so that an
    /// SLO on it fails).
    pub fn add_server_check(&mut self, check: ServerCheck) {
        if check.available {
            self.figures
                .insert("server_agrees".into(), f64::from(u8::from(check.agrees)));
        }
        self.server_check = Some(check);
    }

    /// The human table.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "\n== parley-loadtest {} → {}",
            self.scenario, self.target
        );
        let _ = writeln!(out, "parameters: {}", self.parameters);
        let _ = writeln!(out, "{:<28} {:>16}", "figure", "value");
        let _ = writeln!(out, "{}", "-".repeat(45));
        for (name, value) in &self.figures {
            let unit = if is_time(name) { " ms" } else { "" };
            let _ = writeln!(out, "{name:<28} {:>13}{unit}", fmt_num(*value));
        }
        if let Some(s) = &self.server {
            let _ = writeln!(
                out,
                "server pid {}: RSS {:.1} → {:.1} MiB (max {:.1}), CPU avg {:.0}% max {:.0}% of one core, {} threads",
                s.pid,
                mib(s.rss_start_bytes),
                mib(s.rss_end_bytes),
                mib(s.rss_max_bytes),
                s.cpu_avg_pct,
                s.cpu_max_pct,
                s.threads
            );
        }
        if let Some(c) = &self.server_check {
            server_check_table(&mut out, c);
        }
        for key in ["closes", "errors"] {
            if let Some(map) = self.detail.get(key).and_then(|v| v.as_object())
                && !map.is_empty()
            {
                let items: Vec<String> = map.iter().map(|(k, v)| format!("{k}: {v}")).collect();
                let _ = writeln!(out, "{key}: {}", items.join(", "));
            }
        }
        for note in &self.notes {
            let _ = writeln!(out, "note: {note}");
        }
        for v in &self.slo {
            let actual = v.actual.map_or_else(|| "missing".to_owned(), fmt_num);
            let _ = writeln!(
                out,
                "SLO {:<24} actual {:>12}  {}",
                v.clause,
                actual,
                if v.met { "met" } else { "NOT MET" }
            );
        }
        out
    }
}

fn server_check_table(out: &mut String, c: &ServerCheck) {
    let Some(s) = &c.server else {
        let why = c.reason.as_deref().unwrap_or("server metrics unavailable");
        let _ = writeln!(out, "server check ({}): {why}", c.url);
        return;
    };
    let h = &c.harness;
    let verdict = if c.agrees { "agrees" } else { "DISAGREES" };
    let _ = writeln!(out, "server check ({}): {verdict}", c.url);
    let _ = writeln!(
        out,
        "  {:<28} server {:>10}  harness {:>10} (+{} in doubt)",
        "messages stored", s.messages_stored, h.stored, h.stored_in_doubt
    );
    let _ = writeln!(
        out,
        "  {:<28} server {:>10}  harness {:>10} live (+{} in doubt, +{} unread on closed sockets; {} frames, {} replayed)",
        "message.created deliveries",
        s.message_created_deliveries,
        h.live,
        h.in_doubt,
        h.unread_bound,
        h.frames,
        h.replayed
    );
    let _ = writeln!(
        out,
        "  {:<28} server {:>10}  harness {:>10} (+{} ended unseen)",
        "4009 closes", s.slow_consumer_closes, h.slow_consumer_closes, h.closes_unseen
    );
    let closes: Vec<String> = s
        .closes_by_code
        .iter()
        .map(|(k, v)| format!("{k}: {v}"))
        .collect();
    let _ = writeln!(
        out,
        "  server closes by code: {}; ephemeral events shed: {}",
        if closes.is_empty() {
            "none".to_owned()
        } else {
            closes.join(", ")
        },
        s.events_shed
    );
    if let Some(reason) = &c.reason {
        let _ = writeln!(out, "  why: {reason}");
    }
}

fn is_time(name: &str) -> bool {
    let tail = name.rsplit('_').next().unwrap_or(name);
    matches!(tail, "p50" | "p90" | "p99" | "p999" | "max") || name == "all_ready"
}

fn fmt_num(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else if v.abs() >= 100.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}")
    }
}

/// Bytes → MiB.
pub fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// Serves the harness's counters as Prometheus text on `addr` until the
/// process exits (a background task; one request per connection).
pub async fn serve_metrics(addr: std::net::SocketAddr, stats: Arc<Stats>) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    eprintln!(
        "harness metrics on http://{}/metrics",
        listener.local_addr()?
    );
    tokio::spawn(async move {
        loop {
            let Ok((mut conn, _)) = listener.accept().await else {
                continue;
            };
            let stats = Arc::clone(&stats);
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                if conn.read(&mut buf).await.is_err() {
                    return;
                }
                let body = prometheus_text(&stats);
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: text/plain; version=0.0.4\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                if conn.write_all(head.as_bytes()).await.is_ok()
                    && conn.write_all(body.as_bytes()).await.is_ok()
                {
                    let _flushed = conn.shutdown().await;
                }
            });
        }
    });
    Ok(())
}

fn prometheus_text(stats: &Stats) -> String {
    let mut out = String::new();
    for (name, value) in stats.counters.snapshot().pairs() {
        let kind = if name == "open" { "gauge" } else { "counter" };
        let metric = if kind == "counter" {
            format!("parley_loadtest_{name}_total")
        } else {
            format!("parley_loadtest_{name}")
        };
        let _ = writeln!(out, "# TYPE {metric} {kind}\n{metric} {value}");
    }
    let latency = stats.latency.merged();
    let _ = writeln!(out, "# TYPE parley_loadtest_latency_seconds summary");
    for q in [0.5, 0.9, 0.99, 0.999] {
        let _ = writeln!(
            out,
            "parley_loadtest_latency_seconds{{quantile=\"{q}\"}} {}",
            latency.value_at_quantile(q) as f64 / 1e6
        );
    }
    let _ = writeln!(
        out,
        "parley_loadtest_latency_seconds_count {}",
        latency.len()
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_server_check_shows_in_the_table_and_the_figures() {
        use crate::servercheck::{HarnessFigures, ServerCheck, ServerFigures};
        let mut report = Report {
            scenario: "fanout".into(),
            target: "http://127.0.0.1:8080".into(),
            parameters: serde_json::json!({}),
            figures: BTreeMap::new(),
            detail: serde_json::json!({}),
            server: None,
            server_check: None,
            slo: Vec::new(),
            notes: Vec::new(),
        };
        report.add_server_check(ServerCheck {
            url: "http://127.0.0.1:8080/metrics".into(),
            available: true,
            agrees: false,
            reason: Some("4009 closes: server 1 > harness 0 + 0 explained by closes".into()),
            server: Some(ServerFigures {
                slow_consumer_closes: 1,
                ..ServerFigures::default()
            }),
            harness: HarnessFigures::default(),
        });
        assert_eq!(report.figures.get("server_agrees"), Some(&0.0));
        let table = report.table();
        assert!(table.contains("server check (http://127.0.0.1:8080/metrics): DISAGREES"));
        assert!(table.contains("why: 4009 closes"));
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["server_check"]["agrees"], false);
        assert_eq!(json["server_check"]["server"]["slow_consumer_closes"], 1);

        let mut unread = report.clone();
        unread.figures.clear();
        unread.add_server_check(ServerCheck {
            url: "u".into(),
            available: false,
            agrees: false,
            reason: Some("server metrics unavailable: GET u: refused".into()),
            server: None,
            harness: HarnessFigures::default(),
        });
        assert!(!unread.figures.contains_key("server_agrees"));
        assert!(
            unread
                .table()
                .contains("server check (u): server metrics unavailable")
        );
    }

    #[test]
    fn the_metrics_text_names_every_counter() {
        let stats = Stats::new();
        stats.latency.record(0, 1500);
        let text = prometheus_text(&stats);
        assert!(text.contains("parley_loadtest_delivered_total 0"));
        assert!(text.contains("parley_loadtest_open 0"));
        assert!(text.contains("parley_loadtest_latency_seconds_count 1"));
    }
}
