use super::*;
use serde_json::json;

fn msg(join_ref: Option<&str>, msg_ref: Option<&str>, payload: Payload) -> Message {
    Message {
        join_ref: join_ref.map(str::to_owned),
        msg_ref: msg_ref.map(str::to_owned),
        topic: "room:1".into(),
        event: "new_msg".into(),
        payload,
    }
}

#[test]
fn json_push_encodes_as_v2_array() {
    let m = msg(Some("1"), Some("2"), Payload::json(&json!({"body": "hi"})));
    let Frame::Text(text) = encode_client(&m).unwrap() else {
        panic!("expected text")
    };
    assert_eq!(text, r#"["1","2","room:1","new_msg",{"body":"hi"}]"#);
    assert_eq!(decode_client(&Frame::Text(text)).unwrap(), m);
}

#[test]
fn heartbeat_has_null_join_ref() {
    let m = Message {
        join_ref: None,
        msg_ref: Some("7".into()),
        topic: "phoenix".into(),
        event: "heartbeat".into(),
        payload: Payload::empty(),
    };
    assert_eq!(
        encode_client(&m).unwrap(),
        Frame::Text(r#"[null,"7","phoenix","heartbeat",{}]"#.into())
    );
}

#[test]
fn strings_needing_escapes_round_trip() {
    let mut m = msg(Some("1"), None, Payload::empty());
    m.topic = "a\"b\\c\n".into();
    let frame = encode_client(&m).unwrap();
    assert_eq!(decode_client(&frame).unwrap().topic, "a\"b\\c\n");
}

#[test]
fn json_reply_is_decoded_into_status_and_response() {
    let text = r#"["1","3","room:1","phx_reply",{"status":"error","response":{"reason":"nope"}}]"#;
    let Inbound::Reply {
        join_ref,
        msg_ref,
        topic,
        reply,
    } = decode_server(&Frame::Text(text.into())).unwrap()
    else {
        panic!("expected reply")
    };
    assert_eq!(
        (join_ref.as_deref(), msg_ref.as_deref(), topic.as_str()),
        (Some("1"), Some("3"), "room:1")
    );
    assert_eq!(reply.status, "error");
    assert_eq!(reply.response.to_value(), Some(json!({"reason": "nope"})));
}

#[test]
fn server_reply_encoding_round_trips_json_and_binary() {
    for response in [
        Payload::json(&json!({"a": 1})),
        Payload::Binary(vec![0, 1, 255]),
    ] {
        let reply = Reply {
            status: "ok".into(),
            response,
        };
        let frame = encode_server_reply(Some("4"), Some("5"), "t", &reply).unwrap();
        let decoded = decode_server(&frame).unwrap();
        assert_eq!(
            decoded,
            Inbound::Reply {
                join_ref: Some("4".into()),
                msg_ref: Some("5".into()),
                topic: "t".into(),
                reply
            }
        );
    }
}

#[test]
fn binary_client_push_has_five_byte_header() {
    let m = msg(Some("1"), Some("2"), Payload::Binary(vec![9, 8]));
    let Frame::Binary(bytes) = encode_client(&m).unwrap() else {
        panic!("expected binary")
    };
    assert_eq!(&bytes[..5], &[0, 1, 1, 6, 7]);
    assert_eq!(&bytes[bytes.len() - 2..], &[9, 8]);
    assert_eq!(decode_client(&Frame::Binary(bytes)).unwrap(), m);
}

#[test]
fn binary_server_push_and_broadcast_round_trip() {
    let push = msg(Some("1"), None, Payload::Binary(vec![1, 2, 3]));
    let frame = encode_server_message(&push).unwrap();
    assert!(matches!(&frame, Frame::Binary(b) if b[0] == 0 && b[1..4] == [1, 6, 7]));
    assert_eq!(decode_server(&frame).unwrap(), Inbound::Message(push));

    let broadcast = msg(None, None, Payload::Binary(vec![]));
    let frame = encode_server_message(&broadcast).unwrap();
    assert!(matches!(&frame, Frame::Binary(b) if b[0] == 2));
    assert_eq!(decode_server(&frame).unwrap(), Inbound::Message(broadcast));
}

#[test]
fn malformed_frames_are_errors() {
    let bad_text = [
        "",
        "[]",
        "{}",
        "[1,2,3,4,5]",
        r#"["1","2","t","e"]"#,
        r#"["1","2","t","e",{]"#,
        r#"[null,"1","t","phx_reply",{"response":{}}]"#,
    ];
    for text in bad_text {
        assert!(
            decode_server(&Frame::Text(text.into())).is_err(),
            "{text:?} decoded"
        );
    }
    let bad_binary: [&[u8]; 6] = [
        &[],
        &[7],
        &[0, 1],
        &[0, 5, 1, 1, b'a'],
        &[1, 0, 0, 1, 0, 0xff],
        &[2, 2, 0, 0xc3, 0x28],
    ];
    for bytes in bad_binary {
        assert!(
            decode_server(&Frame::Binary(bytes.to_vec())).is_err(),
            "{bytes:?} decoded"
        );
    }
    assert!(decode_client(&Frame::Binary(vec![1, 0, 0, 0, 0])).is_err());
}

#[test]
fn oversized_binary_header_field_is_an_error() {
    let mut m = msg(Some("1"), Some("2"), Payload::Binary(vec![]));
    m.topic = "x".repeat(256);
    assert!(encode_client(&m).unwrap_err().0.contains("255"));
}
