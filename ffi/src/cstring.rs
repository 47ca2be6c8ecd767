//! Rust text as a C string.

use std::ffi::CString;

/// A C string for a callback. Text from the network may hold NUL
/// characters (`\u0000` in JSON); they are replaced so nothing is cut off.
pub(crate) fn to_cstring(s: &str) -> CString {
    CString::new(s).unwrap_or_else(|_| {
        let cleaned = s.replace('\0', "\u{FFFD}");
        CString::new(cleaned).unwrap_or_default()
    })
}
