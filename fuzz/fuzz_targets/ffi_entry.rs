//! The C entry points fed arbitrary bytes, as a C program could: socket
//! options with an arbitrary URL, header and parameter; a channel with an
//! arbitrary topic and join parameters; pushes with arbitrary JSON and
//! binary payloads and an arbitrary event. Nothing connects, so every call
//! either succeeds (the push waits in the outbound buffer) or returns a
//! defined error code; a panic (even one the boundary would catch) aborts
//! the fuzzer through libfuzzer-sys's panic hook.
#![no_main]

use std::ffi::{c_char, CString};
use std::ptr;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use nerves_hub_channel_ffi::*;

#[derive(Arbitrary, Debug)]
struct Input {
    url: Vec<u8>,
    header: (Vec<u8>, Vec<u8>),
    param: (Vec<u8>, Vec<u8>),
    topic: Vec<u8>,
    params_json: Option<Vec<u8>>,
    event: Vec<u8>,
    json: Vec<u8>,
    binary: Vec<u8>,
}

/// A NUL-terminated copy of `bytes`, cut at the first NUL as C would see it.
fn c_string(bytes: &[u8]) -> CString {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    CString::new(&bytes[..end]).unwrap_or_default()
}

fn no_reply() -> nhc_reply_closure {
    nhc_reply_closure {
        context: ptr::null_mut(),
        call: None,
        drop: None,
    }
}

fuzz_target!(|input: Input| unsafe {
    let url = c_string(&input.url);
    let (hk, hv) = (c_string(&input.header.0), c_string(&input.header.1));
    let (pk, pv) = (c_string(&input.param.0), c_string(&input.param.1));
    let header = nhc_key_value {
        key: hk.as_ptr(),
        value: hv.as_ptr(),
    };
    let param = nhc_key_value {
        key: pk.as_ptr(),
        value: pv.as_ptr(),
    };
    let mut opts = std::mem::MaybeUninit::<nhc_socket_options>::uninit();
    let size = std::mem::size_of::<nhc_socket_options>();
    assert_eq!(
        nhc_socket_options_init(opts.as_mut_ptr(), size),
        nhc_result::NHC_OK
    );
    let mut opts = opts.assume_init();
    opts.url = url.as_ptr();
    opts.headers = &header;
    opts.headers_len = 1;
    opts.params = &param;
    opts.params_len = 1;
    opts.reconnect = false.into();

    let mut sock = ptr::null_mut();
    if nhc_socket_new(&opts, &mut sock) != nhc_result::NHC_OK {
        assert!(sock.is_null());
        return;
    }
    let topic = c_string(&input.topic);
    let params = input.params_json.as_deref().map(c_string);
    let params_ptr = params.as_ref().map_or(ptr::null(), |p| p.as_ptr());
    let mut ch = ptr::null_mut();
    if nhc_channel_new(sock, topic.as_ptr(), params_ptr, &mut ch) == nhc_result::NHC_OK {
        let event = c_string(&input.event);
        let json = input.json.as_ptr().cast::<c_char>();
        let _ = nhc_channel_push(ch, event.as_ptr(), json, input.json.len(), 1, no_reply());
        let bin = input.binary.as_ptr();
        let _ = nhc_channel_push_binary(ch, event.as_ptr(), bin, input.binary.len(), 1, no_reply());
        nhc_channel_free(ch);
    }
    nhc_socket_free(sock);
});
