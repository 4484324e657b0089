//! [`Reference`]: the reference server on a runtime of its own inside the
//! harness process (`calibrate --reference-in-process`).

use std::net::SocketAddr;
use std::time::Duration;

use parley_actors::domain::RoomId;
use tokio::net::TcpListener;

use super::hub::{Hub, accept_loop};

/// The reference server on its own runtime and threads inside the harness
/// process (`calibrate --reference-in-process`). Dropping it stops the
/// server without waiting for its thread.
#[derive(Debug)]
pub struct Reference {
    pub addr: SocketAddr,
    pub room: RoomId,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Reference {
    /// Binds 127.0.0.1:0 and serves on its own runtime.
    pub fn start(threads: usize) -> anyhow::Result<Self> {
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        std_listener.set_nonblocking(true)?;
        let addr = std_listener.local_addr()?;
        let hub = Hub::new();
        let room = hub.room;
        let (tx, rx) = tokio::sync::oneshot::channel();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads.max(1))
            .thread_name("reference")
            .enable_all()
            .build()?;
        let thread = std::thread::Builder::new()
            .name("reference-server".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let listener = match TcpListener::from_std(std_listener) {
                        Ok(l) => l,
                        Err(e) => {
                            eprintln!("reference server: {e}");
                            return;
                        }
                    };
                    tokio::select! {
                        _ = rx => {}
                        () = accept_loop(listener, hub) => {}
                    }
                });
                runtime.shutdown_timeout(Duration::from_secs(1));
            })?;
        Ok(Self {
            addr,
            room,
            shutdown: Some(tx),
            thread: Some(thread),
        })
    }

    /// Stops the server and joins its thread.
    pub fn stop(mut self) {
        if let Some(tx) = self.shutdown.take()
            && tx.send(()).is_err()
        {
            eprintln!("reference server already stopped");
        }
        if let Some(t) = self.thread.take()
            && t.join().is_err()
        {
            eprintln!("reference server thread panicked");
        }
    }
}

impl Drop for Reference {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _stopped = tx.send(());
        }
    }
}

#[cfg(test)]
mod tests {
    use futures_util::StreamExt;

    use super::*;

    #[tokio::test]
    async fn the_in_process_server_answers_ready() {
        let r = Reference::start(1).unwrap();
        let url = format!("ws://{}/ws", r.addr);
        let (mut ws, _) = tokio_tungstenite::connect_async(url.as_str())
            .await
            .unwrap();
        let first = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        let text = first.into_text().unwrap();
        assert!(text.contains(r#""type":"ready""#), "{text}");
        assert!(text.contains(&r.room.to_string()), "{text}");
        drop(ws);
        r.stop();
    }
}
