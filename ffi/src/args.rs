//! Reading arguments from C (checked, copied); `to_cstring` (from
//! `cstring.rs`) for the C strings callbacks get.

use std::ffi::{c_char, CStr};

use nerves_hub_channel::Payload;

use crate::error::{invalid, FfiResult};

/// A required NUL-terminated UTF-8 string.
///
/// # Safety
/// `ptr` is NULL or points to a NUL-terminated string that stays valid for `'a`.
pub(crate) unsafe fn str_arg<'a>(ptr: *const c_char, name: &str) -> FfiResult<&'a str> {
    if ptr.is_null() {
        return Err(invalid(format!("{name} is NULL")));
    }
    // SAFETY: `ptr` is not NULL (checked above) and NUL-terminated, valid for `'a` (the caller's
    // contract).
    unsafe { CStr::from_ptr(ptr) }
        .to_str()
        .map_err(|e| invalid(format!("{name} is not valid UTF-8 ({e})")))
}

/// An optional string: NULL means absent.
///
/// # Safety
/// As for `str_arg`.
pub(crate) unsafe fn opt_str_arg<'a>(ptr: *const c_char, name: &str) -> FfiResult<Option<&'a str>> {
    if ptr.is_null() {
        Ok(None)
    } else {
        // SAFETY: `ptr` is NULL or a NUL-terminated string (the caller's contract).
        unsafe { str_arg(ptr, name) }.map(Some)
    }
}

/// `len` bytes at `ptr`; NULL with length 0 is the empty slice.
///
/// # Safety
/// `ptr` is NULL or points to `len` readable bytes valid for `'a`.
pub(crate) unsafe fn bytes_arg<'a>(ptr: *const u8, len: usize, name: &str) -> FfiResult<&'a [u8]> {
    if ptr.is_null() {
        if len == 0 {
            return Ok(&[]);
        }
        return Err(invalid(format!("{name} is NULL but its length is {len}")));
    }
    // SAFETY: `ptr` is not NULL (checked above) and points to `len` bytes valid for `'a` (the
    // caller's contract).
    Ok(unsafe { std::slice::from_raw_parts(ptr, len) })
}

/// JSON text given as pointer + length (not NUL-terminated); NULL with
/// length 0 means `{}`. Validated so that the server never sees bad JSON.
///
/// # Safety
/// As for `bytes_arg`.
pub(crate) unsafe fn json_arg(ptr: *const c_char, len: usize, name: &str) -> FfiResult<Payload> {
    if ptr.is_null() && len == 0 {
        return Ok(Payload::empty());
    }
    // SAFETY: `ptr.cast()` is NULL or points to `len` readable bytes (the caller's contract).
    json_payload(unsafe { bytes_arg(ptr.cast(), len, name) }?, name)
}

pub(crate) fn json_payload(bytes: &[u8], name: &str) -> FfiResult<Payload> {
    let text = std::str::from_utf8(bytes)
        .map_err(|e| invalid(format!("{name} is not valid UTF-8 ({e})")))?;
    Payload::from_json_text(text).map_err(|e| invalid(format!("{name} is not valid JSON ({e})")))
}

pub(crate) use crate::cstring::to_cstring;

/// A timeout in milliseconds where 0 means "the socket's default".
pub(crate) fn timeout_arg(ms: u32) -> Option<std::time::Duration> {
    (ms > 0).then(|| std::time::Duration::from_millis(u64::from(ms)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nhc_result;

    fn code(r: FfiResult<Payload>) -> nhc_result {
        r.map(|_| nhc_result::NHC_OK).unwrap_or_else(|e| e.code())
    }

    #[test]
    fn json_is_validated() {
        // SAFETY: pointers and lengths come from live slices.
        unsafe {
            let ok = json_arg(b"{\"a\":[1,2]}".as_ptr().cast(), 11, "json").unwrap();
            assert_eq!(ok.json_text(), Some("{\"a\":[1,2]}"));
            assert_eq!(
                json_arg(std::ptr::null(), 0, "json").unwrap().json_text(),
                Some("{}")
            );
            let invalid = nhc_result::NHC_ERR_INVALID_ARGUMENT;
            assert_eq!(code(json_arg(std::ptr::null(), 3, "json")), invalid);
            assert_eq!(code(json_arg(b"{".as_ptr().cast(), 1, "json")), invalid);
            assert_eq!(
                code(json_arg(b"\"\xff\"".as_ptr().cast(), 3, "json")),
                invalid
            );
        }
    }

    #[test]
    fn strings_for_c_never_lose_text() {
        assert_eq!(to_cstring("a\0b").to_str().unwrap(), "a\u{FFFD}b");
        assert_eq!(to_cstring("plain").as_bytes(), b"plain");
    }

    #[test]
    fn zero_timeout_means_default() {
        assert_eq!(timeout_arg(0), None);
        assert_eq!(
            timeout_arg(1500),
            Some(std::time::Duration::from_millis(1500))
        );
    }
}
