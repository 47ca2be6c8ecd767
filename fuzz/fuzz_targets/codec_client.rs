//! Frames the dev server receives from clients (`decode_client`): whatever
//! decodes must re-encode, and the re-encoded frame must decode to the same
//! message (the codec is its own inverse).
#![no_main]

use libfuzzer_sys::fuzz_target;
use nerves_hub_channel::codec::{decode_client, encode_client, Frame};

fuzz_target!(|data: &[u8]| {
    let Some((&kind, rest)) = data.split_first() else {
        return;
    };
    let frame = if kind & 1 == 0 {
        match std::str::from_utf8(rest) {
            Ok(text) => Frame::Text(text.to_owned()),
            Err(_) => return,
        }
    } else {
        Frame::Binary(rest.to_vec())
    };
    let Ok(msg) = decode_client(&frame) else {
        return;
    };
    if let Ok(again) = encode_client(&msg) {
        let back = decode_client(&again).expect("a frame we encoded must decode");
        assert_eq!(back, msg, "encode/decode round trip changed the message");
    }
});
