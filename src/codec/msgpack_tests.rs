use serde_json::{json, Value};

use super::*;
use crate::codec::Serializer;

/// Builds MessagePack by hand, so tests state the exact bytes a server sends.
#[derive(Default)]
struct Pack(Vec<u8>);

impl Pack {
    fn arr(mut self, n: u32) -> Self {
        rmp::encode::write_array_len(&mut self.0, n).expect("vec");
        self
    }
    fn map(mut self, n: u32) -> Self {
        rmp::encode::write_map_len(&mut self.0, n).expect("vec");
        self
    }
    fn s(mut self, s: &str) -> Self {
        rmp::encode::write_str(&mut self.0, s).expect("vec");
        self
    }
    fn nil(mut self) -> Self {
        rmp::encode::write_nil(&mut self.0).expect("vec");
        self
    }
    fn uint(mut self, n: u64) -> Self {
        rmp::encode::write_uint(&mut self.0, n).expect("vec");
        self
    }
    fn sint(mut self, n: i64) -> Self {
        rmp::encode::write_sint(&mut self.0, n).expect("vec");
        self
    }
    fn bin(mut self, b: &[u8]) -> Self {
        rmp::encode::write_bin(&mut self.0, b).expect("vec");
        self
    }
    fn raw(mut self, b: &[u8]) -> Self {
        self.0.extend_from_slice(b);
        self
    }
    fn ext(mut self, ty: i8, body: &[u8]) -> Self {
        rmp::encode::write_ext_meta(&mut self.0, body.len() as u32, ty).expect("vec");
        self.0.extend_from_slice(body);
        self
    }
    /// `[join_ref, ref, topic, event,` of a server push; the payload follows.
    fn push(event: &str) -> Self {
        Pack::default().arr(5).nil().s("3").s("device").s(event)
    }
    fn frame(self) -> Frame {
        Frame::Binary(self.0)
    }
}

fn message(frame: &Frame) -> Message {
    match decode_server(frame).expect("decodes") {
        Inbound::Message(m) => m,
        other => panic!("not a message: {other:?}"),
    }
}

fn payload_of(frame: &Frame) -> Value {
    message(frame).payload.to_value().expect("JSON payload")
}

fn decode_err(frame: &Frame) -> String {
    decode_server(frame).expect_err("must fail").0
}

fn msg(topic: &str, event: &str, payload: Value) -> Message {
    Message {
        join_ref: Some("1".into()),
        msg_ref: Some("2".into()),
        topic: topic.into(),
        event: event.into(),
        payload: Payload::json(&payload),
    }
}

#[test]
fn a_client_message_is_the_five_element_array_in_a_binary_frame() {
    let m = msg("device", "status_update", json!({"status": "received"}));
    let Frame::Binary(bytes) = encode_client(&m).expect("encodes") else {
        panic!("MessagePack goes in binary frames");
    };
    let want = Pack::default()
        .arr(5)
        .s("1")
        .s("2")
        .s("device")
        .s("status_update")
        .map(1)
        .s("status")
        .s("received");
    assert_eq!(bytes, want.0);
    assert_eq!(
        decode_client(&Frame::Binary(bytes)).expect("server reads it"),
        m
    );
}

#[test]
fn a_heartbeat_keeps_its_null_join_ref() {
    let hb = Message {
        join_ref: None,
        msg_ref: Some("7".into()),
        topic: "phoenix".into(),
        event: "heartbeat".into(),
        payload: Payload::empty(),
    };
    let Frame::Binary(bytes) = encode_client(&hb).expect("encodes") else {
        panic!("binary");
    };
    let want = Pack::default()
        .arr(5)
        .nil()
        .s("7")
        .s("phoenix")
        .s("heartbeat")
        .map(0);
    assert_eq!(bytes, want.0);
}

#[test]
fn integer_refs_become_text_as_on_the_server() {
    let frame = Pack::default()
        .arr(5)
        .uint(1)
        .sint(-2)
        .s("device")
        .s("ping")
        .map(0)
        .frame();
    let m = decode_client(&frame).expect("decodes");
    assert_eq!(
        (m.join_ref.as_deref(), m.msg_ref.as_deref()),
        (Some("1"), Some("-2"))
    );
    let frame = Pack::default()
        .arr(5)
        .uint(u64::MAX)
        .nil()
        .s("device")
        .s("ping")
        .map(0)
        .frame();
    assert_eq!(
        message(&frame).join_ref.as_deref(),
        Some("18446744073709551615")
    );
}

#[test]
fn replies_carry_status_and_response() {
    let frame = Pack::default()
        .arr(5)
        .s("1")
        .uint(2)
        .s("device")
        .s("phx_reply")
        .map(3)
        .s("status")
        .s("ok")
        .s("extra")
        .arr(1)
        .nil()
        .s("response")
        .map(1)
        .s("a")
        .uint(1)
        .frame();
    let Inbound::Reply {
        join_ref,
        msg_ref,
        topic,
        reply,
    } = decode_server(&frame).expect("decodes")
    else {
        panic!("a reply");
    };
    assert_eq!(
        (join_ref.as_deref(), msg_ref.as_deref(), topic.as_str()),
        (Some("1"), Some("2"), "device")
    );
    assert!(reply.is_ok());
    assert_eq!(reply.response.to_value(), Some(json!({"a": 1})));

    // No response, or nil, reads as {} like the JSON serializer's.
    for body in [
        Pack::default().map(1).s("status").s("error"),
        Pack::default()
            .map(2)
            .s("status")
            .s("error")
            .s("response")
            .nil(),
    ] {
        let frame = Pack::default()
            .arr(5)
            .nil()
            .s("9")
            .s("t")
            .s("phx_reply")
            .raw(&body.0)
            .frame();
        let Inbound::Reply { reply, .. } = decode_server(&frame).expect("decodes") else {
            panic!("a reply");
        };
        assert_eq!(reply.status, "error");
        assert_eq!(reply.response.to_value(), Some(json!({})));
    }

    let no_status = Pack::default()
        .arr(5)
        .nil()
        .s("9")
        .s("t")
        .s("phx_reply")
        .map(0)
        .frame();
    assert!(decode_err(&no_status).contains("no status"));
    let not_map = Pack::default()
        .arr(5)
        .nil()
        .s("9")
        .s("t")
        .s("phx_reply")
        .s("ok")
        .frame();
    assert!(decode_err(&not_map).contains("not a {status, response} map"));
}

#[test]
fn server_encoding_reads_back_on_the_client() {
    let reply = Reply {
        status: "ok".into(),
        response: Payload::json(&json!({"x": [1, 2.5, null, true, "s"]})),
    };
    let frame = encode_server_reply(Some("1"), Some("4"), "console", &reply).expect("encodes");
    assert_eq!(
        decode_server(&frame).expect("decodes"),
        Inbound::Reply {
            join_ref: Some("1".into()),
            msg_ref: Some("4".into()),
            topic: "console".into(),
            reply,
        }
    );
    let push = Message {
        join_ref: None,
        msg_ref: None,
        topic: "device".into(),
        event: "update".into(),
        payload: Payload::json(&json!({"firmware_url": "https://x/fw", "size": 1_u64 << 40})),
    };
    let frame = encode_server_message(&push).expect("encodes");
    assert_eq!(
        decode_server(&frame).expect("decodes"),
        Inbound::Message(push)
    );
}

#[test]
fn binaries_map_to_tagged_base64_and_a_whole_binary_payload_stays_binary() {
    let frame = Pack::push("x")
        .map(2)
        .s("b")
        .bin(&[0, 1, 0xfe, 0xff])
        .s("s")
        .raw(&[0xa2, 0xc3, 0x28])
        .frame();
    assert_eq!(
        payload_of(&frame),
        json!({"b": {"$binary": "AAH+/w=="}, "s": {"$binary": "wyg="}})
    );
    let frame = Pack::push("x").bin(b"\x00raw").frame();
    assert_eq!(
        message(&frame).payload,
        Payload::Binary(b"\x00raw".to_vec())
    );
    // ...and goes back out as `bin`.
    let out = msg("console", "file_data", json!(null));
    let out = Message {
        payload: Payload::Binary(vec![1, 2]),
        ..out
    };
    let Frame::Binary(bytes) = encode_client(&out).expect("encodes") else {
        panic!("binary")
    };
    assert!(bytes.ends_with(&[0xc4, 2, 1, 2]), "{bytes:?}");
}

#[test]
fn timestamps_map_to_rfc3339_text() {
    // 2026-08-12T01:02:03.456789Z in the 64-bit form.
    let body = ((456_789_000u64 << 34) | 1_786_496_523).to_be_bytes();
    let frame = Pack::push("x").map(1).s("t").ext(-1, &body).frame();
    assert_eq!(
        payload_of(&frame),
        json!({"t": "2026-08-12T01:02:03.456789Z"})
    );
    let frame = Pack::push("x").ext(-1, &[0, 0, 0, 0]).frame();
    assert_eq!(payload_of(&frame), json!("1970-01-01T00:00:00.000000Z"));
    let bad = Pack::push("x").ext(-1, &[0; 3]).frame();
    assert!(decode_err(&bad).contains("timestamp extension of 3 bytes"));
    let mut body = vec![0, 0, 0, 0];
    body.extend_from_slice(&253_402_300_800i64.to_be_bytes());
    let year_10000 = Pack::push("x").ext(-1, &body).frame();
    assert!(
        decode_err(&year_10000).contains("0000..=9999"),
        "{}",
        decode_err(&year_10000)
    );
}

#[test]
fn other_extensions_keep_type_and_bytes() {
    let frame = Pack::push("x").ext(5, &[9, 8, 7]).frame();
    assert_eq!(
        payload_of(&frame),
        json!({"$ext": {"type": 5, "data": "CQgH"}})
    );
}

#[test]
fn numbers_keep_their_value() {
    let frame = Pack::push("x")
        .arr(5)
        .uint(u64::MAX)
        .sint(i64::MIN)
        .raw(&[0xca])
        .raw(&0.1f32.to_be_bytes())
        .raw(&[0xcb])
        .raw(&1e300f64.to_be_bytes())
        .raw(&[0xcb])
        .raw(&(-0.5f64).to_be_bytes())
        .frame();
    assert_eq!(
        message(&frame).payload.json_text(),
        Some("[18446744073709551615,-9223372036854775808,0.1,1e+300,-0.5]")
    );
    for bad in [f64::NAN, f64::INFINITY] {
        let frame = Pack::push("x").raw(&[0xcb]).raw(&bad.to_be_bytes()).frame();
        assert!(decode_err(&frame).contains("no JSON form"));
    }
}

#[test]
fn map_keys_are_text_or_integers() {
    let frame = Pack::push("x")
        .map(2)
        .uint(1)
        .s("a")
        .sint(-1)
        .s("b")
        .frame();
    assert_eq!(payload_of(&frame), json!({"1": "a", "-1": "b"}));
    let frame = Pack::push("x").map(1).nil().s("a").frame();
    assert!(decode_err(&frame).contains("map key is neither text nor an integer"));
    let frame = Pack::push("x").map(1).raw(&[0xa1, 0xff]).s("a").frame();
    assert!(decode_err(&frame).contains("map key is not UTF-8"));
}

#[test]
fn strings_escape_into_valid_json() {
    let frame = Pack::push("x")
        .s("quote \" back \\ nl \n nul \u{0} é")
        .frame();
    let m = message(&frame);
    assert_eq!(
        m.payload.to_value(),
        Some(json!("quote \" back \\ nl \n nul \u{0} é"))
    );
}

#[test]
fn the_health_report_timestamp_goes_out_as_a_timestamp() {
    let report = json!({"value": {"timestamp": "2026-08-12T01:02:03.456789Z", "metrics": {"cpu_usage_percent": 12.5}}});
    let Frame::Binary(bytes) =
        encode_client(&msg("extensions", "health:report", report.clone())).expect("encodes")
    else {
        panic!("binary");
    };
    let mut ts = vec![0xd7, 0xff];
    ts.extend_from_slice(&((456_789_000u64 << 34) | 1_786_496_523).to_be_bytes());
    assert!(
        bytes.windows(ts.len()).any(|w| w == ts),
        "fixext8 -1 expected in {bytes:x?}"
    );
    // The server (and our dev server) read it back as the same text.
    let back = decode_client(&Frame::Binary(bytes)).expect("decodes");
    assert_eq!(back.payload.to_value(), Some(report.clone()));

    // Elsewhere, and when it is not a time, a string stays a string.
    for m in [
        msg("extensions", "logging:send", report.clone()),
        msg("device", "health:report", report),
        msg(
            "extensions",
            "health:report",
            json!({"value": {"timestamp": "yesterday"}}),
        ),
        msg(
            "extensions",
            "health:report",
            json!({"timestamp": "2026-08-12T01:02:03Z"}),
        ),
    ] {
        let Frame::Binary(bytes) = encode_client(&m).expect("encodes") else {
            panic!("binary")
        };
        assert!(
            !bytes
                .windows(2)
                .any(|w| w == [0xd7, 0xff] || w == [0xd6, 0xff]),
            "{m:?}"
        );
        assert_eq!(decode_client(&Frame::Binary(bytes)).expect("decodes"), m);
    }
}

#[test]
fn malformed_frames_are_clear_errors() {
    let cases: Vec<(Frame, &str)> = vec![
        (
            Frame::Text("[null,\"1\",\"phoenix\",\"phx_reply\",{}]".into()),
            "text frame under vsn 3.0.0",
        ),
        (Frame::Binary(vec![]), "truncated"),
        (
            Pack::default().arr(4).nil().nil().s("t").s("e").frame(),
            "got 4 elements",
        ),
        (Pack::default().map(0).frame(), "5-element array"),
        (
            Pack::default()
                .arr(5)
                .nil()
                .nil()
                .uint(1)
                .s("e")
                .map(0)
                .frame(),
            "topic is not a string",
        ),
        (
            Pack::default()
                .arr(5)
                .nil()
                .nil()
                .s("t")
                .raw(&[0xa1, 0xff])
                .map(0)
                .frame(),
            "event is not UTF-8",
        ),
        (
            Pack::default()
                .arr(5)
                .raw(&[0xc3])
                .nil()
                .s("t")
                .s("e")
                .map(0)
                .frame(),
            "join_ref is not nil",
        ),
        (
            Pack::push("e").map(0).nil().frame(),
            "bytes after the message",
        ),
        (Pack::push("e").raw(&[0xc1]).frame(), "0xc1 is never used"),
        (
            Pack::push("e")
                .raw(&[0xdb, 0xff, 0xff, 0xff, 0xff, b'a'])
                .frame(),
            "truncated",
        ),
        (
            Pack::push("e")
                .raw(&[0xdd, 0xff, 0xff, 0xff, 0xff, 0xc0])
                .frame(),
            "truncated",
        ),
        (
            Pack::push("e").raw(&[0x91; 200]).frame(),
            "nested deeper than 127",
        ),
    ];
    for (frame, want) in cases {
        let e = decode_err(&frame);
        assert!(e.contains(want), "{frame:?}: {e:?} lacks {want:?}");
        assert!(
            e.starts_with("MessagePack: ") || want.contains("text frame"),
            "{e}"
        );
        if let Frame::Binary(_) = frame {
            assert!(decode_client(&frame).is_err());
        }
    }
    assert!(decode_client(&Frame::Text("[]".into()))
        .unwrap_err()
        .0
        .contains("binary frames only"));
}

#[test]
fn deep_but_allowed_nesting_decodes() {
    let mut p = Pack::push("e");
    for _ in 0..127 {
        p = p.arr(1);
    }
    let frame = p.nil().frame();
    let payload = message(&frame).payload;
    assert_eq!(payload.json_text().map(str::len), Some(127 * 2 + 4));
    // serde_json (and so Python and the device layer) reads it back.
    assert!(payload.to_value().is_some());
}

#[test]
fn the_serializer_dispatches_to_msgpack() {
    let m = msg(
        "device",
        "fwup_progress",
        json!({"value": 50, "stage": "updating"}),
    );
    let frame = Serializer::MsgPack.encode_client(&m).expect("encodes");
    assert!(matches!(frame, Frame::Binary(_)));
    assert_eq!(
        Serializer::MsgPack.decode_client(&frame).expect("decodes"),
        m
    );
    assert!(matches!(
        Serializer::Json.encode_client(&m),
        Ok(Frame::Text(_))
    ));
}

#[test]
fn a_float64_survives_json_text_and_back_bit_for_bit() {
    // Found by the codec_msgpack fuzzer: the payload reaches the application
    // as JSON text with the shortest decimal that names this float, and
    // parsing that text back (to send it again) must give the same bits.
    // serde_json's default parser may be off by one unit in the last place;
    // the workspace enables its `float_roundtrip`.
    let original = f64::from_bits(0x0868_ffff_ff0b_a162);
    let mut bytes = Vec::new();
    rmp::encode::write_f64(&mut bytes, original).expect("vec");
    let frame = Pack::push("health:report")
        .map(1)
        .s("n")
        .raw(&bytes)
        .frame();
    let received = message(&frame);
    let Frame::Binary(sent) = encode_client(&received).expect("encodes") else {
        panic!("binary frame");
    };
    let again = decode_client(&Frame::Binary(sent)).expect("decodes");
    let value = again.payload.to_value().expect("JSON payload");
    let n = value["n"].as_f64().expect("a number");
    assert_eq!(n.to_bits(), original.to_bits(), "{n:e} != {original:e}");
}
