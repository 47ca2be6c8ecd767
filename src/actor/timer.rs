//! The connection task's one timer (its next deadline: heartbeat, push and
//! join timeouts, reconnect).
//!
//! On Linux it is a timerfd: tokio's timer wheel wakes a thread up to three
//! times for one far deadline (at the start of the wheel slot that holds it,
//! then again a level down, then at the deadline), so an idle device woke
//! its I/O thread about 8 times a minute for a 30 s heartbeat. A timerfd
//! fires once, at the deadline. It is armed only when the deadline moves.
//! Elsewhere, or when no descriptor can be had, it is a tokio `Sleep`.
//!
//! A timerfd is a descriptor besides the connection's own, so timerfds are
//! rationed: at most an eighth of the process's descriptor limit. A device
//! with a few sockets always gets them; a fleet simulator with 10,000
//! sockets in one process does not run out of descriptors for the sockets
//! themselves (it did, at 20,000: one TCP socket and one timerfd each), and
//! its sockets beyond the ration use tokio's timer.

#[cfg(target_os = "linux")]
use std::os::fd::AsRawFd;
use std::pin::Pin;
#[cfg(target_os = "linux")]
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::time::{Instant, Sleep};

pub(super) struct Timer {
    kind: Kind,
    /// The deadline the timer is armed for.
    armed: Option<Instant>,
}

enum Kind {
    #[cfg(target_os = "linux")]
    Fd(TimerFd),
    Sleep(Pin<Box<Sleep>>),
}

/// A registered timerfd and its place in the ration.
#[cfg(target_os = "linux")]
struct TimerFd {
    fd: tokio::io::unix::AsyncFd<std::os::fd::OwnedFd>,
    _place: Place<'static>,
}

/// Timerfds the library holds now, across all sockets.
#[cfg(target_os = "linux")]
static LIVE_TIMERFDS: AtomicUsize = AtomicUsize::new(0);

/// One place in the ration, given back when dropped (also when the timerfd
/// cannot be made after all).
#[cfg(target_os = "linux")]
struct Place<'a>(&'a AtomicUsize);

#[cfg(target_os = "linux")]
impl Drop for Place<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
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
            Kind::Fd(timer) => arm(&timer.fd, at),
            Kind::Sleep(sleep) => sleep.as_mut().reset(at),
        }
    }

    /// Resolves once the armed deadline has come; the timer is then disarmed
    /// (`set` arms it again, also for the same deadline).
    pub async fn fired(&mut self) {
        match &mut self.kind {
            #[cfg(target_os = "linux")]
            Kind::Fd(timer) => loop {
                let Ok(mut guard) = timer.fd.readable().await else {
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

/// How many timerfds a process with this soft descriptor limit may hold.
#[cfg(target_os = "linux")]
fn ration(nofile_soft_limit: u64) -> usize {
    usize::try_from(nofile_soft_limit / 8).unwrap_or(usize::MAX)
}

/// Takes a place in the ration if one is left.
#[cfg(target_os = "linux")]
fn take_place(live: &AtomicUsize, ration: usize) -> Option<Place<'_>> {
    live.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
        (n < ration).then_some(n + 1)
    })
    .ok()
    .map(|_| Place(live))
}

#[cfg(target_os = "linux")]
fn nofile_soft_limit() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain system call writing into a valid struct.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        // Unknown: assume the usual default rather than none.
        return 1024;
    }
    #[allow(clippy::unnecessary_cast)] // rlim_t is u32 on some 32-bit targets
    let soft = limit.rlim_cur as u64;
    soft
}

#[cfg(target_os = "linux")]
fn timerfd() -> Option<TimerFd> {
    use std::os::fd::FromRawFd;
    let ration = ration(nofile_soft_limit());
    let Some(place) = take_place(&LIVE_TIMERFDS, ration) else {
        log::debug!("{ration} timerfds in use (an eighth of the descriptor limit); the connection uses tokio's timer");
        return None;
    };
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
    let fd = tokio::io::unix::AsyncFd::with_interest(fd, tokio::io::Interest::READABLE).ok()?;
    Some(TimerFd { fd, _place: place })
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

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn the_ration_is_an_eighth_of_the_descriptor_limit() {
        assert_eq!(ration(1024), 128);
        assert_eq!(ration(20_000), 2_500);
        assert_eq!(ration(7), 0);
        assert_eq!(
            ration(u64::MAX),
            usize::try_from(u64::MAX / 8).unwrap_or(usize::MAX)
        );
    }

    #[test]
    fn places_are_taken_until_the_ration_is_used_up_and_given_back_on_drop() {
        let live = AtomicUsize::new(0);
        let first = take_place(&live, 2).expect("a first place");
        let second = take_place(&live, 2).expect("a second place");
        assert!(take_place(&live, 2).is_none());
        assert_eq!(live.load(Ordering::Relaxed), 2);
        drop(first);
        assert_eq!(live.load(Ordering::Relaxed), 1);
        let third = take_place(&live, 2).expect("the place given back");
        assert!(take_place(&live, 0).is_none());
        drop((second, third));
        assert_eq!(live.load(Ordering::Relaxed), 0);
    }
}
