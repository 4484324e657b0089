//! Server RSS and CPU from `/proc/<pid>` (when the server is local), and
//! finding the process that listens on the target's port.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

/// Clock ticks per second for `/proc/<pid>/stat` (USER_HZ: 100 on every
/// Linux architecture this runs on; reading it would need `sysconf`).
const TICKS_PER_SEC: f64 = 100.0;

/// One reading of a process.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct ProcSample {
    /// Seconds since sampling started.
    pub t_s: f64,
    pub rss_bytes: u64,
    /// CPU use since the previous sample, percent of one core.
    pub cpu_pct: f64,
}

/// Resident set size of a process, bytes.
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// User + system CPU time of a process, seconds.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields start after
    // the last `)`.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After `)`: state is field 3 of the man page, so utime (14) and
    // stime (15) are at indices 11 and 12 here.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / TICKS_PER_SEC)
}

/// Number of threads of a process.
pub fn threads(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("Threads:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The pid of the local process listening on `port` (TCP, v4 or v6), found
/// through `/proc/net/tcp*` and the socket links in `/proc/*/fd`.
pub fn pid_listening_on(port: u16) -> Option<u32> {
    let mut inodes = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        inodes.extend(listening_inodes(&text, port));
    }
    if inodes.is_empty() {
        return None;
    }
    let wanted: Vec<String> = inodes.iter().map(|i| format!("socket:[{i}]")).collect();
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            if let Ok(link) = std::fs::read_link(fd.path())
                && wanted.iter().any(|w| link.as_os_str() == w.as_str())
            {
                return Some(pid);
            }
        }
    }
    None
}

/// Inodes of sockets in state LISTEN (`0A`) on `port` in a `/proc/net/tcp`
/// table.
fn listening_inodes(table: &str, port: u16) -> Vec<u64> {
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let local = f.get(1)?;
            let state = f.get(3)?;
            let inode: u64 = f.get(9)?.parse().ok()?;
            let local_port = u16::from_str_radix(local.rsplit(':').next()?, 16).ok()?;
            (*state == "0A" && local_port == port).then_some(inode)
        })
        .collect()
}

/// Samples a process every `every` in the background until dropped.
#[derive(Debug)]
pub struct Sampler {
    pub pid: u32,
    samples: Arc<Mutex<Vec<ProcSample>>>,
    task: tokio::task::JoinHandle<()>,
    started_cpu: Option<f64>,
    started: Instant,
}

/// What the sampler saw.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ServerUsage {
    pub pid: u32,
    pub rss_start_bytes: u64,
    pub rss_end_bytes: u64,
    pub rss_max_bytes: u64,
    /// Average CPU over the sampled span, percent of one core.
    pub cpu_avg_pct: f64,
    /// Highest one-interval CPU, percent of one core.
    pub cpu_max_pct: f64,
    pub threads: u64,
    /// Growth of RSS from the first third of the samples to the last third,
    /// percent (for `soak`).
    pub rss_growth_pct: f64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub samples: Vec<ProcSample>,
}

impl Sampler {
    /// Starts sampling.
    pub fn start(pid: u32, every: Duration) -> Self {
        let samples = Arc::new(Mutex::new(Vec::new()));
        let started = Instant::now();
        let started_cpu = cpu_seconds(pid);
        let into = Arc::clone(&samples);
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            let mut last_cpu = cpu_seconds(pid);
            let mut last_t = Instant::now();
            loop {
                tick.tick().await;
                let (Some(rss), Some(cpu)) = (rss_bytes(pid), cpu_seconds(pid)) else {
                    break;
                };
                let now = Instant::now();
                let dt = now.duration_since(last_t).as_secs_f64().max(1e-3);
                let cpu_pct = last_cpu.map_or(0.0, |c| (cpu - c) / dt * 100.0);
                last_cpu = Some(cpu);
                last_t = now;
                into.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(ProcSample {
                        t_s: now.duration_since(started).as_secs_f64(),
                        rss_bytes: rss,
                        cpu_pct,
                    });
            }
        });
        Self {
            pid,
            samples,
            task,
            started_cpu,
            started,
        }
    }

    /// Stops and summarises; `keep_series` keeps every sample in the output.
    pub fn finish(self, keep_series: bool) -> ServerUsage {
        self.task.abort();
        let samples = self
            .samples
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let elapsed = self.started.elapsed().as_secs_f64().max(1e-3);
        let cpu_avg_pct = match (self.started_cpu, cpu_seconds(self.pid)) {
            (Some(a), Some(b)) => (b - a) / elapsed * 100.0,
            _ => 0.0,
        };
        let rss_now = rss_bytes(self.pid).unwrap_or(0);
        let third = samples.len() / 3;
        let avg = |s: &[ProcSample]| {
            if s.is_empty() {
                0.0
            } else {
                s.iter().map(|x| x.rss_bytes as f64).sum::<f64>() / s.len() as f64
            }
        };
        let rss_growth_pct = if third > 0 {
            let first = avg(&samples[..third]);
            let last = avg(&samples[samples.len() - third..]);
            if first > 0.0 {
                (last - first) / first * 100.0
            } else {
                0.0
            }
        } else {
            0.0
        };
        ServerUsage {
            pid: self.pid,
            rss_start_bytes: samples.first().map_or(rss_now, |s| s.rss_bytes),
            rss_end_bytes: rss_now,
            rss_max_bytes: samples
                .iter()
                .map(|s| s.rss_bytes)
                .max()
                .unwrap_or(rss_now)
                .max(rss_now),
            cpu_avg_pct,
            cpu_max_pct: samples.iter().map(|s| s.cpu_pct).fold(0.0, f64::max),
            threads: threads(self.pid).unwrap_or(0),
            rss_growth_pct,
            samples: if keep_series { samples } else { Vec::new() },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listening_sockets_are_found_by_port() {
        let table = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 4242 1 0000000000000000 100 0 0 10 0
   1: 0100007F:1F90 0100007F:D431 01 00000000:00000000 00:00000000 00000000  1000        0 4343 1 0000000000000000 20 4 30 10 -1
";
        assert_eq!(listening_inodes(table, 8080), vec![4242]);
        assert!(listening_inodes(table, 8081).is_empty());
    }

    #[test]
    fn this_process_has_an_rss_and_cpu_time() {
        let me = std::process::id();
        assert!(rss_bytes(me).unwrap() > 0);
        assert!(cpu_seconds(me).is_some());
    }
}
