//! Library-wide functions: version, runtime sizing, shutdown.

use std::ffi::c_char;

use nerves_hub_channel::runtime;

use crate::boundary::{boundary, boundary_or, forked};
use crate::nhc_result;

/// The library's version, "MAJOR.MINOR.PATCH", static. Compare with the
/// `NHC_VERSION_*` macros to detect a header/library mismatch.
#[no_mangle]
pub extern "C" fn nhc_version() -> *const c_char {
    boundary_or(c"?".as_ptr(), || {
        concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
    })
}

/// Sets the number of I/O threads (default 1; a fleet simulator with
/// thousands of sockets may want more). Sockets are dealt to the threads in
/// turn, and a socket's work stays on its thread. Only before the first
/// `nhc_socket_new` (or after `nhc_shutdown`).
///
/// Errors: `NHC_ERR_INVALID_ARGUMENT` (0, more than 1024, or the runtime is
/// already running), `NHC_ERR_FORKED`, `NHC_ERR_PANIC`.
#[no_mangle]
pub extern "C" fn nhc_runtime_configure(worker_threads: usize) -> nhc_result {
    boundary(|| Ok(runtime::configure(worker_threads)?))
}

/// Closes every socket (each delivers its CLOSED event; pending pushes end
/// NOT_SENT) and stops the I/O threads, waiting up to 2 seconds. For a
/// clean exit and for leak checkers: nothing relies on atexit. Sockets and
/// channels still need `nhc_*_free` (which drops their closures). A socket
/// created afterwards starts a new runtime. Safe to call more than once;
/// must not be called from a callback. Does nothing after fork().
#[no_mangle]
pub extern "C" fn nhc_shutdown() {
    boundary_or((), || {
        if !forked() {
            crate::handle::close_all(std::time::Duration::from_secs(2));
            runtime::shutdown();
        }
    })
}
