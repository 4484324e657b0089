//! Resume: a reconnecting socket asks for each room's messages after the
//! last seq it saw.
//!
//! The bulk of the gap is replayed by the caller (the connection actor)
//! straight from the store, waiting for the socket's queue to drain, with
//! live delivery of the room to that socket paused; so a long gap never
//! overruns the queue and the room never waits for the socket. Then the
//! room actor queues what was stored meanwhile and subscribes the socket
//! again, in one step, so nothing is missed or doubled. Both steps use
//! [`replay`].

use std::sync::Arc;
use std::time::Duration;

use super::RoomHandle;
use super::actor::{RoomActor, RoomState};
use crate::domain::{RoomId, UserId};
use crate::error::ChatError;
use crate::protocol::{MessageView, ServerFrame};
use crate::sockets::{Outbox, Pushed};
use crate::store::{HistoryQuery, Store};
use crate::telemetry;

/// How long the bulk of a replay waits for a client to make room in its queue.
const REPLAY_PATIENCE: Duration = Duration::from_secs(10);

/// Messages read from the store per page of a replay.
const PAGE: u32 = 200;

/// The outcome of resuming one room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resumed {
    /// The gap was replayed; the socket is live again from this seq.
    CaughtUp(i64),
    /// The gap was too large: the socket was sent `resync_required` and
    /// stays subscribed (the client reloads history over HTTP).
    ResyncRequired,
}

/// How a replay queues its frames.
#[derive(Debug, Clone, Copy)]
enum Pace {
    /// Wait up to this long for room in the socket's queue (the bulk, by
    /// the connection actor).
    Patient(Duration),
    /// Never wait (the tail, by the room actor, which waits on no socket).
    Immediate,
}

/// Queues the room's messages after `after_seq` (up to `until_seq` when
/// given) as `message.created` frames on `outbox`; returns the last seq
/// queued (`after_seq` when there was none).
async fn replay(
    store: &dyn Store,
    room_id: RoomId,
    viewer: UserId,
    after_seq: i64,
    until_seq: Option<i64>,
    outbox: &Outbox,
    pace: Pace,
) -> Result<i64, ChatError> {
    let mut cursor = after_seq.max(0);
    loop {
        if until_seq.is_some_and(|until| cursor >= until) {
            return Ok(cursor);
        }
        let page = store
            .list_messages(
                room_id,
                HistoryQuery {
                    before_seq: until_seq.map(|until| until + 1),
                    after_seq: Some(cursor),
                    limit: PAGE,
                    viewer: Some(viewer),
                },
            )
            .await?;
        for message in &page {
            let bytes = ServerFrame::MessageCreated {
                room_id,
                message: MessageView::from(message),
            }
            .to_bytes();
            let pushed = match pace {
                Pace::Patient(patience) => outbox.push_waiting(bytes, patience).await,
                Pace::Immediate => outbox.push(bytes, false),
            };
            if pushed != Pushed::Queued {
                return Err(ChatError::Unavailable(
                    "socket closed during resume".to_owned(),
                ));
            }
            cursor = message.seq;
        }
        if page.len() < PAGE as usize {
            return Ok(cursor);
        }
    }
}

impl RoomHandle<'_> {
    /// Resumes this room on one socket of `viewer` from `after_seq`: sends
    /// `resync_required` when the gap is larger than `resume_max_gap`, else
    /// replays it (see the module docs). The socket is never left deaf to
    /// the room, whatever fails.
    pub async fn resume(
        &self,
        viewer: UserId,
        outbox: &Arc<Outbox>,
        after_seq: i64,
    ) -> Result<Resumed, ChatError> {
        let shared = &self.rooms.shared;
        let room = shared
            .store
            .room_by_id(self.id)
            .await?
            .ok_or(ChatError::NotFound("room"))?;
        if room.last_seq - after_seq > i64::from(shared.config.resume_max_gap) {
            let frame = ServerFrame::ResyncRequired {
                room_id: self.id,
                last_seq: room.last_seq,
            };
            metrics::counter!(telemetry::WS_EVENTS, "direction" => "out", "type" => frame.kind())
                .increment(1);
            outbox.push(frame.to_bytes(), frame.is_ephemeral());
            return Ok(Resumed::ResyncRequired);
        }
        shared.broker.unsubscribe_socket(outbox, self.id);
        let bulk = replay(
            shared.store.as_ref(),
            self.id,
            viewer,
            after_seq,
            None,
            outbox,
            Pace::Patient(REPLAY_PATIENCE),
        )
        .await;
        let caught_up = match bulk {
            Ok(cursor) => self.catch_up(viewer, cursor, outbox).await,
            Err(e) => Err(e),
        };
        if caught_up.is_err() && !outbox.is_closing() {
            // Never leave a socket deaf to one of its rooms.
            shared.broker.subscribe_socket(outbox, self.id);
        }
        caught_up.map(Resumed::CaughtUp)
    }
}

impl RoomActor {
    /// The last step of a resume, in the room's order: queues what was
    /// stored after `after_seq` and subscribes the socket again. Returns
    /// the room's last seq.
    pub(super) async fn catch_up(
        &self,
        state: &RoomState,
        viewer: UserId,
        after_seq: i64,
        outbox: &Arc<Outbox>,
    ) -> Result<i64, ChatError> {
        Self::role(state, viewer)?;
        let last_seq = state.room.last_seq;
        replay(
            self.shared.store.as_ref(),
            state.room.id,
            viewer,
            after_seq,
            Some(last_seq),
            outbox,
            Pace::Immediate,
        )
        .await?;
        self.shared.broker.subscribe_socket(outbox, state.room.id);
        Ok(last_seq)
    }
}
