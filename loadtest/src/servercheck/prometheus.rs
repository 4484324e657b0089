//! Prometheus text, read line by line into samples, and the metric names
//! the cross-check sums.

use std::collections::BTreeMap;

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
    pub(super) samples: Vec<Sample>,
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
