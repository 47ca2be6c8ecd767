//! MessagePack frames (vsn 3.0.0) as a client and as the dev server receive
//! them: decoding never panics, every payload it yields is valid JSON, and a
//! message the server side decoded survives encode + decode unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nerves_hub_channel::codec::{Frame, Serializer};
use nerves_hub_channel::{Inbound, Payload};

const MP: Serializer = Serializer::MsgPack;

fn check_json(payload: &Payload) {
    if let Some(text) = payload.json_text() {
        serde_json::from_str::<serde_json::Value>(text)
            .unwrap_or_else(|e| panic!("decoded payload is not JSON ({e}): {text}"));
    }
}

fuzz_target!(|data: &[u8]| {
    let frame = Frame::Binary(data.to_vec());
    match MP.decode_server(&frame) {
        Ok(Inbound::Message(msg)) => check_json(&msg.payload),
        Ok(Inbound::Reply { reply, .. }) => check_json(&reply.response),
        Err(_) => {}
    }
    let Ok(msg) = MP.decode_client(&frame) else {
        return;
    };
    check_json(&msg.payload);
    let again = MP.encode_client(&msg).expect("a decoded message re-encodes");
    let back = MP.decode_client(&again).expect("a frame we encoded must decode");
    assert_eq!(back, msg, "encode/decode round trip changed the message");
});
