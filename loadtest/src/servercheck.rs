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
//! hide what the harness would otherwise see (see [`compare`] and the
//! README). Without closes and with a complete drain, the intervals are
//! single points: the figures must be equal.
//!
//! The harness must be the only client of the server during the run; any
//! other traffic shows up as a disagreement.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

/// One sample of the Prometheus text format: `name{labels} value`.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: Vec<(String, String)>,
    pub value: f64,
}

/// Parses Prometheus text: one sample per line, `#` lines (HELP, TYPE)
/// and blank lines skipped, an optional timestamp after the value ignored.
/// Lines that do not parse are skipped: the exposition may carry kinds the
/// cross-check does not need.
pub fn parse(text: &str) -> Vec<Sample> {
    text.lines().filter_map(parse_line).collect()
}

fn parse_line(line: &str) -> Option<Sample> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let name_end = line
        .find(|c: char| c == '{' || c.is_whitespace())
        .unwrap_or(line.len());
    let name = &line[..name_end];
    if name.is_empty() {
        return None;
    }
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(inner) = rest.strip_prefix('{') {
        let (parsed, after) = parse_labels(inner)?;
        labels = parsed;
        rest = after;
    }
    let value = parse_value(rest.split_whitespace().next()?)?;
    Some(Sample {
        name: name.to_owned(),
        labels,
        value,
    })
}

/// Parses `a="x",b="y"}` (after the `{`); returns the labels and the text
/// after the `}`.
fn parse_labels(mut s: &str) -> Option<(Vec<(String, String)>, &str)> {
    let mut labels = Vec::new();
    loop {
        s = s.trim_start_matches(|c: char| c == ',' || c.is_whitespace());
        if let Some(after) = s.strip_prefix('}') {
            return Some((labels, after));
        }
        let eq = s.find('=')?;
        let key = s[..eq].trim();
        if key.is_empty() || key.contains(['"', '}']) {
            return None;
        }
        let quoted = s[eq + 1..].trim_start().strip_prefix('"')?;
        let mut value = String::new();
        let mut chars = quoted.char_indices();
        let end = loop {
            let (i, c) = chars.next()?;
            match c {
                '\\' => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    other => value.push(other),
                },
                '"' => break i + 1,
                other => value.push(other),
            }
        };
        labels.push((key.to_owned(), value));
        s = &quoted[end..];
    }
}

fn parse_value(raw: &str) -> Option<f64> {
    match raw {
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        "NaN" => Some(f64::NAN),
        other => other.parse().ok(),
    }
}

/// Samples of one scrape.
#[derive(Debug, Clone, Default)]
pub struct Scrape {
    samples: Vec<Sample>,
}

impl Scrape {
    /// Parses a scrape's text.
    pub fn from_text(text: &str) -> Self {
        Self {
            samples: parse(text),
        }
    }

    /// The sum of every series of `name` whose labels include all of
    /// `filter` (0 when there is none: a counter never incremented is not
    /// exported).
    pub fn sum(&self, name: &str, filter: &[(&str, &str)]) -> f64 {
        self.samples
            .iter()
            .filter(|s| s.name == name)
            .filter(|s| {
                filter
                    .iter()
                    .all(|(k, v)| s.labels.iter().any(|(lk, lv)| lk == k && lv == v))
            })
            .map(|s| s.value)
            .sum()
    }

    /// `name`'s series summed by the value of one label.
    pub fn by_label(&self, name: &str, label: &str) -> BTreeMap<String, f64> {
        let mut out = BTreeMap::new();
        for s in self.samples.iter().filter(|s| s.name == name) {
            if let Some((_, v)) = s.labels.iter().find(|(k, _)| k == label) {
                *out.entry(v.clone()).or_default() += s.value;
            }
        }
        out
    }
}

/// Metric names, exactly as the server exports them.
pub mod names {
    /// New chat messages stored.
    pub const STORED: &str = "messages_stored_total";
    /// Events queued to sockets, one per recipient socket, by `type`.
    pub const DELIVERIES: &str = "ws_deliveries_total";
    /// Sockets closed with 4009 because their durable queue was full.
    pub const SLOW_CONSUMER_CLOSES: &str = "ws_slow_consumer_closes_total";
    /// WebSocket closes by `code`.
    pub const CLOSES: &str = "ws_closes_total";
    /// Ephemeral events dropped.
    pub const SHED: &str = "ws_events_shed_total";
}

/// The server counters the cross-check reads (totals of one scrape, or the
/// difference of two).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ServerFigures {
    /// `messages_stored_total`.
    pub messages_stored: u64,
    /// `ws_deliveries_total{type="message.created"}`.
    pub message_created_deliveries: u64,
    /// `ws_slow_consumer_closes_total`.
    pub slow_consumer_closes: u64,
    /// `ws_closes_total` by `code`.
    pub closes_by_code: BTreeMap<String, u64>,
    /// `ws_events_shed_total`.
    pub events_shed: u64,
}

fn count(v: f64) -> u64 {
    if v.is_finite() && v > 0.0 {
        v.round() as u64
    } else {
        0
    }
}

impl ServerFigures {
    /// Reads the figures from a scrape.
    pub fn of(scrape: &Scrape) -> Self {
        Self {
            messages_stored: count(scrape.sum(names::STORED, &[])),
            message_created_deliveries: count(
                scrape.sum(names::DELIVERIES, &[("type", "message.created")]),
            ),
            slow_consumer_closes: count(scrape.sum(names::SLOW_CONSUMER_CLOSES, &[])),
            closes_by_code: scrape
                .by_label(names::CLOSES, "code")
                .into_iter()
                .map(|(k, v)| (k, count(v)))
                .collect(),
            events_shed: count(scrape.sum(names::SHED, &[])),
        }
    }

    /// `self − before`; `Err` when a counter went backwards (the server
    /// restarted between the scrapes).
    pub fn since(&self, before: &Self) -> Result<Self, String> {
        let sub = |name: &str, after: u64, before: u64| {
            after
                .checked_sub(before)
                .ok_or_else(|| format!("{name} went from {before} to {after}: server restarted?"))
        };
        let mut closes = BTreeMap::new();
        for (code, after) in &self.closes_by_code {
            let was = before.closes_by_code.get(code).copied().unwrap_or(0);
            let d = sub(names::CLOSES, *after, was)?;
            if d > 0 {
                closes.insert(code.clone(), d);
            }
        }
        Ok(Self {
            messages_stored: sub(names::STORED, self.messages_stored, before.messages_stored)?,
            message_created_deliveries: sub(
                names::DELIVERIES,
                self.message_created_deliveries,
                before.message_created_deliveries,
            )?,
            slow_consumer_closes: sub(
                names::SLOW_CONSUMER_CLOSES,
                self.slow_consumer_closes,
                before.slow_consumer_closes,
            )?,
            closes_by_code: closes,
            events_shed: sub(names::SHED, self.events_shed, before.events_shed)?,
        })
    }
}

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

/// What the harness counted, in the server's terms. Each server figure is
/// expected in `[harness, harness + allowance]`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct HarnessFigures {
    /// Sends acked with a new message (WebSocket acks, less acks of a
    /// message that existed before the run, plus REST sends answered 2xx).
    pub stored: u64,
    /// Sends whose fate is unknown: an ack lost with its socket, an
    /// `unavailable` (or unknown) error answer, a REST send that failed. Each
    /// may or may not have been stored.
    pub stored_in_doubt: u64,
    /// Every `message.created` frame read, on every socket.
    pub frames: u64,
    /// Frames a completed `resume` replayed: Σ (`resumed` seq − the seq
    /// resumed from). The server does not count replays as deliveries.
    pub replayed: u64,
    /// Frames read during a `resume` cut short by a close: each was either
    /// queued live or replayed.
    pub in_doubt: u64,
    /// `frames − replayed − in_doubt`: frames queued live, read.
    pub live: u64,
    /// At most this many live frames were queued to a socket that closed
    /// before the harness read them (see `engine` and the README).
    pub unread_bound: u64,
    /// 4009 closes the harness read (after `ready`, or before it).
    pub slow_consumer_closes: u64,
    /// Connections that ended without the harness reading a close frame
    /// (its own drops, transport errors, EOF): a 4009 may hide in each.
    pub closes_unseen: u64,
}

impl HarnessFigures {
    /// The figures of a socket run. `known_above` raises every room's
    /// horizon (seqs learnt outside the engine, e.g. REST sends).
    pub fn of_engine(r: &crate::engine::EngineResult, known_above: i64) -> Self {
        let t = &r.frames;
        let horizon = |room: usize| r.known_max.get(room).copied().unwrap_or(0).max(known_above);
        Self {
            stored: r.counters.acked.saturating_sub(t.acked_existing),
            stored_in_doubt: t.sends_in_doubt,
            frames: t.frames,
            replayed: t.replayed,
            in_doubt: t.in_doubt,
            live: t
                .frames
                .saturating_sub(t.replayed)
                .saturating_sub(t.in_doubt),
            unread_bound: t.unread_bound(horizon),
            slow_consumer_closes: t.slow_consumer_closes,
            // After a drain that timed out, the final close may hide a 4009.
            closes_unseen: t.closes_unseen + if r.drained { 0 } else { t.stopped },
        }
    }

    /// Adds a REST sender's figures (the soak's REST mix).
    pub fn with_rest(mut self, acked: u64, failed: u64) -> Self {
        self.stored += acked;
        self.stored_in_doubt += failed;
        self
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

fn within(what: &str, server: u64, low: u64, allowance: u64, out: &mut Vec<String>) {
    let high = low.saturating_add(allowance);
    if server < low {
        out.push(format!(
            "{what}: server {server} < harness {low} (the harness saw more than the server counted)"
        ));
    } else if server > high {
        out.push(format!(
            "{what}: server {server} > harness {low} + {allowance} explained by closes"
        ));
    }
}

/// The comparison rule. Every server figure must lie in an interval
/// `[harness, harness + allowance]`:
///
/// - stored: `[stored, stored + stored_in_doubt]`;
/// - `message.created` deliveries:
///   `[live, live + in_doubt + unread_bound]`;
/// - 4009 closes: `[slow_consumer_closes, slow_consumer_closes +
///   closes_unseen]`.
///
/// The lower bounds hold by construction (every frame the harness counts
/// as live was queued, and counted, by the server). Returns the reasons it
/// does not hold; empty means the two agree.
pub fn compare(server: &ServerFigures, h: &HarnessFigures) -> Vec<String> {
    let mut out = Vec::new();
    within(
        "messages stored",
        server.messages_stored,
        h.stored,
        h.stored_in_doubt,
        &mut out,
    );
    within(
        "message.created deliveries",
        server.message_created_deliveries,
        h.live,
        h.in_doubt.saturating_add(h.unread_bound),
        &mut out,
    );
    within(
        "4009 closes",
        server.slow_consumer_closes,
        h.slow_consumer_closes,
        h.closes_unseen,
        &mut out,
    );
    out
}

/// Whether an error answer to a send leaves the message possibly stored:
/// refusals the server makes before storing do not.
pub fn send_error_in_doubt(code: &str) -> bool {
    !matches!(
        code,
        "rate_limited"
            | "not_found"
            | "forbidden"
            | "not_member"
            | "conflict"
            | "validation_failed"
            | "unknown_type"
            | "invalid_frame"
            | "malformed_frame"
    )
}

/// The frame accounting of one slot (summed over slots for a run): what
/// the engine records for the cross-check.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct FrameTally {
    /// `message.created` frames read, on every connection.
    pub frames: u64,
    /// Frames replayed by completed resumes.
    pub replayed: u64,
    /// Frames read during resumes cut short by a close.
    pub in_doubt: u64,
    /// Unread bound of closed connections resolved by their successor's
    /// `resumed`.
    pub unread_resolved: u64,
    /// Acks of a message that existed before the run.
    pub acked_existing: u64,
    /// Sends that may or may not have been stored.
    pub sends_in_doubt: u64,
    /// 4009 closes read.
    pub slow_consumer_closes: u64,
    /// Connections that ended without a close frame read.
    pub closes_unseen: u64,
    /// Connections still open when the run stopped.
    pub stopped: u64,
    /// Frames read in the resume window still open.
    #[serde(skip)]
    pub window: u64,
    /// Closed connections' reads waiting for a horizon: see [`GenReads`].
    #[serde(skip)]
    pub unresolved: Vec<GenReads>,
}

/// One connection's reads in one room, for the unread bound: it may have
/// been queued every seq in `(lower, horizon]`, and it read `reads` of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct GenReads {
    /// Index of the room in the plan.
    pub room: usize,
    /// No seq at or below this was queued to it live: its `ready`'s
    /// `last_seq` on a first connection, the seq resumed from after a
    /// reconnect (which is lower).
    pub lower: i64,
    /// Distinct seqs above `lower` read on it (live or replayed).
    pub reads: u64,
}

impl GenReads {
    /// Seqs in `(lower, horizon]` it did not read: an upper bound on the
    /// live frames queued to it and never read. The horizon must be at or
    /// above every seq stored while the connection was subscribed (and so
    /// above every seq it read).
    pub fn unread(&self, horizon: i64) -> u64 {
        u64::try_from(horizon - self.lower)
            .unwrap_or(0)
            .saturating_sub(self.reads)
    }
}

impl FrameTally {
    /// A `message.created` frame was read (`resuming`: inside a resume
    /// window).
    pub fn on_frame(&mut self, resuming: bool) {
        self.frames += 1;
        if resuming {
            self.window += 1;
        }
    }

    /// A `resume` completed: `replayed` frames of the window were replays;
    /// `horizons` gives, per room, the seq live delivery resumed after.
    /// Connections closed before it are bounded with that horizon: the
    /// server forgot them before it caught this one up (they closed before
    /// it connected).
    pub fn on_resumed(
        &mut self,
        replayed: u64,
        closed: Vec<GenReads>,
        horizon: impl Fn(usize) -> Option<i64>,
    ) {
        self.replayed += replayed;
        self.window = 0;
        for reads in closed {
            match horizon(reads.room) {
                Some(h) => self.unread_resolved += reads.unread(h),
                None => self.unresolved.push(reads),
            }
        }
    }

    /// A connection ended with a resume window open: its frames stay in
    /// doubt.
    pub fn on_end(&mut self) {
        self.in_doubt += self.window;
        self.window = 0;
    }

    /// Adds another slot's tally.
    pub fn merge(&mut self, other: Self) {
        self.frames += other.frames;
        self.replayed += other.replayed;
        self.in_doubt += other.in_doubt + other.window;
        self.unread_resolved += other.unread_resolved;
        self.acked_existing += other.acked_existing;
        self.sends_in_doubt += other.sends_in_doubt;
        self.slow_consumer_closes += other.slow_consumer_closes;
        self.closes_unseen += other.closes_unseen;
        self.stopped += other.stopped;
        self.unresolved.extend(other.unresolved);
    }

    /// The unread bound: resolved connections, plus every unresolved one
    /// up to `horizon(room)` (the highest seq known at the end of the run).
    pub fn unread_bound(&self, horizon: impl Fn(usize) -> i64) -> u64 {
        self.unread_resolved
            + self
                .unresolved
                .iter()
                .map(|g| g.unread(horizon(g.room)))
                .sum::<u64>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"# HELP ws_deliveries_total Events queued to sockets
# TYPE ws_deliveries_total counter
ws_deliveries_total{type="message.created"} 1200
ws_deliveries_total{type="presence"} 40
ws_deliveries_total{node="b",type="message.created"} 5
messages_stored_total 12
ws_closes_total{code="1000"} 3
ws_closes_total{code="4009"} 1
ws_slow_consumer_closes_total 1 1700000000000
weird_label{msg="a \"quoted\", {brace} \\ here",type="message.created"} 7
http_request_duration_seconds_bucket{le="+Inf",route="/x"} 9
not a sample
"#;

    #[test]
    fn the_parser_reads_names_labels_and_values() {
        let samples = parse(TEXT);
        assert_eq!(samples.len(), 9, "comments and the broken line skipped");
        assert_eq!(samples[0].name, "ws_deliveries_total");
        assert_eq!(
            samples[0].labels,
            vec![("type".to_owned(), "message.created".to_owned())]
        );
        assert_eq!(samples[0].value, 1200.0);
        assert_eq!(samples[3].name, "messages_stored_total");
        assert!(samples[3].labels.is_empty());
        // A timestamp after the value is ignored.
        assert_eq!(samples[6].value, 1.0);
        // Escapes, commas and braces inside a quoted label value.
        assert_eq!(samples[7].labels[0].1, r#"a "quoted", {brace} \ here"#);
        assert_eq!(samples[7].labels[1].1, "message.created");
        assert_eq!(samples[8].labels[0].1, "+Inf");
        // The last "line" parses as name `not`, value `a`: refused.
        assert!(parse("not a sample").is_empty());
        assert_eq!(parse("x{a=\"1\"} +Inf")[0].value, f64::INFINITY);
        assert!(parse("x{a=\"unterminated} 1").is_empty());
    }

    #[test]
    fn sums_follow_the_label_filter() {
        let scrape = Scrape::from_text(TEXT);
        assert_eq!(
            scrape.sum("ws_deliveries_total", &[("type", "message.created")]),
            1205.0
        );
        assert_eq!(scrape.sum("ws_deliveries_total", &[]), 1245.0);
        assert_eq!(scrape.sum("messages_stored_total", &[]), 12.0);
        assert_eq!(scrape.sum("missing_total", &[]), 0.0);
        let closes = scrape.by_label("ws_closes_total", "code");
        assert_eq!(closes.get("4009"), Some(&1.0));
        let figures = ServerFigures::of(&scrape);
        assert_eq!(figures.message_created_deliveries, 1205);
        assert_eq!(figures.slow_consumer_closes, 1);
        assert_eq!(figures.events_shed, 0, "never incremented: not exported");
    }

    #[test]
    fn deltas_refuse_counters_that_went_back() {
        let before = ServerFigures::of(&Scrape::from_text(TEXT));
        let mut after = before.clone();
        after.messages_stored += 5;
        after.message_created_deliveries += 50;
        *after.closes_by_code.entry("1000".into()).or_default() += 2;
        let d = after.since(&before).unwrap();
        assert_eq!(d.messages_stored, 5);
        assert_eq!(d.message_created_deliveries, 50);
        assert_eq!(
            d.closes_by_code.len(),
            1,
            "codes that did not move are left out"
        );
        assert!(before.since(&after).is_err());
    }

    fn harness() -> HarnessFigures {
        HarnessFigures {
            stored: 100,
            stored_in_doubt: 0,
            frames: 10_000,
            replayed: 0,
            in_doubt: 0,
            live: 10_000,
            unread_bound: 0,
            slow_consumer_closes: 0,
            closes_unseen: 0,
        }
    }

    fn server(stored: u64, deliveries: u64, slow: u64) -> ServerFigures {
        ServerFigures {
            messages_stored: stored,
            message_created_deliveries: deliveries,
            slow_consumer_closes: slow,
            ..ServerFigures::default()
        }
    }

    #[test]
    fn without_closes_the_figures_must_be_equal() {
        let h = harness();
        assert!(compare(&server(100, 10_000, 0), &h).is_empty());
        assert_eq!(compare(&server(101, 10_000, 0), &h).len(), 1);
        assert_eq!(compare(&server(100, 9_999, 0), &h).len(), 1);
        assert_eq!(compare(&server(100, 10_001, 0), &h).len(), 1);
        let why = compare(&server(99, 10_000, 1), &h);
        assert_eq!(why.len(), 2);
        assert!(why[0].starts_with("messages stored: server 99 < harness 100"));
    }

    #[test]
    fn closes_widen_the_interval_upwards_only() {
        let h = HarnessFigures {
            stored_in_doubt: 3,
            in_doubt: 20,
            live: 9_950,
            unread_bound: 30,
            slow_consumer_closes: 1,
            closes_unseen: 2,
            ..harness()
        };
        assert!(compare(&server(100, 9_950, 1), &h).is_empty());
        assert!(compare(&server(103, 10_000, 3), &h).is_empty());
        let why = compare(&server(104, 10_001, 4), &h);
        assert_eq!(why.len(), 3, "{why:?}");
        assert!(why[1].contains("9950 + 50"));
        assert_eq!(compare(&server(100, 9_949, 0), &h).len(), 2);
    }

    #[test]
    fn unread_bounds_count_seqs_a_closed_connection_did_not_read() {
        let g = GenReads {
            room: 0,
            lower: 10,
            reads: 4,
        };
        assert_eq!(g.unread(20), 6);
        assert_eq!(g.unread(14), 0);
        assert_eq!(g.unread(5), 0, "a horizon below the base bounds nothing");
        let mut t = FrameTally::default();
        // A connection read 3 frames in a resume window, then the resume
        // completed with 2 of them replays.
        for _ in 0..3 {
            t.on_frame(true);
        }
        t.on_frame(false);
        t.on_resumed(2, vec![g, GenReads { room: 1, ..g }], |room| {
            (room == 0).then_some(30)
        });
        assert_eq!((t.frames, t.replayed, t.window), (4, 2, 0));
        assert_eq!(t.unread_resolved, 16);
        assert_eq!(t.unresolved.len(), 1, "room 1 waits for the end");
        // The next connection closes mid-resume: its window is in doubt.
        t.on_frame(true);
        t.on_end();
        assert_eq!(t.in_doubt, 1);
        assert_eq!(t.unread_bound(|_| 12), 16);
        assert_eq!(t.unread_bound(|_| 40), 16 + 26);
        let mut sum = FrameTally::default();
        sum.merge(t.clone());
        sum.merge(t);
        assert_eq!(sum.frames, 10);
        assert_eq!(sum.unread_bound(|_| 40), 2 * 42);
    }

    /// Answers each connection with the next canned body, then stops.
    async fn canned(bodies: Vec<String>) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/metrics", listener.local_addr().unwrap());
        tokio::spawn(async move {
            for body in bodies {
                let (mut conn, _) = listener.accept().await.unwrap();
                let mut buf = [0u8; 1024];
                let _ = conn.read(&mut buf).await.unwrap();
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                conn.write_all(head.as_bytes()).await.unwrap();
                conn.write_all(body.as_bytes()).await.unwrap();
                conn.shutdown().await.unwrap();
            }
        });
        url
    }

    #[tokio::test]
    async fn a_baseline_and_a_second_scrape_give_a_verdict() {
        let before = "ws_deliveries_total{type=\"presence\"} 7\n".to_owned();
        let after = "# TYPE messages_stored_total counter\nmessages_stored_total 100\n\
                     ws_deliveries_total{type=\"message.created\"} 10000\n\
                     ws_deliveries_total{type=\"presence\"} 9\n"
            .to_owned();
        let url = canned(vec![before, after]).await;
        let baseline = Baseline::take(Some(&url)).await.unwrap();
        let check = baseline.check(harness()).await;
        assert!(check.available, "{:?}", check.reason);
        assert!(check.agrees, "{:?}", check.reason);
        let server = check.server.unwrap();
        assert_eq!(server.message_created_deliveries, 10_000);
        assert_eq!(server.messages_stored, 100);
        assert!(Baseline::take(None).await.is_none(), "switched off");
    }

    #[tokio::test]
    async fn an_unreachable_server_is_reported_and_not_fatal() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = format!("http://127.0.0.1:{port}/metrics");
        let check = Baseline::take(Some(&url))
            .await
            .unwrap()
            .check(harness())
            .await;
        assert!(!check.available);
        assert!(!check.agrees);
        assert!(
            check
                .reason
                .unwrap()
                .starts_with("server metrics unavailable")
        );
    }

    #[test]
    fn metrics_urls_follow_the_remote_rule() {
        assert!(check_url("http://127.0.0.1:8080/metrics", false).is_ok());
        assert!(check_url("ftp://127.0.0.1/metrics", false).is_err());
        assert!(check_url("http://192.0.2.1:9900/metrics", false).is_err());
        assert!(check_url("http://192.0.2.1:9900/metrics", true).is_ok());
    }

    #[test]
    fn refusals_are_not_in_doubt() {
        assert!(!send_error_in_doubt("rate_limited"));
        assert!(!send_error_in_doubt("validation_failed"));
        assert!(send_error_in_doubt("unavailable"));
        assert!(send_error_in_doubt("something_new"));
    }
}
