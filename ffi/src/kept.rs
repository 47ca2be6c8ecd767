//! Copying an event that outlives its callback, for every event type:
//! `_clone` boxes the event followed by the storage its pointers point into
//! (strings and payload), `_free` releases that box. `keep.rs` and
//! `device_keep.rs` say only which strings their event has.

use std::ffi::{c_char, CStr, CString};

use crate::error::{invalid, FfiResult};
use crate::types::nhc_payload;

/// # Safety
/// `ptr` is NULL or NUL-terminated (every string of an event given to a callback is).
pub(crate) unsafe fn copy_str(ptr: *const c_char) -> CString {
    if ptr.is_null() {
        CString::default()
    } else {
        // SAFETY: `ptr` is not NULL (checked above) and NUL-terminated (the caller's contract).
        unsafe { CStr::from_ptr(ptr) }.to_owned()
    }
}

/// The storage of a copied payload.
pub(crate) struct KeptPayload {
    json: CString,
    binary: Vec<u8>,
}

impl KeptPayload {
    /// # Safety
    /// `p` is the payload of an event valid during this call.
    pub(crate) unsafe fn copy(p: &nhc_payload) -> FfiResult<KeptPayload> {
        let json = if p.json.is_null() || p.json_len == 0 {
            CString::default()
        } else {
            // SAFETY: an event's JSON is `json_len` readable bytes (the event's own invariant).
            let bytes = unsafe { std::slice::from_raw_parts(p.json.cast::<u8>(), p.json_len) };
            CString::new(bytes).map_err(|_| invalid("the event's JSON holds a NUL byte"))?
        };
        let binary = if p.binary.is_null() {
            Vec::new()
        } else {
            // SAFETY: an event's binary payload is `binary_len` readable bytes (the event's own
            // invariant).
            unsafe { std::slice::from_raw_parts(p.binary, p.binary_len) }.to_vec()
        };
        Ok(KeptPayload { json, binary })
    }

    /// The payload pointing into this storage (valid while it lives; its
    /// heap buffers do not move with the box holding it).
    pub(crate) fn view(&self, is_binary: bool) -> nhc_payload {
        let empty: &'static [u8] = b"";
        nhc_payload {
            is_binary,
            json: self.json.as_ptr(),
            json_len: self.json.as_bytes().len(),
            binary: if self.binary.is_empty() {
                empty.as_ptr()
            } else {
                self.binary.as_ptr()
            },
            binary_len: self.binary.len(),
        }
    }
}

/// The body of an `_clone` function: `copy` makes the box (whose first
/// field, `#[repr(C)]`, is the event) from the caller's event.
///
/// # Safety
/// `event` is NULL or a valid event; `out` is NULL or writable.
pub(crate) unsafe fn clone_into<E, K>(
    event: *const E,
    out: *mut *mut E,
    copy: impl FnOnce(&E) -> FfiResult<Box<K>>,
) -> FfiResult {
    // SAFETY: `event` is NULL or an event valid during this call (the caller's contract).
    let ev = unsafe { event.as_ref() }.ok_or_else(|| invalid("event is NULL"))?;
    if out.is_null() {
        return Err(invalid("out is NULL"));
    }
    let kept = copy(ev)?;
    // SAFETY: `out` is valid for writes (the caller's contract; NULL was refused above).
    unsafe { *out = Box::into_raw(kept).cast::<E>() };
    Ok(())
}

/// The body of an `_free` function.
///
/// # Safety
/// `event` is NULL or came from `clone_into` with the same `K`, freed once.
pub(crate) unsafe fn free<E, K>(event: *mut E) {
    if !event.is_null() {
        // SAFETY: `event` is not NULL (checked above) and is the first field of a `K` boxed by
        // `clone_into`, freed once (the caller's contract).
        drop(unsafe { Box::from_raw(event.cast::<K>()) });
    }
}
