//! The server itself: one room ([`Hub`]), the accept loop, and one
//! socket's session with its writer task.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use parley_actors::domain::{MessageId, RoomId, UserId};
use parley_actors::protocol::{
    ClientFrame, MessageView, ReadyRoom, ReadyUser, ServerFrame, wire_time,
};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

/// One room: the seq counter and every socket's queue.
#[derive(Debug)]
pub(super) struct Hub {
    pub(super) room: RoomId,
    user: UserId,
    inner: Mutex<HubInner>,
}

#[derive(Debug, Default)]
struct HubInner {
    seq: i64,
    next_id: u64,
    conns: HashMap<u64, mpsc::Sender<Message>>,
}

impl Hub {
    pub(super) fn new() -> Arc<Self> {
        Arc::new(Self {
            room: RoomId::new(),
            user: UserId::new(),
            inner: Mutex::new(HubInner::default()),
        })
    }
}

pub(super) async fn accept_loop(listener: TcpListener, hub: Arc<Hub>) {
    // Accept errors (e.g. EMFILE) are reported at most once a second.
    let mut failed = 0u64;
    let mut last_report: Option<Instant> = None;
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                // Connection tasks end with their socket; the runtime's
                // shutdown ends the rest.
                tokio::spawn(serve(stream, Arc::clone(&hub)));
            }
            Err(e) => {
                failed += 1;
                if last_report.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
                    eprintln!("reference accept: {e} ({failed} accept errors so far)");
                    last_report = Some(Instant::now());
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

pub(super) fn text(frame: &ServerFrame) -> Option<Message> {
    Utf8Bytes::try_from(frame.to_bytes())
        .ok()
        .map(Message::Text)
}

pub(super) async fn serve(stream: TcpStream, hub: Arc<Hub>) {
    if stream.set_nodelay(true).is_err() {
        return;
    }
    let config = WebSocketConfig::default()
        .read_buffer_size(4 * 1024)
        .write_buffer_size(64 * 1024);
    let Ok(ws) = tokio_tungstenite::accept_async_with_config(stream, Some(config)).await else {
        return;
    };
    let (mut sink, mut source) = ws.split();
    let (tx, mut rx) = mpsc::channel::<Message>(1024);
    let id = {
        let mut inner = hub.inner.lock().unwrap_or_else(|e| e.into_inner());
        inner.next_id += 1;
        let id = inner.next_id;
        inner.conns.insert(id, tx.clone());
        let ready = ServerFrame::Ready {
            session_id: format!("reference-{id}"),
            user: ReadyUser {
                id: hub.user,
                username: "reference".into(),
            },
            rooms: vec![ReadyRoom {
                id: hub.room,
                name: "reference".into(),
                last_seq: inner.seq,
                unread_count: 0,
            }],
            heartbeat_interval_ms: 30_000,
        };
        if let Some(m) = text(&ready)
            && tx.try_send(m).is_err()
        {
            return;
        }
        id
    };
    let writer = tokio::spawn(async move {
        while let Some(first) = rx.recv().await {
            if sink.feed(first).await.is_err() {
                return;
            }
            for _ in 0..63 {
                match rx.try_recv() {
                    Ok(m) => {
                        if sink.feed(m).await.is_err() {
                            return;
                        }
                    }
                    Err(_) => break,
                }
            }
            if sink.flush().await.is_err() {
                return;
            }
        }
        let _closed = sink.close().await;
    });
    while let Some(Ok(msg)) = source.next().await {
        let Message::Text(raw) = msg else {
            if matches!(msg, Message::Close(_)) {
                break;
            }
            continue;
        };
        let reply = match serde_json::from_str::<ClientFrame>(&raw) {
            Ok(ClientFrame::MessageSend {
                body,
                client_id,
                reference,
                ..
            }) => {
                let mut inner = hub.inner.lock().unwrap_or_else(|e| e.into_inner());
                inner.seq += 1;
                let view = MessageView {
                    id: MessageId::new(),
                    room_id: hub.room,
                    seq: inner.seq,
                    author_id: Some(hub.user),
                    body,
                    reply_to: None,
                    created_at: wire_time(chrono::Utc::now()),
                    edited_at: None,
                    deleted: false,
                    reactions: Default::default(),
                    client_id,
                };
                // Serialised once; every queue gets the same bytes.
                let created = ServerFrame::MessageCreated {
                    room_id: hub.room,
                    message: view.clone(),
                };
                if let Some(m) = text(&created) {
                    inner.conns.retain(|_, q| q.try_send(m.clone()).is_ok());
                }
                ServerFrame::Ack {
                    reference,
                    message: Some(view),
                }
            }
            Ok(ClientFrame::Resume { rooms, reference }) => {
                let seq = hub.inner.lock().unwrap_or_else(|e| e.into_inner()).seq;
                ServerFrame::Resumed {
                    reference,
                    rooms: rooms.into_keys().map(|r| (r, seq)).collect(),
                }
            }
            Ok(other) => ServerFrame::Ack {
                reference: other.reference().map(str::to_owned),
                message: None,
            },
            Err(e) => ServerFrame::error(None, "malformed", e.to_string()),
        };
        if let Some(m) = text(&reply)
            && tx.try_send(m).is_err()
        {
            break;
        }
    }
    hub.inner
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .conns
        .remove(&id);
    drop(tx);
    if writer.await.is_err() {
        eprintln!("reference writer panicked");
    }
}
