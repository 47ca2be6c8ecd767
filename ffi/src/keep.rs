//! Copies of callback data for programs that keep an event past its call.

use std::ffi::CString;

use crate::boundary::{boundary_or, boundary_pure};
use crate::kept::{self, copy_str, KeptPayload};
use crate::nhc_result;
use crate::types::nhc_event;

/// An `nhc_event` followed by the storage its pointers point into.
#[repr(C)]
struct KeptEvent {
    event: nhc_event,
    topic: CString,
    name: CString,
    reason: CString,
    payload: KeptPayload,
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
        // SAFETY: `event` is NULL or valid, `out` NULL or writable (this function's contract).
        unsafe {
            kept::clone_into(event, out, |ev: &nhc_event| {
                // SAFETY: `ev` is valid during this call (the caller's contract).
                let kept_payload = KeptPayload::copy(&ev.payload)?;
                // Its heap buffers do not move with the box, so this stays valid.
                let payload = kept_payload.view(ev.payload.is_binary);
                let mut kept = Box::new(KeptEvent {
                    event: nhc_event { payload, ..*ev },
                    // SAFETY: the strings of `ev` are NULL or NUL-terminated (the caller's contract).
                    topic: copy_str(ev.topic),
                    name: copy_str(ev.event),
                    reason: copy_str(ev.reason),
                    payload: kept_payload,
                });
                kept.event.topic = kept.topic.as_ptr();
                kept.event.event = kept.name.as_ptr();
                kept.event.reason = kept.reason.as_ptr();
                Ok(kept)
            })
        }
    })
}

/// Releases a copy made by `nhc_event_clone`; NULL is ignored. Never pass
/// an event received by a callback.
///
/// # Safety
/// `event` is NULL or from `nhc_event_clone`, freed once.
#[no_mangle]
pub unsafe extern "C" fn nhc_event_free(event: *mut nhc_event) {
    // SAFETY: `event` is NULL or from `nhc_event_clone`, freed once (the caller's contract).
    boundary_or((), || unsafe { kept::free::<nhc_event, KeptEvent>(event) })
}
