//! The runtime socket writer tasks run on.

use std::sync::Arc;

/// The runtime socket writer tasks run on, apart from the one that reads
/// sockets and runs the actors, the database and HTTP.
///
/// A message to a 10,000-member room wakes 10,000 writer tasks. On one
/// runtime they fill its run queues, and every step of the next message's
/// way in (the publisher's read, its connection and room actors, the group
/// commit) waits behind them: in `fanout` with 10,000 sockets that queueing
/// was most of the latency (p99 265–430 ms on one runtime, 146–187 ms with
/// the writers apart; `loadtest/RESULTS.md`, the runs of 2026-11-30 20:33 UTC). The operating
/// system shares the cores between the two runtimes' threads.
#[derive(Debug, Clone)]
pub struct SocketWriters(Arc<WriterRuntime>);

#[derive(Debug)]
struct WriterRuntime {
    runtime: Option<tokio::runtime::Runtime>,
    handle: tokio::runtime::Handle,
}

impl Drop for WriterRuntime {
    fn drop(&mut self) {
        // Dropping a runtime blocks, which is not allowed inside another
        // runtime (where the last handle usually goes).
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl SocketWriters {
    /// Starts the runtime with `threads` workers; 0 means half the cores
    /// (at least one).
    pub fn start(threads: usize) -> std::io::Result<Self> {
        let threads = if threads == 0 {
            std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1))
        } else {
            threads
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name("parley-ws-writer")
            .enable_all()
            .build()?;
        tracing::debug!(threads, "socket writer runtime started");
        Ok(Self(Arc::new(WriterRuntime {
            handle: runtime.handle().clone(),
            runtime: Some(runtime),
        })))
    }

    /// Runs a socket's writer task.
    pub(super) fn spawn<F>(&self, task: F) -> tokio::task::JoinHandle<F::Output>
    where
        F: std::future::Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.0.handle.spawn(task)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn writer_tasks_run_apart_and_the_runtime_can_be_dropped_inside_another() {
        let writers = SocketWriters::start(0).expect("start");
        let name = writers
            .spawn(async { std::thread::current().name().map(str::to_owned) })
            .await
            .expect("ran");
        assert_eq!(name.as_deref(), Some("parley-ws-writer"));
        // The last handle goes inside this test's runtime: no panic.
        drop(writers);
        let two = SocketWriters::start(2).expect("start");
        assert_eq!(two.spawn(async { 1 + 1 }).await.expect("ran"), 2);
    }
}
