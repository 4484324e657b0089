//! A slot's frames: the borrowed hot-path parse of `message.created` and
//! `ack`, the full [`ServerFrame`] for the rest, and the client frames a
//! slot sends.

use std::borrow::Cow;
use std::sync::atomic::Ordering;
use std::time::Instant;

use parley_actors::protocol::{ClientFrame, ServerFrame};
use serde::Deserialize;

use super::slot::{SlotState, SlotTask};
use crate::client;
use crate::servercheck;
use crate::stats;
use crate::token::{self, Token};

/// The frames the hot path needs, borrowed from the text (no allocation
/// for plain ASCII bodies). Anything this does not fit is parsed as a
/// [`ServerFrame`].
#[derive(Deserialize)]
struct Hot<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(default, borrow)]
    room_id: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    message: Option<HotMessage<'a>>,
    #[serde(rename = "ref", default, borrow)]
    reference: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct HotMessage<'a> {
    seq: i64,
    #[serde(borrow)]
    body: Cow<'a, str>,
    #[serde(borrow)]
    room_id: Cow<'a, str>,
}

impl SlotTask {
    pub(super) fn pending(&self, state: &mut SlotState, room: Option<usize>) -> String {
        state.next_ref += 1;
        state.pending.insert(state.next_ref, (room, Instant::now()));
        state.next_ref.to_string()
    }

    pub(super) fn message_frame(&self, room: usize, state: &mut SlotState) -> ClientFrame {
        state.next_msg += 1;
        let body = token::encode(
            Token {
                publisher: u32::try_from(self.index).unwrap_or(u32::MAX),
                sequence: state.next_msg,
                sent_unix_nanos: token::unix_nanos(),
            },
            self.shared.load.body_bytes,
        );
        stats::inc(&self.shared.stats.counters.sent);
        let reference = self.pending(state, Some(room));
        ClientFrame::MessageSend {
            room_id: self.shared.plan_rooms[room],
            body,
            reply_to: None,
            // Unique per run: the server treats a repeated client_id from the
            // same user in the same room as a retry and does not publish it.
            client_id: Some(format!(
                "lt-{}-{}-{}",
                self.shared.run_id, self.index, state.next_msg
            )),
            reference: Some(reference),
        }
    }

    fn room_index(&self, id: &str, state: &SlotState) -> Option<usize> {
        state
            .receipts
            .iter()
            .position(|(room, _)| self.shared.room_ids[*room] == id)
    }

    pub(super) fn on_text(&self, text: &str, state: &mut SlotState) {
        let stats = &self.shared.stats;
        let Ok(hot) = serde_json::from_str::<Hot<'_>>(text) else {
            return self.on_other(text, state);
        };
        match hot.kind.as_ref() {
            "message.created" => {
                let Some(message) = hot.message else {
                    stats::inc(&stats.counters.bad_frames);
                    return;
                };
                // The server counts every frame it queues, in any room.
                state.tally.on_frame(state.resume_targets.is_some());
                let room_id = hot.room_id.unwrap_or(message.room_id);
                let Some(i) = self.room_index(&room_id, state) else {
                    stats::inc(&stats.counters.events);
                    return;
                };
                if let Some(reads) = state.connection_reads.get_mut(i) {
                    reads.insert(message.seq);
                }
                let room = state.receipts[i].0;
                let replay = state
                    .resume_targets
                    .as_ref()
                    .is_some_and(|t| message.seq <= t[room]);
                if state.receipts[i].1.record(message.seq, replay) {
                    if replay {
                        stats::inc(&stats.counters.recovered);
                    } else {
                        stats::inc(&stats.counters.delivered);
                        if let Some(tok) = token::decode(&message.body) {
                            state
                                .latencies
                                .push(token::latency_us(&tok, token::unix_nanos()));
                            if state.latencies.len() >= 256 {
                                stats.latency.record_many(self.index, &state.latencies);
                                state.latencies.clear();
                            }
                        }
                    }
                } else {
                    stats::inc(&stats.counters.duplicates);
                }
            }
            "ack" => {
                let Some(reference) = hot.reference.and_then(|r| r.parse::<u64>().ok()) else {
                    return;
                };
                let Some((room, at)) = state.pending.remove(&reference) else {
                    return;
                };
                stats.ack.record(self.index, client::elapsed_us(at));
                if let (Some(room), Some(message)) = (room, hot.message) {
                    let stale = state
                        .receipts
                        .iter()
                        .find(|(r, _)| *r == room)
                        .is_some_and(|(_, receipts)| message.seq <= receipts.live.base());
                    if stale {
                        // Acked with a message from before this run (an
                        // idempotent retry): nothing new will be delivered.
                        stats.error("ack_of_existing_message");
                        state.tally.acked_existing += 1;
                    }
                    stats::inc(&stats.counters.acked);
                    state.acked.push((room, message.seq));
                    let members = self.shared.members[room].load(Ordering::Relaxed);
                    self.shared.expected.fetch_add(members, Ordering::Relaxed);
                }
            }
            _ => self.on_other(text, state),
        }
    }

    fn on_other(&self, text: &str, state: &mut SlotState) {
        let stats = &self.shared.stats;
        let frame = match serde_json::from_str::<ServerFrame>(text) {
            Ok(frame) => frame,
            Err(_) => {
                stats::inc(&stats.counters.bad_frames);
                return;
            }
        };
        match frame {
            ServerFrame::Error {
                reference, code, ..
            } => {
                if let Some((room, _)) = reference
                    .and_then(|r| r.parse::<u64>().ok())
                    .and_then(|r| state.pending.remove(&r))
                    && room.is_some()
                {
                    stats::inc(&stats.counters.send_errors);
                    if servercheck::send_error_in_doubt(&code) {
                        state.tally.sends_in_doubt += 1;
                    }
                }
                stats.error(code);
            }
            ServerFrame::Resumed { rooms, .. } => {
                if state.resume_targets.take().is_some() {
                    stats::dec(&self.shared.resuming);
                    // Each resumed room replayed every seq after the one
                    // resumed from, up to the seq it reports.
                    let caught_up = |room: usize| rooms.get(&self.shared.plan_rooms[room]).copied();
                    let replayed = state
                        .resume_from
                        .iter()
                        .filter_map(|(room, from)| caught_up(*room).map(|to| to - from))
                        .map(|n| u64::try_from(n).unwrap_or(0))
                        .sum();
                    let closed = std::mem::take(&mut state.closed);
                    state.tally.on_resumed(replayed, closed, caught_up);
                }
            }
            ServerFrame::MessageCreated { .. } => {
                // Not in the shape the hot path reads: counted for the
                // cross-check, not in the ledger.
                state.tally.on_frame(state.resume_targets.is_some());
                stats::inc(&stats.counters.events);
            }
            ServerFrame::ResyncRequired { .. } => {
                stats::inc(&stats.counters.resyncs);
                stats.error("resync_required");
            }
            ServerFrame::Ready { .. } => stats.error("unexpected_ready"),
            _ => stats::inc(&stats.counters.events),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use parley_actors::domain::RoomId;

    #[test]
    fn the_hot_parser_reads_message_created_and_acks() {
        let room = RoomId::new();
        let text = format!(
            r#"{{"type":"message.created","room_id":"{room}","message":{{"id":"x","room_id":"{room}","seq":42,"author_id":null,"body":"lt1|p1|s2|t3|","reply_to":null,"created_at":"t","edited_at":null,"deleted":false,"reactions":{{}}}}}}"#
        );
        let hot: Hot<'_> = serde_json::from_str(&text).unwrap();
        assert_eq!(hot.kind, "message.created");
        let message = hot.message.unwrap();
        assert_eq!(message.seq, 42);
        assert_eq!(message.room_id, room.to_string());
        assert!(token::decode(&message.body).is_some());
        let ack: Hot<'_> = serde_json::from_str(r#"{"type":"ack","ref":"7"}"#).unwrap();
        assert_eq!(ack.reference.as_deref(), Some("7"));
        // An error frame's `message` is a string: the hot parser declines it
        // and the full protocol type takes over.
        assert!(
            serde_json::from_str::<Hot<'_>>(
                r#"{"type":"error","ref":"1","code":"rate_limited","message":"slow down"}"#
            )
            .is_err()
        );
    }
}
