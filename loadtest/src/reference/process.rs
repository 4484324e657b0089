//! The reference server in its own process: `parley-loadtest
//! reference-server` ([`server_main`]) and the harness's handle on it
//! ([`ReferenceChild`]).

use std::io::Write;
use std::process::{ExitCode, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::net::TcpListener;
use tokio::process::{Child, ChildStdin, ChildStdout};

use super::hub::{Hub, accept_loop};
use super::{ReferenceReady, ReferenceServerArgs};

/// Runs `reference-server` on a runtime of `--threads` workers until it is
/// told to stop.
pub fn server_main(a: &ReferenceServerArgs, allow_remote: bool) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(a.threads.max(1))
        .thread_name("reference")
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: reference server runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = runtime.block_on(serve_until_stopped(a, allow_remote));
    // Connection tasks still open are dropped with the runtime.
    runtime.shutdown_timeout(Duration::from_secs(1));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: reference server: {e:#}");
            ExitCode::from(1)
        }
    }
}

pub(super) async fn serve_until_stopped(
    a: &ReferenceServerArgs,
    allow_remote: bool,
) -> anyhow::Result<()> {
    if !a.listen.ip().is_loopback() && !allow_remote {
        bail!(
            "{} is not a loopback address (the reference server has no auth); pass --allow-remote",
            a.listen
        );
    }
    let listener = TcpListener::bind(a.listen)
        .await
        .with_context(|| format!("binding {}", a.listen))?;
    let addr = listener.local_addr()?;
    let hub = Hub::new();
    let ready = ReferenceReady {
        addr,
        room: hub.room,
        pid: std::process::id(),
        threads: a.threads.max(1),
        nofile: rlimit::getrlimit(rlimit::Resource::NOFILE)
            .ok()
            .map(|(soft, _)| soft),
        max_secs: a.max_secs,
    };
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    // The banner first: whoever reads the line may print next.
    eprintln!(
        "reference server {} on {addr}, room {}, {} threads; stops {}after {} s, on SIGTERM or ctrl-c",
        ready.pid,
        ready.room,
        ready.threads,
        if a.ignore_stdin {
            ""
        } else {
            "when stdin closes, "
        },
        a.max_secs
    );
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{}", ready.to_line())?;
        out.flush()?;
    }
    let stdin_closed = stdin_closed(a.ignore_stdin);
    let why = tokio::select! {
        () = accept_loop(listener, hub) => "the accept loop ended",
        () = stdin_closed => "stdin closed",
        _ = term.recv() => "SIGTERM",
        _ = tokio::signal::ctrl_c() => "interrupted",
        () = tokio::time::sleep(Duration::from_secs(a.max_secs)) => "its maximum lifetime was reached",
    };
    eprintln!("reference server {} stops: {why}", ready.pid);
    Ok(())
}

/// Resolves when stdin reaches its end (or fails); never when `ignore`.
pub(super) async fn stdin_closed(ignore: bool) {
    if ignore {
        return std::future::pending().await;
    }
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    // A plain thread: a blocking read in the runtime's blocking pool would
    // hold up the runtime's shutdown. It ends with stdin or the process.
    let spawned = std::thread::Builder::new()
        .name("reference-stdin".into())
        .spawn(move || {
            let mut sink = std::io::sink();
            let _copied = std::io::copy(&mut std::io::stdin().lock(), &mut sink);
            let _closed = tx.send(());
        });
    if let Err(e) = spawned {
        eprintln!("reference server: not watching stdin: {e}");
        return std::future::pending().await;
    }
    let _eof = rx.await;
}

/// The reference server in its own process: `parley-loadtest
/// reference-server` started from the harness's own executable. Dropping
/// it kills the process.
#[derive(Debug)]
pub struct ReferenceChild {
    pub ready: ReferenceReady,
    child: Child,
    stdin: Option<ChildStdin>,
    /// Kept open so that the child never writes into a closed pipe.
    _stdout: Lines<BufReader<ChildStdout>>,
}

impl ReferenceChild {
    /// Starts the process and waits (at most 15 s) for its address line.
    pub async fn spawn(threads: usize, max_secs: u64) -> anyhow::Result<Self> {
        let exe = std::env::current_exe().context("finding the harness's own executable")?;
        let mut child = tokio::process::Command::new(&exe)
            .arg("reference-server")
            .args(["--listen", "127.0.0.1:0"])
            .args(["--threads", &threads.to_string()])
            .args(["--max-secs", &max_secs.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {} reference-server", exe.display()))?;
        let stdin = child.stdin.take();
        let stdout = child
            .stdout
            .take()
            .context("the reference server's stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let ready = tokio::time::timeout(Duration::from_secs(15), async {
            for _ in 0..64 {
                match lines.next_line().await? {
                    Some(line) => match ReferenceReady::parse_line(&line) {
                        Some(ready) => return Ok(ready),
                        None => eprintln!("reference server: {line}"),
                    },
                    None => bail!("the reference server exited before printing its address"),
                }
            }
            bail!("the reference server printed 64 lines but no address")
        })
        .await
        .context("the reference server did not print its address within 15 s")??;
        // `child` is killed on the way out of an error above.
        Ok(Self {
            ready,
            child,
            stdin,
            _stdout: lines,
        })
    }

    /// Whether the process has already ended, and how.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Stops the process: closes its stdin, waits up to 3 s for it to end,
    /// then kills it; reaps it either way. Returns a note when it had
    /// ended before, or did not end cleanly.
    pub async fn stop(mut self) -> Option<String> {
        if let Some(status) = self.exited() {
            return Some(format!(
                "the reference server process ended during the run ({status})"
            ));
        }
        drop(self.stdin.take());
        match tokio::time::timeout(Duration::from_secs(3), self.child.wait()).await {
            Ok(Ok(status)) if status.success() => None,
            Ok(Ok(status)) => Some(format!("the reference server process ended with {status}")),
            Ok(Err(e)) => Some(format!("waiting for the reference server process: {e}")),
            Err(_) => match self.child.kill().await {
                Ok(()) => Some("the reference server process had to be killed".into()),
                Err(e) => Some(format!("killing the reference server process: {e}")),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_non_loopback_listen_address_is_refused() {
        let a = ReferenceServerArgs {
            listen: "0.0.0.0:0".parse().unwrap(),
            threads: 1,
            max_secs: 1,
            ignore_stdin: true,
        };
        let err = serve_until_stopped(&a, false).await.unwrap_err();
        assert!(err.to_string().contains("not a loopback address"), "{err}");
    }
}
