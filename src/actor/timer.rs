//! The connection task's one timer (its next deadline: heartbeat, push and
//! join timeouts, reconnect).
//!
//! On Linux it is a timerfd: tokio's timer wheel wakes a thread up to three
//! times for one far deadline (at the start of the wheel slot that holds it,
//! then again a level down, then at the deadline), so an idle device woke
//! its I/O thread about 8 times a minute for a 30 s heartbeat. A timerfd
//! fires once, at the deadline. It is armed only when the deadline moves.
//! Elsewhere, or when no descriptor can be had, it is a tokio `Sleep`.

#[cfg(target_os = "linux")]
use std::os::fd::AsRawFd;
use std::pin::Pin;

use tokio::time::{Instant, Sleep};

pub(super) struct Timer {
    kind: Kind,
    /// The deadline the timer is armed for.
    armed: Option<Instant>,
}

enum Kind {
    #[cfg(target_os = "linux")]
    Fd(tokio::io::unix::AsyncFd<std::os::fd::OwnedFd>),
    Sleep(Pin<Box<Sleep>>),
}

impl Timer {
    /// On the runtime (a timerfd registers with its reactor).
    pub fn new() -> Timer {
        #[cfg(target_os = "linux")]
        if let Some(fd) = timerfd() {
            return Timer {
                kind: Kind::Fd(fd),
                armed: None,
            };
        }
        Timer {
            kind: Kind::Sleep(Box::pin(tokio::time::sleep_until(Instant::now()))),
            armed: None,
        }
    }

    /// Arms the timer for `at` unless it already is.
    pub fn set(&mut self, at: Instant) {
        if self.armed == Some(at) {
            return;
        }
        self.armed = Some(at);
        match &mut self.kind {
            #[cfg(target_os = "linux")]
            Kind::Fd(fd) => arm(fd, at),
            Kind::Sleep(sleep) => sleep.as_mut().reset(at),
        }
    }

    /// Resolves once the armed deadline has come; the timer is then disarmed
    /// (`set` arms it again, also for the same deadline).
    pub async fn fired(&mut self) {
        match &mut self.kind {
            #[cfg(target_os = "linux")]
            Kind::Fd(fd) => loop {
                let Ok(mut guard) = fd.readable().await else {
                    // The reactor is gone (the runtime is stopping).
                    return std::future::pending().await;
                };
                let mut expirations = [0u8; 8];
                // SAFETY: reading 8 bytes into a valid buffer from our own timerfd.
                let n = unsafe {
                    libc::read(
                        guard.get_inner().as_raw_fd(),
                        expirations.as_mut_ptr().cast(),
                        expirations.len(),
                    )
                };
                if n == 8 {
                    break;
                }
                guard.clear_ready();
            },
            Kind::Sleep(sleep) => sleep.as_mut().await,
        }
        self.armed = None;
    }
}

#[cfg(target_os = "linux")]
fn timerfd() -> Option<tokio::io::unix::AsyncFd<std::os::fd::OwnedFd>> {
    use std::os::fd::FromRawFd;
    // SAFETY: plain system call; the result is checked.
    let raw = unsafe {
        libc::timerfd_create(
            libc::CLOCK_MONOTONIC,
            libc::TFD_NONBLOCK | libc::TFD_CLOEXEC,
        )
    };
    if raw < 0 {
        log::debug!(
            "no timerfd ({}); the connection uses tokio's timer",
            std::io::Error::last_os_error()
        );
        return None;
    }
    // SAFETY: a fresh descriptor that nothing else owns.
    let fd = unsafe { std::os::fd::OwnedFd::from_raw_fd(raw) };
    // `with_interest` is deprecated from tokio 1.54 for descriptors that do
    // not own their fd; an `OwnedFd` does, and its successor (`unsafe
    // register_with_interest`) does not exist in the tokio versions we accept.
    #[allow(deprecated)]
    let fd = tokio::io::unix::AsyncFd::with_interest(fd, tokio::io::Interest::READABLE);
    fd.ok()
}

/// Arms the timerfd for `at` (relative to now: tokio's `Instant` is the
/// monotonic clock the timerfd counts on; at least 1 ns, since 0 disarms).
#[cfg(target_os = "linux")]
fn arm(fd: &tokio::io::unix::AsyncFd<std::os::fd::OwnedFd>, at: Instant) {
    let left = at.saturating_duration_since(Instant::now());
    let nanos = if left.is_zero() {
        1
    } else {
        left.subsec_nanos()
    };
    let spec = libc::itimerspec {
        it_interval: libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        },
        it_value: libc::timespec {
            tv_sec: left.as_secs() as libc::time_t,
            tv_nsec: nanos as libc::c_long,
        },
    };
    // SAFETY: a valid itimerspec for our own timerfd; no old value wanted.
    let rc =
        unsafe { libc::timerfd_settime(fd.get_ref().as_raw_fd(), 0, &spec, std::ptr::null_mut()) };
    if rc != 0 {
        // Cannot happen with a valid descriptor and value; a timer that never
        // fires would stall heartbeats, so say so.
        log::error!(
            "timerfd_settime failed: {}",
            std::io::Error::last_os_error()
        );
    }
}
