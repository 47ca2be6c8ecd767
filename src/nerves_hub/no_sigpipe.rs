//! Writes to a child's stdin without SIGPIPE. A command that exits early
//! (fwup refusing an unsigned archive) leaves the pipe without a reader,
//! and the next write raises SIGPIPE, whose default action kills the
//! process: Rust programs ignore it, C and Python programs embedding the
//! library do not, and the library must not change their disposition. So
//! SIGPIPE is blocked in the writing thread for the write, and one the
//! write raised is consumed before unblocking; the write fails with EPIPE.

/// Runs `write` with SIGPIPE blocked in this thread (see the module doc).
#[cfg(target_os = "linux")]
pub(crate) fn without_sigpipe<T>(write: impl FnOnce() -> T) -> T {
    // SAFETY: signal-set and thread-mask syscalls on local, initialised
    // sets; only this thread's mask changes, and it is restored.
    unsafe {
        let mut pipe: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut pipe);
        libc::sigaddset(&mut pipe, libc::SIGPIPE);
        let mut pending: libc::sigset_t = std::mem::zeroed();
        libc::sigpending(&mut pending);
        // One pending already is not ours to consume.
        let was_pending = libc::sigismember(&pending, libc::SIGPIPE) == 1;
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::pthread_sigmask(libc::SIG_BLOCK, &pipe, &mut old);
        let out = write();
        if !was_pending {
            let now = libc::timespec {
                tv_sec: 0,
                tv_nsec: 0,
            };
            libc::sigtimedwait(&pipe, std::ptr::null_mut(), &now);
        }
        libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
        out
    }
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn without_sigpipe<T>(write: impl FnOnce() -> T) -> T {
    write()
}
