//! What C reads about results: `nhc_result_str` and `nhc_last_error_message`.

use std::ffi::c_char;

use crate::boundary::boundary_or;
use crate::error::last_error_ptr;

/// A static, NUL-terminated description of `code` (any integer is accepted;
/// unknown codes give "unknown error code"). Never NULL; never freed.
#[no_mangle]
pub extern "C" fn nhc_result_str(code: i32) -> *const c_char {
    boundary_or(c"?".as_ptr(), || result_text(code).as_ptr().cast())
}

fn result_text(code: i32) -> &'static [u8] {
    let text: &'static [u8] = match code {
        0 => b"success\0",
        -1 => b"invalid argument\0",
        -2 => b"TLS error\0",
        -3 => b"authentication refused by the server\0",
        -4 => b"the server refused the websocket upgrade\0",
        -5 => b"connection error\0",
        -6 => b"protocol error\0",
        -7 => b"timeout\0",
        -8 => b"closed\0",
        -9 => b"outbound buffer full\0",
        -10 => b"internal error (panic)\0",
        -11 => b"called after fork()\0",
        -12 => b"invalid state\0",
        -13 => b"HTTP proxy error\0",
        _ => b"unknown error code\0",
    };
    text
}

/// The detail of the last failure of an `nhc_` function on the calling
/// thread, NUL-terminated UTF-8; "" if the last function returning an
/// `nhc_result` succeeded. Never NULL.
/// Owned by the library: valid until the next `nhc_` call on this thread
/// returns, so it may be that call's argument (for example
/// `nhc_device_log(dev, level, nhc_last_error_message())`); copy it to keep
/// it longer. Calling this function does not change it.
#[no_mangle]
pub extern "C" fn nhc_last_error_message() -> *const c_char {
    boundary_or(c"".as_ptr(), last_error_ptr)
}
