//! `--slo`: service-level objectives a run must meet, else the exit status
//! is non-zero.
//!
//! Syntax: clauses separated by commas, each `FIGURE OP VALUE[UNIT]`, e.g.
//! `p99<=100ms,losses=0,errors=0,dps>=90000`.
//!
//! - `OP` is one of `<=`, `<`, `>=`, `>`, `=` (or `==`).
//! - Time figures (`p50`, `p90`, `p99`, `p99.9`/`p999`, `max`, `ready_p99`,
//!   `ready_max`, `all_ready`, `ack_p99`) are compared in milliseconds; a
//!   value may carry `us`, `ms` or `s` (no unit means milliseconds).
//! - Other figures are plain numbers (`losses`, `errors`, `dps`,
//!   `connect_failures`, `rss_per_conn_kib`, `rss_growth_pct`, `rps`, …);
//!   a trailing `%` or `KiB` is accepted and ignored.
//! - `server_agrees` is 1 when the server's metrics agreed with the
//!   harness's accounting and 0 when not (`servercheck`); it is missing
//!   when they could not be read. `agree` alone (or `agrees`,
//!   `server_agrees`) means `server_agrees=1`.
//!
//! The figures a scenario reports are listed in its JSON output under
//! `figures`; a clause naming a figure the run did not produce fails (a
//! typo must not pass silently).

use std::collections::BTreeMap;
use std::fmt;

/// A comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Le,
    Lt,
    Ge,
    Gt,
    Eq,
}

impl Op {
    fn holds(self, actual: f64, bound: f64) -> bool {
        match self {
            Self::Le => actual <= bound,
            Self::Lt => actual < bound,
            Self::Ge => actual >= bound,
            Self::Gt => actual > bound,
            Self::Eq => (actual - bound).abs() < f64::EPSILON,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::Le => "<=",
            Self::Lt => "<",
            Self::Ge => ">=",
            Self::Gt => ">",
            Self::Eq => "=",
        }
    }
}

/// One clause, e.g. `p99<=100ms`.
#[derive(Debug, Clone, PartialEq)]
pub struct Clause {
    /// The figure's canonical name (`p999` for `p99.9`).
    pub figure: String,
    pub op: Op,
    /// In the figure's unit (milliseconds for times).
    pub bound: f64,
}

impl fmt::Display for Clause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}{}", self.figure, self.op.as_str(), self.bound)
    }
}

/// A parsed `--slo`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Slo {
    pub clauses: Vec<Clause>,
}

/// The verdict on one clause.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Verdict {
    pub clause: String,
    pub actual: Option<f64>,
    pub met: bool,
}

const TIME_FIGURES: &[&str] = &[
    "p50",
    "p90",
    "p99",
    "p999",
    "max",
    "ready_p50",
    "ready_p99",
    "ready_max",
    "all_ready",
    "ack_p99",
    "connect_p99",
];

fn canonical(name: &str) -> String {
    match name.trim().to_ascii_lowercase().as_str() {
        "p99.9" => "p999".to_owned(),
        "loss" => "losses".to_owned(),
        "deliveries_per_sec" | "deliveries/s" => "dps".to_owned(),
        "agree" | "agrees" | "server_agree" | "server_check" => "server_agrees".to_owned(),
        other => other.to_owned(),
    }
}

impl std::str::FromStr for Slo {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut clauses = Vec::new();
        for raw in s.split(',').map(str::trim).filter(|c| !c.is_empty()) {
            clauses.push(parse_clause(raw)?);
        }
        if clauses.is_empty() {
            return Err("an SLO needs at least one clause, e.g. p99<=100ms".to_owned());
        }
        Ok(Self { clauses })
    }
}

fn parse_clause(raw: &str) -> Result<Clause, String> {
    let ops: [(&str, Op); 6] = [
        ("<=", Op::Le),
        (">=", Op::Ge),
        ("==", Op::Eq),
        ("<", Op::Lt),
        (">", Op::Gt),
        ("=", Op::Eq),
    ];
    let found = ops
        .iter()
        .filter_map(|(token, op)| raw.find(token).map(|at| (at, *token, *op)))
        .min_by_key(|(at, token, _)| (*at, std::cmp::Reverse(token.len())));
    let Some((at, token, op)) = found else {
        // A yes/no figure alone means "yes".
        if canonical(raw) == "server_agrees" {
            return Ok(Clause {
                figure: "server_agrees".to_owned(),
                op: Op::Eq,
                bound: 1.0,
            });
        }
        return Err(format!(
            "`{raw}`: expected FIGURE OP VALUE, e.g. p99<=100ms"
        ));
    };
    let figure = canonical(&raw[..at]);
    if figure.is_empty() {
        return Err(format!("`{raw}`: no figure before `{token}`"));
    }
    let value = raw[at + token.len()..].trim();
    let is_time = TIME_FIGURES.contains(&figure.as_str());
    let (number, scale) = if is_time {
        if let Some(n) = value.strip_suffix("us") {
            (n, 0.001)
        } else if let Some(n) = value.strip_suffix("ms") {
            (n, 1.0)
        } else if let Some(n) = value.strip_suffix('s') {
            (n, 1000.0)
        } else {
            (value, 1.0)
        }
    } else {
        let n = value
            .strip_suffix('%')
            .or_else(|| value.strip_suffix("KiB"))
            .unwrap_or(value);
        (n, 1.0)
    };
    let bound: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("`{raw}`: `{value}` is not a number (with an optional unit)"))?;
    Ok(Clause {
        figure,
        op,
        bound: bound * scale,
    })
}

impl Slo {
    /// Checks every clause against a run's figures.
    pub fn check(&self, figures: &BTreeMap<String, f64>) -> Vec<Verdict> {
        self.clauses
            .iter()
            .map(|clause| {
                let actual = figures.get(&clause.figure).copied();
                Verdict {
                    clause: clause.to_string(),
                    actual,
                    met: actual.is_some_and(|a| clause.op.holds(a, clause.bound)),
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn figures(pairs: &[(&str, f64)]) -> BTreeMap<String, f64> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
    }

    #[test]
    fn clauses_parse_with_units_and_aliases() {
        let slo: Slo = "p99<=100ms, losses=0,p99.9<1s,dps>=90000,ack_p99<500us"
            .parse()
            .unwrap();
        assert_eq!(slo.clauses.len(), 5);
        assert_eq!(
            slo.clauses[0],
            Clause {
                figure: "p99".into(),
                op: Op::Le,
                bound: 100.0
            }
        );
        assert_eq!(slo.clauses[1].op, Op::Eq);
        assert_eq!(slo.clauses[2].figure, "p999");
        assert_eq!(slo.clauses[2].bound, 1000.0);
        assert_eq!(slo.clauses[3].op, Op::Ge);
        assert!((slo.clauses[4].bound - 0.5).abs() < 1e-9);
    }

    #[test]
    fn bad_clauses_are_refused_with_a_reason() {
        assert!("".parse::<Slo>().is_err());
        assert!("p99".parse::<Slo>().is_err());
        assert!("p99<=fast".parse::<Slo>().is_err());
        assert!("<=3".parse::<Slo>().is_err());
    }

    #[test]
    fn agreement_with_the_server_is_a_clause() {
        let slo: Slo = "losses=0, agree".parse().unwrap();
        let agree = Clause {
            figure: "server_agrees".into(),
            op: Op::Eq,
            bound: 1.0,
        };
        assert_eq!(slo.clauses[1], agree);
        assert_eq!("server_agrees=1".parse::<Slo>().unwrap().clauses[0], agree);
        assert_eq!(
            "agrees>=1".parse::<Slo>().unwrap().clauses[0].figure,
            "server_agrees"
        );
        let verdicts = slo.check(&figures(&[("losses", 0.0), ("server_agrees", 0.0)]));
        assert!(verdicts[0].met);
        assert!(!verdicts[1].met, "a disagreement fails");
        let unread = slo.check(&figures(&[("losses", 0.0)]));
        assert!(!unread[1].met, "metrics that could not be read fail too");
    }

    #[test]
    fn verdicts_follow_the_figures() {
        let slo: Slo = "p99<=50,losses=0,rss_growth_pct<10%".parse().unwrap();
        let ok = slo.check(&figures(&[
            ("p99", 49.0),
            ("losses", 0.0),
            ("rss_growth_pct", 3.0),
        ]));
        assert!(ok.iter().all(|v| v.met));
        let bad = slo.check(&figures(&[("p99", 51.0), ("losses", 1.0)]));
        assert!(bad.iter().all(|v| !v.met), "a missing figure fails too");
        assert_eq!(bad[2].actual, None);
    }
}
