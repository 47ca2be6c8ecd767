//! Frames a client receives: arbitrary text and binary frames must decode
//! or fail with a `CodecError`, never panic. The first byte picks the kind.
#![no_main]

use libfuzzer_sys::fuzz_target;
use nerves_hub_channel::codec::{decode_server, decode_server_binary, decode_server_text, Frame};

fuzz_target!(|data: &[u8]| {
    let Some((&kind, rest)) = data.split_first() else {
        return;
    };
    if kind & 1 == 0 {
        if let Ok(text) = std::str::from_utf8(rest) {
            let _ = decode_server_text(text);
            let _ = decode_server(&Frame::Text(text.to_owned()));
        }
    } else {
        let _ = decode_server_binary(rest);
        let _ = decode_server(&Frame::Binary(rest.to_vec()));
    }
});
