//! Copies of device events for programs that keep one past its callback.

use std::ffi::CString;

use crate::boundary::{boundary_or, boundary_pure};
use crate::device_types::nhc_device_event;
use crate::kept::{self, copy_str, KeptPayload};
use crate::nhc_result;

/// An `nhc_device_event` followed by the storage its pointers point into.
#[repr(C)]
struct KeptDeviceEvent {
    event: nhc_device_event,
    /// reason, topic, event, url, uuid, version, checksum, script_ref, text.
    texts: [CString; 9],
    payload: KeptPayload,
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
        // SAFETY: `event` is NULL or valid, `out` NULL or writable (this function's contract).
        unsafe {
            kept::clone_into(event, out, |ev: &nhc_device_event| {
                // SAFETY (every `copy_str`): the strings of `ev` are NULL or NUL-terminated (the
                // caller's contract).
                let texts = [
                    copy_str(ev.reason),
                    copy_str(ev.topic),
                    copy_str(ev.event),
                    copy_str(ev.url),
                    copy_str(ev.uuid),
                    copy_str(ev.version),
                    copy_str(ev.checksum),
                    copy_str(ev.script_ref),
                    copy_str(ev.text),
                ];
                // SAFETY: `ev` is valid during this call (the caller's contract).
                let kept_payload = KeptPayload::copy(&ev.payload)?;
                // Its heap buffers do not move with the box, so this stays valid.
                let payload = kept_payload.view(ev.payload.is_binary);
                let mut kept = Box::new(KeptDeviceEvent {
                    event: nhc_device_event { payload, ..*ev },
                    texts,
                    payload: kept_payload,
                });
                // The heap buffers do not move with the box, so these stay valid.
                let [reason, topic, name, url, uuid, version, checksum, script_ref, text] =
                    &kept.texts;
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
                Ok(kept)
            })
        }
    })
}

/// Releases a copy made by `nhc_device_event_clone`; NULL is ignored.
/// Never pass an event received by a callback.
///
/// # Safety
/// `event` is NULL or from `nhc_device_event_clone`, freed once.
#[no_mangle]
pub unsafe extern "C" fn nhc_device_event_free(event: *mut nhc_device_event) {
    // SAFETY: `event` is NULL or from `nhc_device_event_clone`, freed once (the caller's
    // contract).
    boundary_or((), || unsafe {
        kept::free::<nhc_device_event, KeptDeviceEvent>(event)
    })
}
