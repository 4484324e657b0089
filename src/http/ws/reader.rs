//! A socket's reader: parses, validates and rate-limits the client's
//! frames and hands them on; answers what it cannot pass on with an
//! `error` frame and keeps the connection.

use std::fmt::Display;
use std::num::NonZeroU32;
use std::time::Duration;

use axum::extract::ws::Message;
use futures_util::{Stream, StreamExt};
use governor::{DefaultDirectRateLimiter, Quota};
use parley_actors::domain::nul_field;
use parley_actors::protocol::{CLIENT_TYPES, ClientFrame, ServerFrame, close};
use parley_actors::sockets::{CloseReason, Outbox};
use parley_actors::telemetry as rt_metrics;
use tokio_util::sync::CancellationToken;

use super::code;
use crate::config::Settings;

/// The limits a reader enforces.
#[derive(Debug, Clone)]
pub(super) struct ReadLimits {
    /// Largest text frame handled; larger ones get an error frame.
    pub max_frame_bytes: usize,
    /// Rate-limited events per second, and the burst above it.
    pub events_per_second: u32,
    pub events_burst: u32,
    /// Refusals in a row tolerated before the socket is closed (1008).
    pub max_strikes: u32,
    /// How long the client may stay silent (4000 after it).
    pub silence: Duration,
}

impl ReadLimits {
    /// The configured limits; silence is two heartbeat intervals.
    pub fn new(settings: &Settings, heartbeat: Duration) -> Self {
        Self {
            max_frame_bytes: settings.ws_max_frame_bytes,
            events_per_second: settings.ws_events_per_second,
            events_burst: settings.ws_events_burst,
            max_strikes: settings.ws_rate_strikes,
            silence: heartbeat * 2,
        }
    }
}

/// The frame could not be handed on: the socket's connection actor is
/// gone.
#[derive(Debug)]
pub(super) struct Undelivered;

/// Per-socket event limiter with strike counting.
struct EventLimit {
    limiter: DefaultDirectRateLimiter,
    strikes: u32,
    max_strikes: u32,
}

impl EventLimit {
    fn new(limits: &ReadLimits) -> Self {
        let per_second = NonZeroU32::new(limits.events_per_second).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(limits.events_burst).unwrap_or(NonZeroU32::MIN);
        Self {
            limiter: DefaultDirectRateLimiter::direct(
                Quota::per_second(per_second).allow_burst(burst),
            ),
            strikes: 0,
            max_strikes: limits.max_strikes,
        }
    }
}

pub(super) fn push_frame(outbox: &Outbox, frame: &ServerFrame) {
    metrics::counter!(rt_metrics::WS_EVENTS, "direction" => "out", "type" => frame.kind())
        .increment(1);
    outbox.push(frame.to_bytes(), frame.is_ephemeral());
}

/// The close the reader decided on.
fn closing(code: u16, reason: &str) -> CloseReason {
    CloseReason {
        code,
        reason: reason.to_owned(),
    }
}

/// Reads until the stream ends, the client closes, `done` is cancelled (the
/// writer ended) or the socket is to be closed; returns the close it
/// decided on (idle 4000, invalid UTF-8 1007, frame too big 1009, rate
/// limit abuse 1008, server error 1011), if any. The caller asks for it on
/// the outbox once the frames already handed on are answered. Each valid
/// client frame goes to `deliver`.
pub(super) async fn read_loop<S, E, D>(
    stream: &mut S,
    outbox: &Outbox,
    limits: &ReadLimits,
    done: &CancellationToken,
    mut deliver: D,
) -> Option<CloseReason>
where
    S: Stream<Item = Result<Message, E>> + Unpin,
    E: Display,
    D: FnMut(ClientFrame) -> Result<(), Undelivered>,
{
    let mut limit = EventLimit::new(limits);
    loop {
        let next = tokio::select! {
            () = done.cancelled() => return None,
            next = tokio::time::timeout(limits.silence, stream.next()) => next,
        };
        let message = match next {
            Err(_) => return Some(closing(close::IDLE, "heartbeat timeout")),
            Ok(None) => return None,
            Ok(Some(Err(e))) => {
                let e = e.to_string();
                tracing::debug!(error = %e, "socket read failed");
                if e.contains("too long") || e.contains("Space limit") {
                    return Some(closing(close::TOO_BIG, "frame too large"));
                }
                if e.contains("UTF-8") {
                    return Some(closing(code::INVALID_PAYLOAD, "text frame is not UTF-8"));
                }
                return None;
            }
            Ok(Some(Ok(message))) => message,
        };
        match message {
            Message::Text(text) => {
                if let Err(close) =
                    handle_text(outbox, limits, &mut limit, text.as_str(), &mut deliver)
                {
                    return Some(close);
                }
            }
            Message::Binary(_) => push_frame(
                outbox,
                &ServerFrame::error(
                    None,
                    "unsupported_frame",
                    "binary frames are not supported; send JSON text",
                ),
            ),
            Message::Ping(_) | Message::Pong(_) => {}
            Message::Close(_) => return None,
        }
    }
}

/// Handles one text frame; `Err` ends the connection with that close.
fn handle_text<D>(
    outbox: &Outbox,
    limits: &ReadLimits,
    limit: &mut EventLimit,
    text: &str,
    deliver: &mut D,
) -> Result<(), CloseReason>
where
    D: FnMut(ClientFrame) -> Result<(), Undelivered>,
{
    if text.len() > limits.max_frame_bytes {
        push_frame(
            outbox,
            &ServerFrame::error(
                None,
                "frame_too_large",
                format!("frames may be at most {} bytes", limits.max_frame_bytes),
            ),
        );
        return Ok(());
    }
    // The common case parses once, straight into the typed frame; only a
    // frame that fails is parsed again to say precisely what is wrong.
    let frame = match parse_frame(text) {
        Some(frame) => frame,
        None => {
            push_frame(outbox, &diagnose(text));
            return Ok(());
        }
    };
    metrics::counter!(rt_metrics::WS_EVENTS, "direction" => "in", "type" => frame.kind())
        .increment(1);
    // JSON carries a NUL only escaped; no database may see one.
    if text.contains("\\u0000")
        && let Some(field) = serde_json::from_str(text).ok().as_ref().and_then(nul_field)
    {
        push_frame(
            outbox,
            &ServerFrame::error(
                frame.reference(),
                "validation_failed",
                format!("{field} must not contain NUL characters"),
            ),
        );
        return Ok(());
    }
    if frame.is_rate_limited() {
        match limit.limiter.check() {
            Ok(()) => limit.strikes = 0,
            Err(not_until) => {
                limit.strikes += 1;
                metrics::counter!(rt_metrics::WS_RATE_LIMITED).increment(1);
                if limit.strikes > limit.max_strikes {
                    return Err(closing(close::POLICY, "rate limit exceeded persistently"));
                }
                let wait = not_until.wait_time_from(governor::clock::Clock::now(
                    &governor::clock::DefaultClock::default(),
                ));
                push_frame(
                    outbox,
                    &ServerFrame::Error {
                        reference: frame.reference().map(str::to_owned),
                        code: "rate_limited".to_owned(),
                        message: "too many events; slow down".to_owned(),
                        retry_after_ms: Some(
                            u64::try_from(wait.as_millis()).unwrap_or(u64::MAX).max(1),
                        ),
                    },
                );
                return Ok(());
            }
        }
    }
    if deliver(frame).is_err() {
        return Err(closing(code::SERVER_ERROR, "server error"));
    }
    Ok(())
}

/// A client frame, or `None` when the text is not one. Frames are JSON
/// objects: serde would also read an internally tagged enum from an array
/// (tag first, then the fields in order), which the contract does not allow.
pub(super) fn parse_frame(text: &str) -> Option<ClientFrame> {
    if !text.trim_start().starts_with('{') {
        return None;
    }
    serde_json::from_str(text).ok()
}

/// The error frame for a text frame that is not a valid client frame.
fn diagnose(text: &str) -> ServerFrame {
    let value: serde_json::Value = match serde_json::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            return ServerFrame::error(
                None,
                "malformed_frame",
                format!("frame is not valid JSON: {e}"),
            );
        }
    };
    let reference = value.get("ref").and_then(|r| r.as_str());
    let Some(kind) = value.get("type").and_then(|t| t.as_str()) else {
        return ServerFrame::error(
            reference,
            "invalid_frame",
            "frame must be a JSON object with a string `type`",
        );
    };
    if !CLIENT_TYPES.contains(&kind) {
        return ServerFrame::error(
            reference,
            "unknown_type",
            format!("unknown frame type `{kind}`"),
        );
    }
    let detail = serde_json::from_value::<ClientFrame>(value.clone())
        .err()
        .map_or_else(|| "invalid frame".to_owned(), |e| e.to_string());
    ServerFrame::error(reference, "invalid_frame", format!("{kind}: {detail}"))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use parley_actors::domain::{RoomId, SessionId, UserId};
    use parley_actors::sockets::{CloseReason, OutboxReader};
    use serde_json::Value;
    use tokio::sync::mpsc;

    use super::*;

    type Incoming = Result<Message, String>;

    fn limits() -> ReadLimits {
        ReadLimits {
            max_frame_bytes: 256,
            events_per_second: 1,
            events_burst: 2,
            max_strikes: 2,
            silence: Duration::from_secs(30),
        }
    }

    fn outbox() -> (Arc<Outbox>, OutboxReader) {
        Outbox::new(UserId::new(), SessionId::new(), 64, 64)
    }

    /// Runs a reader over `frames` (the stream then stays open, so only the
    /// reader itself can end the loop when `open` is set); returns the
    /// frames it delivered.
    async fn read(
        frames: Vec<Incoming>,
        open: bool,
        outbox: &Outbox,
        limits: &ReadLimits,
    ) -> Vec<ClientFrame> {
        let (tx, mut rx) = mpsc::channel::<Incoming>(frames.len().max(1));
        for frame in frames {
            tx.try_send(frame).expect("room in the channel");
        }
        let keep = open.then_some(tx);
        let mut stream = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx));
        let mut delivered = Vec::new();
        let done = CancellationToken::new();
        let read = read_loop(&mut stream, outbox, limits, &done, |frame| {
            delivered.push(frame);
            Ok(())
        });
        let close = tokio::time::timeout(Duration::from_secs(5), read)
            .await
            .expect("the reader ended by itself");
        // As the socket does once the delivered frames are answered.
        if let Some(close) = close {
            outbox.close(close.code, &close.reason);
        }
        drop(keep);
        delivered
    }

    /// The error frames queued for the client: `(code, ref)` each.
    fn errors(reader: &OutboxReader) -> Vec<(String, Option<String>)> {
        std::iter::from_fn(|| reader.try_frame())
            .map(|bytes| serde_json::from_slice::<Value>(&bytes).expect("JSON frame"))
            .filter(|v| v["type"] == "error")
            .map(|v| {
                (
                    v["code"].as_str().unwrap_or_default().to_owned(),
                    v["ref"].as_str().map(str::to_owned),
                )
            })
            .collect()
    }

    fn text(s: &str) -> Incoming {
        Ok(Message::Text(s.into()))
    }

    fn typing(reference: &str) -> Incoming {
        text(&format!(
            r#"{{"type":"typing","room_id":"{}","ref":"{reference}"}}"#,
            RoomId::new()
        ))
    }

    #[tokio::test]
    async fn frames_that_do_not_parse_get_error_frames_and_the_socket_stays() {
        let (outbox, reader) = outbox();
        let delivered = read(
            vec![
                text("not json"),
                text(r#"["ping","p1"]"#),
                text(r#"{"ref":"r1"}"#),
                text(r#"{"type":"nope","ref":"r2"}"#),
                text(r#"{"type":"ping","ref":"r3","extra":1}"#),
                Ok(Message::Binary(bytes::Bytes::from_static(b"\x00"))),
                text(&"x".repeat(300)),
                text(r#"{"type":"ping","ref":"ok"}"#),
            ],
            false,
            &outbox,
            &limits(),
        )
        .await;
        let codes = errors(&reader);
        let codes: Vec<(&str, Option<&str>)> = codes
            .iter()
            .map(|(c, r)| (c.as_str(), r.as_deref()))
            .collect();
        assert_eq!(
            codes,
            [
                ("malformed_frame", None),
                ("invalid_frame", None),
                ("invalid_frame", Some("r1")),
                ("unknown_type", Some("r2")),
                ("invalid_frame", Some("r3")),
                ("unsupported_frame", None),
                ("frame_too_large", None),
            ]
        );
        assert_eq!(delivered.len(), 1, "only the valid frame is handed on");
        assert_eq!(delivered[0].reference(), Some("ok"));
        assert!(!outbox.is_closing(), "bad frames do not close the socket");
    }

    #[tokio::test]
    async fn persistent_rate_limit_strikes_close_the_socket_with_1008() {
        let (outbox, reader) = outbox();
        let (tx, mut rx) = mpsc::channel::<Incoming>(16);
        let delivered = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let task = tokio::spawn({
            let outbox = Arc::clone(&outbox);
            let delivered = Arc::clone(&delivered);
            async move {
                let mut stream = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx));
                let done = CancellationToken::new();
                let close = read_loop(&mut stream, &outbox, &limits(), &done, |_| {
                    delivered.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    Ok(())
                })
                .await;
                if let Some(close) = close {
                    outbox.close(close.code, &close.reason);
                }
            }
        });
        // Burst 2, then strikes answered with `rate_limited`; pings are not
        // rate limited.
        for frame in [
            typing("a"),
            typing("b"),
            text(r#"{"type":"ping"}"#),
            typing("c"),
            typing("d"),
        ] {
            tx.send(frame).await.expect("reader running");
        }
        let mut answered = Vec::new();
        for _ in 0..500 {
            answered.extend(errors(&reader));
            if answered.len() >= 2 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(
            answered,
            [
                ("rate_limited".to_owned(), Some("c".to_owned())),
                ("rate_limited".to_owned(), Some("d".to_owned())),
            ]
        );
        assert!(
            !outbox.is_closing(),
            "strikes up to the limit keep the socket"
        );
        // The third strike in a row closes.
        tx.send(typing("e")).await.expect("reader running");
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("the reader ended by itself")
            .expect("reader did not panic");
        assert_eq!(
            delivered.load(std::sync::atomic::Ordering::Relaxed),
            3,
            "two typing frames and the ping"
        );
        assert_eq!(
            outbox.close_reason(),
            Some(CloseReason {
                code: close::POLICY,
                reason: "rate limit exceeded persistently".to_owned(),
            })
        );
    }

    #[tokio::test]
    async fn a_silent_client_is_closed_as_idle() {
        let (outbox, _reader) = outbox();
        let limits = ReadLimits {
            silence: Duration::from_millis(50),
            ..limits()
        };
        read(vec![], true, &outbox, &limits).await;
        assert_eq!(outbox.close_reason().map(|r| r.code), Some(close::IDLE));
    }

    #[tokio::test]
    async fn a_frame_the_actor_cannot_take_closes_the_socket_with_1011() {
        let (outbox, _reader) = outbox();
        let (tx, mut rx) = mpsc::channel::<Incoming>(2);
        tx.try_send(text(r#"{"type":"ping"}"#)).expect("room");
        let mut stream = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx));
        let done = CancellationToken::new();
        let limits = limits();
        let read = read_loop(&mut stream, &outbox, &limits, &done, |_| Err(Undelivered));
        let close = tokio::time::timeout(Duration::from_secs(5), read)
            .await
            .expect("the reader ended by itself");
        assert_eq!(close.map(|r| r.code), Some(code::SERVER_ERROR));
        drop(tx);
    }

    #[tokio::test]
    async fn the_reader_stops_when_the_writer_is_done() {
        let (outbox, _reader) = outbox();
        let (_tx, mut rx) = mpsc::channel::<Incoming>(1);
        let mut stream = futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx));
        let done = CancellationToken::new();
        done.cancel();
        let limits = limits();
        let read = read_loop(&mut stream, &outbox, &limits, &done, |_| Ok(()));
        let close = tokio::time::timeout(Duration::from_secs(5), read)
            .await
            .expect("the reader ended");
        assert_eq!(close, None);
    }
}
