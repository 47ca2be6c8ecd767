//! The device's callback structs: its event closure, the firmware-validated
//! question, and an update sink written in C.

use std::ffi::{c_char, c_int, c_void, CStr};

use nerves_hub_channel::nerves_hub::extensions::Location;

use crate::boundary::guard_callback;
use crate::closure::{closure_kind, Owned};
use crate::device_types::nhc_device_event;

/// Receives every event of a device (`nhc_device_event`), in order. The
/// rules of "Callbacks" at the top of this header apply, with the device in
/// place of the socket: calls never overlap; `drop` runs exactly once, after
/// the last call (in `nhc_device_free`, or after the running callback
/// returns when freed from inside it).
#[allow(non_camel_case_types)]
#[repr(C)]
pub struct nhc_device_event_closure {
    /// Handed back to `call` and `drop` untouched.
    pub context: *mut c_void,
    /// `event` and everything it points to are valid during the call only.
    pub call: Option<unsafe extern "C" fn(event: *const nhc_device_event, context: *mut c_void)>,
    /// Releases `context`; called exactly once.
    pub drop: Option<unsafe extern "C" fn(context: *mut c_void)>,
}

/// Tells whether the running firmware is validated (committed). `call`
/// returns 1 (validated), 0 (not yet) or -1 (unknown). It runs once in
/// `nhc_device_new` on the caller's thread, then, while it says 0, every
/// `validation_poll_interval_ms` on a library worker thread (never an I/O
/// thread), possibly while an event callback runs: it must be quick and
/// thread-safe and must not call `nhc_` functions. Once it says 1,
/// `firmware_validated` is pushed. `drop` runs once the device and its
/// worker tasks are gone (after `nhc_device_free`, at the latest in
/// `nhc_shutdown`), or in a failing `nhc_device_new`.
#[allow(non_camel_case_types)]
#[repr(C)]
pub struct nhc_validated_closure {
    /// Handed back to `call` and `drop` untouched.
    pub context: *mut c_void,
    /// Returns 1, 0 or -1 (any other value counts as -1).
    pub call: Option<unsafe extern "C" fn(context: *mut c_void) -> c_int>,
    /// Releases `context`; called exactly once.
    pub drop: Option<unsafe extern "C" fn(context: *mut c_void)>,
}

/// Receives the image of an update applied with `nhc_update_options.sink`.
///
/// The functions run on a library worker thread (never an I/O thread), in
/// the order `begin`, `write`..., then `finish` or `abort`, one at a time,
/// except that `abort` may also be called from another thread while a
/// `write` is blocked (to cancel it); `abort` never follows a successful
/// `finish`. A cancel (`nhc_device_cancel_update`, `max_total_ms`,
/// `nhc_device_free`) during `begin` or `finish` waits for it to return;
/// if `finish` succeeded the update completes, otherwise `abort` follows.
/// No call but `abort` starts after a cancel, and an update cancelled
/// before `begin` calls nothing. `write` only gets bytes that passed the per-MiB checksums;
/// `finish` is called after the whole-image checksum matched. They may
/// block (write to flash); they must not call `nhc_` functions of the
/// device. `begin`, `write` and `finish` return 0 on success; any other
/// value fails the update ("Sink error : ..."), and `abort` follows.
/// `begin`, `write`, `finish` must not be NULL; `abort` and `drop` may be.
/// `drop` runs exactly once, when the update is over and released (or in
/// a failing `nhc_device_apply_update`).
#[allow(non_camel_case_types)]
#[repr(C)]
pub struct nhc_update_sink {
    /// Handed back to every function untouched.
    pub context: *mut c_void,
    /// An update starts: `uuid` of the firmware, `size` in bytes (-1 if unknown).
    pub begin:
        Option<unsafe extern "C" fn(uuid: *const c_char, size: i64, context: *mut c_void) -> c_int>,
    /// The next `len` bytes of the image (borrowed for the call).
    pub write:
        Option<unsafe extern "C" fn(data: *const u8, len: usize, context: *mut c_void) -> c_int>,
    /// The whole image was written and verified.
    pub finish: Option<unsafe extern "C" fn(context: *mut c_void) -> c_int>,
    /// The update failed or was cancelled: discard what was written.
    pub abort: Option<unsafe extern "C" fn(reason: *const c_char, context: *mut c_void)>,
    /// Releases `context`; called exactly once.
    pub drop: Option<unsafe extern "C" fn(context: *mut c_void)>,
}

/// A location, filled by an `nhc_geo_closure`.
#[allow(non_camel_case_types)]
#[repr(C)]
pub struct nhc_location {
    /// Degrees, -90 to 90.
    pub latitude: f64,
    /// Degrees, -180 to 180.
    pub longitude: f64,
    /// Metres; -1 if unknown (the initial value).
    pub accuracy: i32,
    /// Where it comes from ("gps", "manual", ...): NUL-terminated UTF-8
    /// that stays valid until `call` returns; NULL (the initial value) means "manual".
    pub source: *const c_char,
}

/// Answers the server's location requests (the `geo` extension). `call`
/// fills `*out` and returns 0, or returns another value when the location
/// is unknown (the server is told `location_unavailable`). It runs on a
/// library worker thread, possibly while an event callback runs: it must be
/// quick and thread-safe and must not call `nhc_` functions. `drop` runs
/// once the device's tasks are gone (after `nhc_device_free`, at the latest
/// in `nhc_shutdown`), or in a failing `nhc_device_new`.
#[allow(non_camel_case_types)]
#[repr(C)]
pub struct nhc_geo_closure {
    /// Handed back to `call` and `drop` untouched.
    pub context: *mut c_void,
    /// Fills `out` (pre-set to latitude 0, longitude 0, accuracy -1, source NULL).
    pub call: Option<unsafe extern "C" fn(out: *mut nhc_location, context: *mut c_void) -> c_int>,
    /// Releases `context`; called exactly once.
    pub drop: Option<unsafe extern "C" fn(context: *mut c_void)>,
}

closure_kind!(nhc_device_event_closure, "device event", none, event: nhc_device_event);
closure_kind!(nhc_validated_closure, "firmware validated", none);
closure_kind!(nhc_update_sink, "update sink");
closure_kind!(nhc_geo_closure, "geo", none);

impl Owned<nhc_geo_closure> {
    /// The location, or the error code and description sent to the server.
    pub fn call(&self) -> Result<Location, (String, String)> {
        let unavailable = |why: String| Err(("location_unavailable".to_owned(), why));
        let Some(f) = self.raw().call else {
            return unavailable("no location callback".into());
        };
        let mut loc = nhc_location {
            latitude: 0.0,
            longitude: 0.0,
            accuracy: -1,
            source: std::ptr::null(),
        };
        let mut rc: c_int = -1;
        let mut source = None;
        guard_callback("geo", || {
            // SAFETY: `loc` is valid for the call; the context is the caller's.
            rc = unsafe { f(&mut loc, self.raw().context) };
            if rc == 0 && !loc.source.is_null() {
                // SAFETY: the callback promises a NUL-terminated string valid until it returned.
                source = Some(
                    unsafe { CStr::from_ptr(loc.source) }
                        .to_string_lossy()
                        .into_owned(),
                );
            }
        });
        if rc != 0 {
            return unavailable(format!("the location callback returned {rc}"));
        }
        Ok(Location {
            latitude: loc.latitude,
            longitude: loc.longitude,
            source: source.unwrap_or_else(|| "manual".to_owned()),
            accuracy: u32::try_from(loc.accuracy).ok(),
        })
    }
}

impl nhc_update_sink {
    pub(crate) fn none() -> nhc_update_sink {
        nhc_update_sink {
            context: std::ptr::null_mut(),
            begin: None,
            write: None,
            finish: None,
            abort: None,
            drop: None,
        }
    }

    /// True if any function or the context is set: the caller chose this sink.
    pub(crate) fn is_set(&self) -> bool {
        !self.context.is_null()
            || self.begin.is_some()
            || self.write.is_some()
            || self.finish.is_some()
            || self.abort.is_some()
            || self.drop.is_some()
    }
}

impl Owned<nhc_validated_closure> {
    /// The callback's answer; `None` when it has no `call` or said -1.
    pub fn call(&self) -> Option<bool> {
        let f = self.raw().call?;
        let mut answer = -1;
        // SAFETY: the context is the caller's, for this function.
        guard_callback("firmware validated", || unsafe {
            answer = f(self.raw().context)
        });
        match answer {
            1 => Some(true),
            0 => Some(false),
            _ => None,
        }
    }
}
