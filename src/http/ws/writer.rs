//! A socket's one writer task: drains its `OutboxReader` into the
//! WebSocket sink.

use std::fmt::Display;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes};
use bytes::Bytes;
use futures_util::{Sink, SinkExt};
use parley_actors::sockets::{CloseReason, Next, OutboxReader};
use parley_actors::telemetry as rt_metrics;
use tokio_util::sync::CancellationToken;

/// Frames fed to the socket before one flush.
const WRITE_BATCH: usize = 64;

/// Writes what the outbox hands out until it says close (then sends the
/// close frame) or the sink fails; cancels `done` either way, so the
/// reader stops too.
///
/// The outbox decides the order: durable frames before ephemeral ones, a
/// pending ping after the frames, the close last (after the queued durable
/// frames of an orderly close).
pub(super) async fn write_loop<K>(mut sink: K, outbox: OutboxReader, done: CancellationToken)
where
    K: Sink<Message> + Unpin,
    K::Error: Display,
{
    let result: Result<(), K::Error> = async {
        loop {
            match outbox.next().await {
                // Whatever else is queued goes out in the same write, up to
                // a batch.
                Next::Frame(bytes) => {
                    sink.feed(text(bytes)).await?;
                    let mut fed = 1;
                    while fed < WRITE_BATCH
                        && let Some(bytes) = outbox.try_frame()
                    {
                        sink.feed(text(bytes)).await?;
                        fed += 1;
                    }
                    sink.flush().await?;
                }
                Next::Ping => sink.send(Message::Ping(Bytes::new())).await?,
                // Boxed: it runs once, and inline it would grow every idle
                // socket's task.
                Next::Close(reason) => return Box::pin(close_socket(&mut sink, reason)).await,
            }
        }
    }
    .await;
    if let Err(e) = result {
        tracing::debug!(error = %e, "socket write failed");
    }
    done.cancel();
}

/// Sends the close frame (an orderly close has had its queued events
/// written first: see `OutboxReader::next`).
async fn close_socket<K>(sink: &mut K, reason: CloseReason) -> Result<(), K::Error>
where
    K: Sink<Message> + Unpin,
{
    metrics::counter!(rt_metrics::WS_CLOSES, "code" => reason.code.to_string()).increment(1);
    sink.send(Message::Close(Some(CloseFrame {
        code: reason.code,
        reason: Utf8Bytes::from(reason.reason),
    })))
    .await
}

fn text(bytes: Bytes) -> Message {
    // Frames are serialised from Rust strings, so this never fails.
    Message::Text(Utf8Bytes::try_from(bytes).unwrap_or_else(|_| Utf8Bytes::from_static("{}")))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use parley_actors::domain::{SessionId, UserId};
    use parley_actors::protocol::close;
    use parley_actors::sockets::Outbox;
    use tokio::sync::mpsc;
    use tokio_util::sync::PollSender;

    use super::*;
    use crate::http::ws::code;

    /// A writer on a channel sink; returns what it writes and its `done`.
    fn spawn_writer(
        reader: OutboxReader,
    ) -> (
        mpsc::Receiver<Message>,
        CancellationToken,
        tokio::task::JoinHandle<()>,
    ) {
        let (tx, rx) = mpsc::channel(256);
        let done = CancellationToken::new();
        let task = tokio::spawn(write_loop(PollSender::new(tx), reader, done.clone()));
        (rx, done, task)
    }

    async fn recv(rx: &mut mpsc::Receiver<Message>) -> Message {
        tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .expect("the writer wrote in time")
            .expect("the writer is running")
    }

    fn text_of(message: &Message) -> &str {
        match message {
            Message::Text(text) => text.as_str(),
            other => panic!("expected a text frame, got {other:?}"),
        }
    }

    fn outbox() -> (std::sync::Arc<Outbox>, OutboxReader) {
        Outbox::new(UserId::new(), SessionId::new(), 16, 16)
    }

    #[tokio::test]
    async fn the_durable_queue_is_drained_before_the_ephemeral_one() {
        let (outbox, reader) = outbox();
        outbox.push(Bytes::from_static(b"e1"), true);
        outbox.push(Bytes::from_static(b"d1"), false);
        outbox.push(Bytes::from_static(b"e2"), true);
        outbox.push(Bytes::from_static(b"d2"), false);
        let (mut rx, _done, task) = spawn_writer(reader);
        let mut written = Vec::new();
        for _ in 0..4 {
            written.push(text_of(&recv(&mut rx).await).to_owned());
        }
        assert_eq!(written, ["d1", "d2", "e1", "e2"]);
        outbox.close(close::SLOW_CONSUMER, "too slow");
        assert!(matches!(recv(&mut rx).await, Message::Close(_)));
        task.await.expect("writer ended");
    }

    #[tokio::test]
    async fn the_close_frame_carries_its_code_and_ends_the_writer() {
        let (outbox, reader) = outbox();
        let (mut rx, done, task) = spawn_writer(reader);
        outbox.ping();
        assert!(matches!(recv(&mut rx).await, Message::Ping(_)));
        outbox.close(close::REVOKED, "session revoked");
        match recv(&mut rx).await {
            Message::Close(Some(frame)) => {
                assert_eq!(frame.code, close::REVOKED);
                assert_eq!(frame.reason.as_str(), "session revoked");
            }
            other => panic!("expected a close frame, got {other:?}"),
        }
        task.await.expect("writer ended");
        assert!(done.is_cancelled(), "the reader is told to stop");
        assert!(rx.recv().await.is_none(), "nothing after the close frame");
    }

    #[tokio::test]
    async fn an_orderly_close_writes_the_queued_durable_frames_first() {
        let (outbox, reader) = outbox();
        outbox.push(Bytes::from_static(b"d1"), false);
        outbox.push(Bytes::from_static(b"e1"), true);
        outbox.close(code::NORMAL, "bye");
        let (mut rx, _done, task) = spawn_writer(reader);
        assert_eq!(text_of(&recv(&mut rx).await), "d1");
        match recv(&mut rx).await {
            Message::Close(Some(frame)) => assert_eq!(frame.code, code::NORMAL),
            other => panic!("expected a close frame, got {other:?}"),
        }
        task.await.expect("writer ended");
    }

    #[tokio::test]
    async fn a_failed_write_ends_the_writer_and_stops_the_reader() {
        let (outbox, reader) = outbox();
        let (rx, done, task) = spawn_writer(reader);
        drop(rx);
        outbox.push(Bytes::from_static(b"d1"), false);
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("the writer ended in time")
            .expect("writer ended");
        assert!(done.is_cancelled());
    }
}
