//! The server cross-check: the harness's own accounting against the
//! server's Prometheus counters.
//!
//! Around the message scenarios, the harness scrapes the server's `/metrics`
//! (`--server-metrics-url`, by default `{url}/metrics`) once before the run
//! and once after it, and compares the deltas with what it counted itself:
//!
//! - `messages_stored_total` against the sends acked with a new message;
//! - `ws_deliveries_total{type="message.created"}` (one per socket a live
//!   event was queued to) against the `message.created` frames read live;
//! - `ws_slow_consumer_closes_total` against the 4009 closes seen.
//!
//! Each comparison is an interval, not an equality, because a close can
//! hide what the harness would otherwise see (see [`compare()`] and the
//! README). Without closes and with a complete drain, the intervals are
//! single points: the figures must be equal.
//!
//! The harness must be the only client of the server during the run; any
//! other traffic shows up as a disagreement.
//!
//! The files: this one takes the two scrapes ([`Baseline`]) and builds the
//! report's [`ServerCheck`]; `prometheus` reads the Prometheus text; `figures`
//! holds the server's and the harness's figures; `compare` the interval
//! rule; `tally` the per-slot frame accounting the engine keeps for it.

use std::time::Duration;

use anyhow::{Context, bail};
use serde::Serialize;

use compare::compare;
use prometheus::Scrape;

mod compare;
mod figures;
mod prometheus;
mod tally;
#[cfg(test)]
mod tests;

pub use compare::send_error_in_doubt;
pub use figures::{HarnessFigures, ServerFigures};
pub use tally::{FrameTally, GenReads};

/// Fetches and reads the server's metrics.
pub async fn scrape(http: &reqwest::Client, url: &str) -> anyhow::Result<ServerFigures> {
    let resp = http
        .get(url)
        .send()
        .await
        .with_context(|| format!("GET {url}"))?;
    let status = resp.status();
    if !status.is_success() {
        bail!("GET {url}: {status}");
    }
    let text = resp.text().await.with_context(|| format!("GET {url}"))?;
    let scrape = Scrape::from_text(&text);
    if scrape.samples.is_empty() {
        bail!("GET {url}: no samples (not Prometheus text?)");
    }
    Ok(ServerFigures::of(&scrape))
}

/// Checks `--server-metrics-url` like the target: http(s), and a loopback
/// host unless remote targets are allowed.
pub fn check_url(url: &str, allow_remote: bool) -> anyhow::Result<String> {
    let parsed = reqwest::Url::parse(url).with_context(|| format!("server metrics URL `{url}`"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        bail!("server metrics URL `{url}`: use http:// or https://");
    }
    let host = parsed
        .host_str()
        .with_context(|| format!("server metrics URL `{url}` has no host"))?;
    if !allow_remote {
        let port = parsed.port_or_known_default().unwrap_or(80);
        let local = std::net::ToSocketAddrs::to_socket_addrs(&(host, port))
            .with_context(|| format!("resolving {host}"))?
            .all(|a| a.ip().is_loopback());
        if !local {
            bail!("server metrics URL `{url}` is not a loopback address; pass --allow-remote");
        }
    }
    Ok(url.to_owned())
}

/// The scrape taken before a run; [`Baseline::check`] takes the second one
/// and compares.
#[derive(Debug)]
pub struct Baseline {
    url: String,
    http: reqwest::Client,
    before: Result<ServerFigures, String>,
}

impl Baseline {
    /// Scrapes `url` (`None`: the cross-check is off). A failure is kept
    /// and reported by [`Baseline::check`]; it never fails the run.
    pub async fn take(url: Option<&str>) -> Option<Self> {
        let url = url?;
        let http = match reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
        {
            Ok(h) => h,
            Err(e) => {
                eprintln!("note: server metrics unavailable: {e}");
                return None;
            }
        };
        let before = scrape(&http, url).await.map_err(|e| format!("{e:#}"));
        if let Err(e) = &before {
            eprintln!("note: server metrics unavailable ({e}): no server cross-check");
        }
        Some(Self {
            url: url.to_owned(),
            http,
            before,
        })
    }

    /// Scrapes again and compares the delta with the harness's figures.
    pub async fn check(self, harness: HarnessFigures) -> ServerCheck {
        let delta = match &self.before {
            Ok(before) => match scrape(&self.http, &self.url).await {
                Ok(after) => after.since(before),
                Err(e) => Err(format!("{e:#}")),
            },
            Err(e) => Err(e.clone()),
        };
        match delta {
            Ok(server) => {
                let reasons = compare(&server, &harness);
                ServerCheck {
                    url: self.url,
                    available: true,
                    agrees: reasons.is_empty(),
                    reason: (!reasons.is_empty()).then(|| reasons.join("; ")),
                    server: Some(server),
                    harness,
                }
            }
            Err(e) => {
                if self.before.is_ok() {
                    eprintln!("note: server metrics unavailable ({e}): no server cross-check");
                }
                ServerCheck {
                    url: self.url,
                    available: false,
                    agrees: false,
                    reason: Some(format!("server metrics unavailable: {e}")),
                    server: None,
                    harness,
                }
            }
        }
    }
}

/// The `server_check` section of a report.
#[derive(Debug, Clone, Serialize)]
pub struct ServerCheck {
    /// Where the metrics were scraped.
    pub url: String,
    /// Whether both scrapes succeeded.
    pub available: bool,
    /// Whether every server figure lies within the harness's interval
    /// (`false` when unavailable).
    pub agrees: bool,
    /// Why not, when not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The server's deltas over the run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server: Option<ServerFigures>,
    pub harness: HarnessFigures,
}
