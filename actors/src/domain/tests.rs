//! Unit tests of the domain types.

use super::*;

#[test]
fn bodies_take_crlf_and_lone_cr_as_lf_and_refuse_other_controls() {
    let body = MessageBody::parse("one\r\ntwo\rthree\r\n").unwrap();
    assert_eq!(body.as_str(), "one\ntwo\nthree");
    assert_eq!(MessageBody::parse("\r\n").unwrap_err().code, "required");
    assert_eq!(
        MessageBody::parse("a\u{0}b").unwrap_err().code,
        "invalid_characters"
    );
    assert_eq!(
        MessageBody::parse("a\u{7}b").unwrap_err().code,
        "invalid_characters"
    );
}

#[test]
fn a_nul_anywhere_in_a_json_value_is_found_by_its_path() {
    let value = serde_json::json!({"body": "ok", "rooms": ["a", "b\u{0}"]});
    assert_eq!(nul_field(&value).as_deref(), Some("rooms.1"));
    let value = serde_json::json!({"client_id": "x\u{0}"});
    assert_eq!(nul_field(&value).as_deref(), Some("client_id"));
    let escaped = serde_json::json!({"body": "a literal \\u0000"});
    assert_eq!(nul_field(&escaped), None);
    assert!(refuse_nul("q", "a\u{0}").is_err());
    assert!(refuse_nul("q", "fine").is_ok());
}

#[test]
fn usernames_are_folded_and_checked() {
    assert_eq!(Username::parse("Alice_1").unwrap().as_str(), "alice_1");
    assert_eq!(Username::parse("ab").unwrap_err().code, "too_short");
    assert_eq!(
        Username::parse(&"a".repeat(33)).unwrap_err().code,
        "too_long"
    );
    assert_eq!(
        Username::parse("bad name").unwrap_err().code,
        "invalid_characters"
    );
    assert_eq!(
        Username::parse("émile").unwrap_err().code,
        "invalid_characters"
    );
}

#[test]
fn emails_need_a_dotted_domain() {
    assert_eq!(
        Email::parse("Bob@Example.COM").unwrap().as_str(),
        "bob@example.com"
    );
    for bad in [
        "bob",
        "bob@",
        "@x.io",
        "bob@localhost",
        "a b@x.io",
        "a@b@c.io",
    ] {
        assert!(Email::parse(bad).is_err(), "{bad} accepted");
    }
}

#[test]
fn passwords_follow_the_rules() {
    assert!(Password::parse("Correct7Horse").is_ok());
    assert_eq!(Password::parse("Ab1").unwrap_err().code, "too_short");
    assert_eq!(Password::parse("alllower1").unwrap_err().code, "too_weak");
    assert_eq!(
        Password::parse("NoDigitsHere").unwrap_err().code,
        "too_weak"
    );
    assert_eq!(
        Password::parse("Password1").unwrap_err().code,
        "common_password"
    );
    assert_eq!(
        Password::parse(&format!("Aa1{}", "x".repeat(126)))
            .unwrap_err()
            .code,
        "too_long"
    );
    assert_eq!(
        format!("{:?}", Password::parse("Correct7Horse").unwrap()),
        "Password(***)"
    );
}

#[test]
fn texts_are_trimmed_and_bounded() {
    assert_eq!(MessageBody::parse("  hi  ").unwrap().as_str(), "hi");
    assert_eq!(MessageBody::parse("   ").unwrap_err().code, "required");
    assert!(MessageBody::parse(&"é".repeat(4000)).is_ok());
    assert_eq!(
        MessageBody::parse(&"é".repeat(4001)).unwrap_err().code,
        "too_long"
    );
    assert_eq!(
        MessageBody::parse("a\u{0}b").unwrap_err().code,
        "invalid_characters"
    );
    assert!(MessageBody::parse("line\nbreak").is_ok());
    assert!(RoomTopic::parse("").is_ok());
    assert_eq!(
        DisplayName::parse("  Ada  ").map(DisplayName::into_inner),
        Ok("Ada".to_owned())
    );
    assert_eq!(
        DisplayName::parse("a\nb").unwrap_err().code,
        "invalid_characters"
    );
    assert_eq!(
        DisplayName::parse(&"x".repeat(65)).unwrap_err().code,
        "too_long"
    );
    assert!(Bio::parse("two\nlines").is_ok());
    assert_eq!(
        Bio::parse("bell\u{7}").unwrap_err().code,
        "invalid_characters"
    );
    assert!(RoomName::parse("").is_err());
}

#[test]
fn emojis_are_short_and_not_text() {
    for ok in ["👍", "❤️", "👩‍👩‍👧", "👍🏽"] {
        assert!(Emoji::parse(ok).is_ok(), "{ok}");
    }
    for bad in ["", "ok", ":)", "👍 👍", &"👍".repeat(9)] {
        assert!(Emoji::parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn room_roles_are_ranked() {
    assert!(RoomRole::Owner.rank() > RoomRole::Admin.rank());
    assert!(RoomRole::Admin.is_admin());
    assert!(!RoomRole::Member.is_admin());
}

#[test]
fn enums_round_trip_their_spelling() {
    assert_eq!("admin".parse::<Role>().unwrap(), Role::Admin);
    assert_eq!(UserStatus::Banned.as_str(), "banned");
    assert!("root".parse::<Role>().is_err());
}
