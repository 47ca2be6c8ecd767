//! A library thread's Python thread state, kept from one attach to the next.
//!
//! A thread that Python did not start has no thread state; each attach
//! (`PyGILState_Ensure`) creates one and the matching release destroys it
//! again, and on CPython 3.11 and later that includes mapping and unmapping
//! the thread's frame stack: an `mmap`, an `munmap` with its TLB shootdown
//! on the other cores, and page faults, once per batch of events, which with
//! messages arriving one at a time was a third of what a message cost
//! (issue 18). One extra `PyGILState_Ensure`, taken while attached and
//! given back when the thread is done, keeps the state: an attach is then
//! only taking the GIL. `threading.local()` values set by callbacks last as
//! long, as they do on any Python thread.

use std::sync::atomic::{AtomicBool, Ordering};

use pyo3::ffi;
use pyo3::prelude::*;

/// Set by `_atexit`: from then on no library thread attaches to give its
/// state back (the interpreter clears every state when it finalizes).
static EXITING: AtomicBool = AtomicBool::new(false);

pub fn exiting() {
    EXITING.store(true, Ordering::Release);
}

pub struct KeptThreadState(Option<ffi::PyGILState_STATE>);

impl KeptThreadState {
    /// Keeps the calling thread's state (attaching once to make it); holds
    /// nothing if Python declines (not initialized, or finalizing).
    pub fn new() -> KeptThreadState {
        // SAFETY: attached, so the GIL is held; the extra count is given
        // back on this same thread by `drop`.
        KeptThreadState(Python::try_attach(|_py| unsafe {
            ffi::PyGILState_Ensure()
        }))
    }
}

impl Drop for KeptThreadState {
    /// Runs when the thread is done, possibly from a thread-local's
    /// destructor, so it calls CPython directly rather than through pyo3's
    /// own thread-locals.
    fn drop(&mut self) {
        let Some(kept) = self.0.take() else { return };
        // SAFETY: always safe to call.
        if EXITING.load(Ordering::Acquire) || unsafe { ffi::Py_IsInitialized() } == 0 {
            return;
        }
        // SAFETY: this thread holds the count `kept` from `new`, and does
        // not hold the GIL: `now` takes it, giving `kept` back leaves one
        // count, and giving `now` back deletes the state and releases the
        // GIL.
        unsafe {
            let now = ffi::PyGILState_Ensure();
            ffi::PyGILState_Release(kept);
            ffi::PyGILState_Release(now);
        }
    }
}
