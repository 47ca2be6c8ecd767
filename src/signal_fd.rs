//! A pipe used as a level-triggered "events pending" flag for poll/select/epoll
//! and asyncio's `add_reader`.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

pub(crate) struct SignalFd {
    read: OwnedFd,
    write: OwnedFd,
    set: bool,
}

impl SignalFd {
    pub fn new() -> io::Result<SignalFd> {
        let (read, write) = pipe()?;
        Ok(SignalFd {
            read,
            write,
            set: false,
        })
    }

    pub fn read_fd(&self) -> RawFd {
        self.read.as_raw_fd()
    }

    pub fn set(&mut self) {
        if !self.set {
            let byte = 1u8;
            // SAFETY: writing one byte from a valid buffer to our own pipe.
            let n = unsafe { libc::write(self.write.as_raw_fd(), (&byte as *const u8).cast(), 1) };
            self.set = n == 1;
        }
    }

    /// One read: `set` writes one byte per set/clear cycle, so a second
    /// read would only return EAGAIN, a system call per event for nothing.
    pub fn clear(&mut self) {
        if self.set {
            let mut buf = [0u8; 16];
            loop {
                // SAFETY: reading into a valid buffer from our own non-blocking pipe.
                let n = unsafe {
                    libc::read(self.read.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len())
                };
                if n >= 0 || io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
                    break;
                }
            }
            self.set = false;
        }
    }
}

/// A pipe whose ends are close-on-exec and non-blocking from the start: a
/// child spawned by another thread between pipe() and fcntl() (the fwup
/// sink, the console shell) would inherit them.
#[cfg(not(target_vendor = "apple"))]
fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [-1 as libc::c_int; 2];
    // SAFETY: fds is a valid array of two ints for pipe2(2) to fill.
    let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC | libc::O_NONBLOCK) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: pipe2 succeeded: both are fresh descriptors that nothing else owns.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// macOS has no pipe2: the flags follow at once (a child spawned in between
/// may inherit the descriptors there), and a failure to set them fails.
#[cfg(target_vendor = "apple")]
fn pipe() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [-1 as libc::c_int; 2];
    // SAFETY: fds is a valid array of two ints for pipe(2) to fill.
    if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: pipe succeeded: both are fresh descriptors that nothing else owns.
    let ends = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    for fd in [ends.0.as_raw_fd(), ends.1.as_raw_fd()] {
        // SAFETY: fcntl on a descriptor owned by `ends`.
        let ok = unsafe {
            let flags = libc::fcntl(fd, libc::F_GETFL);
            flags >= 0
                && libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) == 0
                && libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) == 0
        };
        if !ok {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(ends)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_ends_are_close_on_exec_and_non_blocking_and_the_flag_works() {
        let mut fd = SignalFd::new().unwrap();
        for end in [fd.read.as_raw_fd(), fd.write.as_raw_fd()] {
            // SAFETY: fcntl reads the flags of a descriptor `fd` owns.
            let (fd_flags, status) = unsafe {
                (
                    libc::fcntl(end, libc::F_GETFD),
                    libc::fcntl(end, libc::F_GETFL),
                )
            };
            assert!(fd_flags >= 0 && status >= 0);
            assert_ne!(fd_flags & libc::FD_CLOEXEC, 0, "close-on-exec");
            assert_ne!(status & libc::O_NONBLOCK, 0, "non-blocking");
        }
        let readable = |fd: &SignalFd| {
            let mut p = libc::pollfd {
                fd: fd.read_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd; a timeout of 0 never blocks.
            unsafe { libc::poll(&mut p, 1, 0) == 1 }
        };
        assert!(!readable(&fd));
        fd.set();
        fd.set();
        assert!(readable(&fd));
        fd.clear();
        assert!(!readable(&fd));
    }
}
