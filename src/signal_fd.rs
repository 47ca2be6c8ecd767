//! A pipe used as a level-triggered "events pending" flag for poll/select/epoll
//! and asyncio's `add_reader`.

use std::io;
use std::os::fd::RawFd;

pub(crate) struct SignalFd {
    read: RawFd,
    write: RawFd,
    set: bool,
}

impl SignalFd {
    pub fn new() -> io::Result<SignalFd> {
        let mut fds = [0 as libc::c_int; 2];
        // SAFETY: fds is a valid array of two ints for pipe(2) to fill.
        let rc = unsafe { libc::pipe(fds.as_mut_ptr()) };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        for fd in fds {
            // SAFETY: fd was just returned by pipe(2) and is owned here.
            unsafe {
                let flags = libc::fcntl(fd, libc::F_GETFL);
                libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK);
                libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
            }
        }
        Ok(SignalFd {
            read: fds[0],
            write: fds[1],
            set: false,
        })
    }

    pub fn read_fd(&self) -> RawFd {
        self.read
    }

    pub fn set(&mut self) {
        if !self.set {
            let byte = 1u8;
            // SAFETY: writing one byte from a valid buffer to our own pipe.
            let n = unsafe { libc::write(self.write, (&byte as *const u8).cast(), 1) };
            self.set = n == 1;
        }
    }

    pub fn clear(&mut self) {
        if self.set {
            let mut buf = [0u8; 16];
            // SAFETY: reading into a valid buffer from our own non-blocking pipe.
            while unsafe { libc::read(self.read, buf.as_mut_ptr().cast(), buf.len()) } > 0 {}
            self.set = false;
        }
    }
}

impl Drop for SignalFd {
    fn drop(&mut self) {
        // SAFETY: both descriptors are owned by this struct and closed once.
        unsafe {
            libc::close(self.read);
            libc::close(self.write);
        }
    }
}
