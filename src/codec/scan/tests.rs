use super::*;
use crate::codec::{decode_json_serde, decode_reply_body_serde};

/// Payloads the scanner must take, each also valid for serde_json.
const VALID: &[&str] = &[
    "{}",
    "[]",
    "null",
    "true",
    "false",
    "0",
    "-0",
    "12.5e-3",
    "1E+9",
    "-7",
    r#""""#,
    r#""plain text""#,
    r#""esc \" \\ \/ \b \f \n \r \t \u00e9 \uD800""#,
    r#"{"a":[1,2,{"b":null}],"c":"d"}"#,
    "  { \"spaced\" : [ 1 , 2 ] }  ",
    "\"multi-byte: é ☃ 🦀\"",
    r#"{"i":42,"pad":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"}"#,
];

/// Payloads both must refuse.
const INVALID: &[&str] = &[
    "",
    "{",
    "}",
    "[1,]",
    "{\"a\":}",
    "{\"a\" 1}",
    "{1:2}",
    "01",
    "1.",
    ".5",
    "-",
    "1e",
    "+1",
    "tru",
    "nul",
    "NaN",
    "\"unterminated",
    "\"bad escape \\x\"",
    "\"short \\u12\"",
    "\"control \u{1} char\"",
    "[1 2]",
    "{\"a\":1,}",
];

fn frame(payload: &str) -> String {
    format!(r#"["1",null,"room:1","ev",{payload}]"#)
}

#[test]
fn valid_payloads_are_taken_as_serde_takes_them() {
    for p in VALID {
        let text = frame(p);
        let env = envelope(&text).unwrap_or_else(|| panic!("scanner refused {p}"));
        let serde = decode_json_serde(&text).unwrap_or_else(|e| panic!("serde refused {p}: {e}"));
        assert_eq!(env.join_ref, serde.join_ref.as_deref());
        assert_eq!(env.msg_ref, serde.msg_ref.as_deref());
        assert_eq!(env.topic, serde.topic);
        assert_eq!(env.event, serde.event);
        assert_eq!(Some(env.payload), serde.payload.json_text(), "{p}");
    }
}

#[test]
fn invalid_payloads_are_refused_by_both() {
    for p in INVALID {
        let text = frame(p);
        assert!(envelope(&text).is_none(), "scanner took {p:?}");
        assert!(decode_json_serde(&text).is_err(), "serde took {p:?}");
    }
}

#[test]
fn envelope_shapes_outside_the_fast_path_fall_back() {
    // Escaped envelope strings are serde's to decode; bad shapes are errors.
    for text in [
        r#"["1",null,"room\u003a1","ev",{}]"#,
        r#"[1,null,"t","e",{}]"#,
        r#"["1",null,"t","e"]"#,
        r#"["1",null,"t","e",{},5]"#,
        r#"["1",null,"t","e",{}] x"#,
        r#"{"topic":"t"}"#,
    ] {
        assert!(envelope(text).is_none(), "scanner took {text}");
    }
    assert_eq!(
        decode_json_serde(r#"["1",null,"room\u003a1","ev",{}]"#)
            .unwrap()
            .topic,
        "room:1"
    );
}

#[test]
fn nesting_deeper_than_the_limit_falls_back() {
    let deep = format!("{}{}", "[".repeat(120), "]".repeat(120));
    assert!(envelope(&frame(&deep)).is_none());
    assert!(decode_json_serde(&frame(&deep)).is_ok());
    let shallow = format!("{}{}", "[".repeat(90), "]".repeat(90));
    assert!(envelope(&frame(&shallow)).is_some());
}

#[test]
fn reply_bodies_match_serde() {
    for body in [
        r#"{"status":"ok","response":{"a":1}}"#,
        r#"{"response":[1],"status":"error"}"#,
        r#"{"status":"ok"}"#,
        r#"{"status":"ok","response":null}"#,
        r#"{"status":"ok","extra":{"x":[true]},"response":"r"}"#,
    ] {
        let (status, response) = reply_body(body).unwrap_or_else(|| panic!("refused {body}"));
        let serde = decode_reply_body_serde(body).unwrap();
        assert_eq!(status, serde.status);
        match response {
            Some(text) if text != "null" => assert_eq!(Some(text), serde.response.json_text()),
            _ => assert_eq!(serde.response.json_text(), Some("{}")),
        }
    }
    for body in [
        "{}",
        r#"{"response":{}}"#,
        r#"{"status":1,"response":{}}"#,
        r#"{"status":"ok","status":"error"}"#,
        r#"{"st\u0061tus":"ok"}"#,
        r#"{"status":"ok",}"#,
    ] {
        assert!(reply_body(body).is_none(), "scanner took {body}");
    }
}

#[test]
fn special_byte_finds_the_first_in_every_position() {
    for len in 0..40 {
        for (at, special) in [(len, b'"'), (len, b'\\'), (len, 0x1f)] {
            let mut bytes = vec![b'a'; len + 5];
            bytes[at] = special;
            assert_eq!(special_byte(&bytes), Some(at), "len {len} byte {special}");
        }
        assert_eq!(special_byte(&vec![0xc3; len]), None);
    }
}

#[test]
fn the_portable_block_scan_stops_at_or_before_the_first_special_byte() {
    for len in 0..40 {
        for special in [b'"', b'\\', 0x00, 0x1f] {
            let mut bytes = vec![b'a'; len + 9];
            bytes[len] = special;
            let skipped = skip_plain_swar(&bytes);
            assert!(
                skipped <= len,
                "len {len} byte {special}: skipped {skipped}"
            );
            assert!(
                len - skipped < 8,
                "len {len}: stopped too early at {skipped}"
            );
        }
        // Bytes 0x20..=0x7f other than the specials and UTF-8 are skipped.
        let plain: Vec<u8> = (0x20u8..0x80)
            .filter(|&c| c != b'"' && c != b'\\')
            .collect();
        assert_eq!(skip_plain_swar(&plain), plain.len() / 8 * 8);
        assert_eq!(skip_plain_swar(&[0xe2; 16]), 16);
    }
}
