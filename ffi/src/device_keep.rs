//! Copies of device events for programs that keep one past its callback.

use std::ffi::{c_char, CStr, CString};

use crate::boundary::{boundary_or, boundary_pure};
use crate::device_types::nhc_device_event;
use crate::error::invalid;
use crate::nhc_result;
use crate::types::nhc_payload;

/// An `nhc_device_event` followed by the storage its pointers point into.
#[repr(C)]
struct KeptDeviceEvent {
    event: nhc_device_event,
    /// reason, topic, event, url, uuid, version, checksum, script_ref, text.
    texts: [CString; 9],
    json: CString,
    binary: Vec<u8>,
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

/// Makes a copy of `event` (as received by an `nhc_device_event_closure`)
/// that stays valid until `nhc_device_event_free`, on any thread. On
/// success `*out` receives it.
///
/// Errors: `NHC_ERR_INVALID_ARGUMENT` (NULL, or a JSON payload holding a
/// NUL byte), `NHC_ERR_PANIC`.
///
/// # Safety
/// `event` is NULL or a valid event (for example inside the callback);
/// `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn nhc_device_event_clone(
    event: *const nhc_device_event,
    out: *mut *mut nhc_device_event,
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
        let texts = [
            // SAFETY: `ev.reason` is NULL or a NUL-terminated string (the caller's contract).
            unsafe { copy_str(ev.reason) },
            // SAFETY: `ev.topic` is NULL or a NUL-terminated string (the caller's contract).
            unsafe { copy_str(ev.topic) },
            // SAFETY: `ev.event` is NULL or a NUL-terminated string (the caller's contract).
            unsafe { copy_str(ev.event) },
            // SAFETY: `ev.url` is NULL or a NUL-terminated string (the caller's contract).
            unsafe { copy_str(ev.url) },
            // SAFETY: `ev.uuid` is NULL or a NUL-terminated string (the caller's contract).
            unsafe { copy_str(ev.uuid) },
            // SAFETY: `ev.version` is NULL or a NUL-terminated string (the caller's contract).
            unsafe { copy_str(ev.version) },
            // SAFETY: `ev.checksum` is NULL or a NUL-terminated string (the caller's contract).
            unsafe { copy_str(ev.checksum) },
            // SAFETY: `ev.script_ref` is NULL or a NUL-terminated string (the caller's contract).
            unsafe { copy_str(ev.script_ref) },
            // SAFETY: `ev.text` is NULL or a NUL-terminated string (the caller's contract).
            unsafe { copy_str(ev.text) },
        ];
        let mut kept = Box::new(KeptDeviceEvent {
            event: nhc_device_event {
                payload: nhc_payload {
                    is_binary: p.is_binary,
                    json: std::ptr::null(),
                    json_len: 0,
                    binary: std::ptr::null(),
                    binary_len: 0,
                },
                ..*ev
            },
            texts,
            json,
            binary,
        });
        // The heap buffers do not move with the box, so these stay valid.
        let [reason, topic, name, url, uuid, version, checksum, script_ref, text] = &kept.texts;
        let e = &mut kept.event;
        e.reason = reason.as_ptr();
        e.topic = topic.as_ptr();
        e.event = name.as_ptr();
        e.url = url.as_ptr();
        e.uuid = uuid.as_ptr();
        e.version = version.as_ptr();
        e.checksum = checksum.as_ptr();
        e.script_ref = script_ref.as_ptr();
        e.text = text.as_ptr();
        e.text_len = text.as_bytes().len();
        let empty: &'static [u8] = b"";
        e.payload.json = kept.json.as_ptr();
        e.payload.json_len = kept.json.as_bytes().len();
        e.payload.binary = if kept.binary.is_empty() {
            empty.as_ptr()
        } else {
            kept.binary.as_ptr()
        };
        e.payload.binary_len = kept.binary.len();
        // SAFETY: `out` is valid for writes (the caller's contract; NULL was refused above).
        unsafe { *out = Box::into_raw(kept).cast::<nhc_device_event>() };
        Ok(())
    })
}

/// Releases a copy made by `nhc_device_event_clone`; NULL is ignored.
/// Never pass an event received by a callback.
///
/// # Safety
/// `event` is NULL or from `nhc_device_event_clone`, freed once.
#[no_mangle]
pub unsafe extern "C" fn nhc_device_event_free(event: *mut nhc_device_event) {
    boundary_or((), || {
        if !event.is_null() {
            // SAFETY: `event` is not NULL (checked above) and came from `nhc_device_event_clone`,
            // freed once (the caller's contract).
            drop(unsafe { Box::from_raw(event.cast::<KeptDeviceEvent>()) });
        }
    })
}
