//! Tests of the shares, the plan's trip to a worker and the drain rule.

use std::sync::Arc;
use std::time::Duration;

use super::coordinate::drain_done;
use super::spawn::share;
use super::*;
use crate::engine::{EngineOpts, Load, SlotPlan};

fn plan(slots: usize, publishers: &[usize]) -> Plan {
    Plan {
        target: crate::client::Target::parse("http://127.0.0.1:9", false).expect("target"),
        rooms: vec![parley_actors::domain::RoomId::new()],
        slots: (0..slots)
            .map(|i| SlotPlan {
                token: Some(Arc::from(format!("t{i}"))),
                rooms: vec![0],
                bind: None,
            })
            .collect(),
        load: Load {
            msg_rate: 100.0,
            publishers: publishers.iter().map(|&s| (s, 0)).collect(),
            typing_rate: 10.0,
            presence_rate: 4.0,
            ..Load::idle(Duration::from_secs(5))
        },
        opts: EngineOpts {
            connect_rate: 0.0,
            connect_concurrency: 256,
            connect_timeout: Duration::from_secs(5),
            drain_timeout: Duration::from_secs(5),
            max_reconnects: 3,
            progress: true,
            settle: Duration::from_secs(2),
            workers: 2,
        },
        external: None,
    }
}

#[test]
fn shares_cover_every_slot_once_and_split_the_rates() {
    let whole = plan(10, &[0, 1, 2, 3]);
    let (a, b) = (share(&whole, 0, 2), share(&whole, 1, 2));
    let tokens = |p: &Plan| -> Vec<String> {
        p.slots
            .iter()
            .map(|s| s.token.as_deref().unwrap_or_default().to_owned())
            .collect()
    };
    assert_eq!(tokens(&a), ["t0", "t2", "t4", "t6", "t8"]);
    assert_eq!(tokens(&b), ["t1", "t3", "t5", "t7", "t9"]);
    // Publishers keep their slot, renumbered within the worker.
    assert_eq!(a.load.publishers, [(0, 0), (1, 0)]);
    assert_eq!(b.load.publishers, [(0, 0), (1, 0)]);
    assert!((a.load.msg_rate + b.load.msg_rate - 100.0).abs() < 1e-9);
    assert!((a.load.typing_rate + b.load.typing_rate - 10.0).abs() < 1e-9);
    assert_eq!(a.opts.connect_concurrency, 128);
    assert!(!a.opts.progress && a.opts.settle.is_zero() && a.opts.workers == 1);
    // A worker without publishers sends no messages.
    let one = plan(4, &[0]);
    assert_eq!(share(&one, 1, 2).load.msg_rate, 0.0);
    assert_eq!(share(&one, 0, 2).load.msg_rate, 100.0);
}

#[test]
fn the_plan_survives_the_trip_to_a_worker() {
    let whole = plan(3, &[1]);
    let line = serde_json::to_string(&share(&whole, 1, 2)).expect("encode");
    let back: Plan = serde_json::from_str(&line).expect("decode");
    assert_eq!(back.slots.len(), 1);
    assert_eq!(back.slots[0].token.as_deref(), Some("t1"));
    assert_eq!(back.load.publishers, [(0, 0)]);
    assert_eq!(back.rooms, whole.rooms);
    assert_eq!(back.target.addr, whole.target.addr);
}

#[test]
fn the_drain_waits_for_every_worker_and_every_expected_delivery() {
    let d = |scheduled, sent, acked, delivered, expected, resuming| {
        Some(Draining {
            scheduled,
            expected,
            resuming,
            reconnecting: 0,
            counters: CounterSnapshot {
                sent,
                acked,
                delivered,
                ..CounterSnapshot::default()
            },
        })
    };
    // Worker 1's deliveries make up for what worker 0 still expects.
    assert!(drain_done(
        &[d(5, 5, 5, 40, 60, 0), d(5, 5, 5, 60, 40, 0)],
        0
    ));
    assert!(!drain_done(
        &[d(5, 5, 5, 40, 60, 0), d(5, 5, 5, 59, 40, 0)],
        0
    ));
    assert!(!drain_done(
        &[d(5, 5, 4, 100, 100, 0), d(5, 5, 5, 0, 0, 0)],
        0
    ));
    assert!(!drain_done(
        &[d(5, 5, 5, 100, 100, 1), d(0, 0, 0, 0, 0, 0)],
        0
    ));
    // Deliveries of sends made outside the engine (the soak's REST mix)
    // are waited for too.
    let done = [d(5, 5, 5, 110, 100, 0)];
    assert!(drain_done(&done, 10));
    assert!(!drain_done(&done, 11));
}
