//! Unit tests of the protocol frames.

use crate::domain::{RoomId, UserId};

use super::*;

#[test]
fn client_frames_parse_by_type_with_ref() {
    let room = RoomId::new();
    let raw = format!(r#"{{"type":"message.send","room_id":"{room}","body":"hi","ref":"r1"}}"#);
    let frame: ClientFrame = serde_json::from_str(&raw).unwrap();
    assert_eq!(frame.reference(), Some("r1"));
    assert_eq!(frame.kind(), "message.send");
    assert!(serde_json::from_str::<ClientFrame>(r#"{"type":"nope"}"#).is_err());
    assert!(
        serde_json::from_str::<ClientFrame>(r#"{"type":"ping","extra":1}"#).is_err(),
        "unknown fields are refused"
    );
    for kind in CLIENT_TYPES {
        assert!(!kind.is_empty());
    }
}

#[test]
fn server_frames_round_trip() {
    let frame = ServerFrame::Typing {
        room_id: RoomId::new(),
        user_id: UserId::new(),
        expires_in_ms: 5000,
    };
    let bytes = frame.to_bytes();
    let back: ServerFrame = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(back, frame);
    assert!(frame.is_ephemeral());
    let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(v["type"], "typing");
    let ack = ServerFrame::Ack {
        reference: Some("x".into()),
        message: None,
    };
    let v: serde_json::Value = serde_json::from_slice(&ack.to_bytes()).unwrap();
    assert_eq!(v, serde_json::json!({"type": "ack", "ref": "x"}));
}
