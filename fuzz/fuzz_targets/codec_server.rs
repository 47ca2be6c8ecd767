//! Frames a client receives: arbitrary text and binary frames must decode
//! or fail with a `CodecError`, never panic. The first byte picks the kind.
//! Text frames also check the fast scanner against serde_json: the decoder
//! (scanner first, serde_json as fallback) must give exactly serde_json's
//! result, so the scanner never accepts what serde_json refuses.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nerves_hub_channel::codec::{
    decode_json_serde, decode_reply_body_serde, decode_server, decode_server_binary,
    decode_server_text, Frame,
};
use nerves_hub_channel::Inbound;

fuzz_target!(|data: &[u8]| {
    let Some((&kind, rest)) = data.split_first() else {
        return;
    };
    if kind & 1 == 0 {
        if let Ok(text) = std::str::from_utf8(rest) {
            let fast = decode_server_text(text);
            let _ = decode_server(&Frame::Text(text.to_owned()));
            let reference = decode_json_serde(text).and_then(|msg| {
                if msg.event != "phx_reply" {
                    return Ok(Inbound::Message(msg));
                }
                let body = msg.payload.json_text().unwrap_or_default();
                let reply = decode_reply_body_serde(body)?;
                Ok(Inbound::Reply {
                    join_ref: msg.join_ref,
                    msg_ref: msg.msg_ref,
                    topic: msg.topic,
                    reply,
                })
            });
            match (&fast, &reference) {
                (Ok(a), Ok(b)) => assert_eq!(format!("{a:?}"), format!("{b:?}"), "{text}"),
                (Err(_), Err(_)) => {}
                _ => panic!("scanner and serde_json disagree on {text:?}: {fast:?} vs {reference:?}"),
            }
        }
    } else {
        let _ = decode_server_binary(rest);
        let _ = decode_server(&Frame::Binary(rest.to_vec()));
    }
});
