//! Copies of callback data for programs that keep an event past its call.

use std::ffi::{c_char, CStr, CString};

use crate::boundary::{boundary_or, boundary_pure};
use crate::error::invalid;
use crate::nhc_result;
use crate::types::{nhc_event, nhc_payload};

/// An `nhc_event` followed by the storage its pointers point into.
#[repr(C)]
struct KeptEvent {
    event: nhc_event,
    topic: CString,
    name: CString,
    json: CString,
    binary: Vec<u8>,
    reason: CString,
}

unsafe fn copy_str(ptr: *const c_char) -> CString {
    if ptr.is_null() {
        CString::default()
    } else {
        // SAFETY: `ptr` is not NULL (checked above) and NUL-terminated: every string of an event
        // given to a callback is.
        unsafe { CStr::from_ptr(ptr) }.to_owned()
    }
}

/// Makes a copy of `event` (as received by an `nhc_event_closure`) that
/// stays valid until `nhc_event_free`, on any thread. On success `*out`
/// receives it.
///
/// Errors: `NHC_ERR_INVALID_ARGUMENT` (NULL), `NHC_ERR_FORKED`, `NHC_ERR_PANIC`.
///
/// # Safety
/// `event` is NULL or a valid event (for example inside the callback);
/// `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn nhc_event_clone(
    event: *const nhc_event,
    out: *mut *mut nhc_event,
) -> nhc_result {
    boundary_pure(|| {
        // SAFETY: `event` is NULL or an event valid during this call (this function's contract).
        let ev = unsafe { event.as_ref() }.ok_or_else(|| invalid("event is NULL"))?;
        if out.is_null() {
            return Err(invalid("out is NULL"));
        }
        let p = &ev.payload;
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
        let mut kept = Box::new(KeptEvent {
            event: nhc_event {
                kind: ev.kind,
                topic: std::ptr::null(),
                event: std::ptr::null(),
                payload: nhc_payload {
                    is_binary: p.is_binary,
                    json: std::ptr::null(),
                    json_len: 0,
                    binary: std::ptr::null(),
                    binary_len: 0,
                },
                reason: std::ptr::null(),
                error: ev.error,
                push_id: ev.push_id,
            },
            // SAFETY: `ev.topic` is NULL or a NUL-terminated string (the caller's contract).
            topic: unsafe { copy_str(ev.topic) },
            // SAFETY: `ev.event` is NULL or a NUL-terminated string (the caller's contract).
            name: unsafe { copy_str(ev.event) },
            json,
            binary,
            // SAFETY: `ev.reason` is NULL or a NUL-terminated string (the caller's contract).
            reason: unsafe { copy_str(ev.reason) },
        });
        // The heap buffers do not move with the box, so these stay valid.
        let empty: &'static [u8] = b"";
        kept.event.topic = kept.topic.as_ptr();
        kept.event.event = kept.name.as_ptr();
        kept.event.reason = kept.reason.as_ptr();
        kept.event.payload.json = kept.json.as_ptr();
        kept.event.payload.json_len = kept.json.as_bytes().len();
        kept.event.payload.binary = if kept.binary.is_empty() {
            empty.as_ptr()
        } else {
            kept.binary.as_ptr()
        };
        kept.event.payload.binary_len = kept.binary.len();
        // SAFETY: `out` is valid for writes (the caller's contract; NULL was refused above).
        unsafe { *out = Box::into_raw(kept).cast::<nhc_event>() };
        Ok(())
    })
}

/// Releases a copy made by `nhc_event_clone`; NULL is ignored. Never pass
/// an event received by a callback.
///
/// # Safety
/// `event` is NULL or from `nhc_event_clone`, freed once.
#[no_mangle]
pub unsafe extern "C" fn nhc_event_free(event: *mut nhc_event) {
    boundary_or((), || {
        if !event.is_null() {
            // SAFETY: `event` is not NULL (checked above) and came from `nhc_event_clone`, freed
            // once (the caller's contract).
            drop(unsafe { Box::from_raw(event.cast::<KeptEvent>()) });
        }
    })
}
