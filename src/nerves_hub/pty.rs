//! A pseudo-terminal with a child process on its slave side (Linux).
//!
//! Only the raw mechanics live here: open the pty pair, start the command in
//! a new session with the slave as its controlling terminal, resize, signal,
//! reap. The console bridge (input, output, timeouts) is `shell.rs`.

use std::ffi::CStr;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};

/// The master side of a pty and the process running on its slave side.
pub(crate) struct Pty {
    master: OwnedFd,
    child: Child,
}

fn check(rc: libc::c_int, what: &str) -> io::Result<libc::c_int> {
    if rc < 0 {
        let e = io::Error::last_os_error();
        Err(io::Error::new(e.kind(), format!("{what}: {e}")))
    } else {
        Ok(rc)
    }
}

/// Opens a pty pair; the master is non-blocking, both are close-on-exec.
fn open_pair() -> io::Result<(OwnedFd, File)> {
    // SAFETY: posix_openpt takes flags only and returns a new descriptor or -1.
    let fd = check(
        unsafe { libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC) },
        "posix_openpt",
    )?;
    // SAFETY: fd is a fresh descriptor that nothing else owns.
    let master = unsafe { OwnedFd::from_raw_fd(fd) };
    let m = master.as_raw_fd();
    // SAFETY: grantpt/unlockpt only act on the master descriptor we own.
    check(unsafe { libc::grantpt(m) }, "grantpt")?;
    check(unsafe { libc::unlockpt(m) }, "unlockpt")?;
    let mut name = [0 as libc::c_char; 128];
    // SAFETY: ptsname_r writes a NUL-terminated path of at most `len` bytes into `name`.
    let rc = unsafe { libc::ptsname_r(m, name.as_mut_ptr(), name.len()) };
    if rc != 0 {
        return Err(io::Error::new(
            io::Error::from_raw_os_error(rc).kind(),
            format!("ptsname_r: {}", io::Error::from_raw_os_error(rc)),
        ));
    }
    // SAFETY: ptsname_r succeeded, so `name` holds a NUL-terminated string.
    let path = unsafe { CStr::from_ptr(name.as_ptr()) };
    // SAFETY: open with a valid C path; returns a new descriptor or -1.
    let slave = check(
        unsafe {
            libc::open(
                path.as_ptr(),
                libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
            )
        },
        "open pty slave",
    )?;
    // Owned at once, so that an error below closes it.
    // SAFETY: `slave` is a fresh descriptor that nothing else owns.
    let slave = unsafe { File::from_raw_fd(slave) };
    // SAFETY: fcntl on our own descriptor; reads then sets its status flags.
    unsafe {
        let flags = check(libc::fcntl(m, libc::F_GETFL), "fcntl")?;
        check(
            libc::fcntl(m, libc::F_SETFL, flags | libc::O_NONBLOCK),
            "fcntl",
        )?;
    }
    Ok((master, slave))
}

/// Sets the terminal size of the pty whose master (or slave) is `fd`.
pub(crate) fn set_size(fd: RawFd, cols: u16, rows: u16) -> io::Result<()> {
    let size = libc::winsize {
        ws_row: rows,
        ws_col: cols,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCSWINSZ reads one valid winsize struct; the kernel then
    // sends SIGWINCH to the terminal's foreground process group.
    check(
        unsafe { libc::ioctl(fd, libc::TIOCSWINSZ, &size as *const libc::winsize) },
        "TIOCSWINSZ",
    )
    .map(drop)
}

impl Pty {
    /// Starts `command` (program and arguments) on a new pty of `size`
    /// (columns, rows), as the leader of a new session whose controlling
    /// terminal is the pty, so job control and Ctrl-C work as in a terminal.
    pub fn spawn(
        command: &[String],
        env: &[(String, String)],
        size: Option<(u16, u16)>,
    ) -> io::Result<Pty> {
        let (program, args) = command.split_first().ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidInput, "the shell command is empty")
        })?;
        let (master, slave) = open_pair()?;
        if let Some((cols, rows)) = size {
            set_size(master.as_raw_fd(), cols, rows)?;
        }
        let mut cmd = Command::new(program);
        cmd.args(args)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::from(slave.try_clone()?))
            .stdout(Stdio::from(slave.try_clone()?))
            .stderr(Stdio::from(slave));
        // SAFETY: the closure runs in the child between fork and exec and only
        // calls setsid and ioctl, which are async-signal-safe. setsid detaches
        // the child from our terminal and session; TIOCSCTTY on fd 0 (the pty
        // slave) makes the pty its controlling terminal, which a shell needs
        // for job control and for Ctrl-C to reach its foreground job.
        unsafe {
            cmd.pre_exec(|| {
                if libc::setsid() < 0 {
                    return Err(io::Error::last_os_error());
                }
                if libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd
            .spawn()
            .map_err(|e| io::Error::new(e.kind(), format!("cannot start {program:?}: {e}")))?;
        // `cmd` (and with it our copies of the slave) is dropped here, so the
        // master reads EIO once the child's side is closed.
        Ok(Pty { master, child })
    }

    /// The master descriptor (non-blocking): read output, write input.
    pub fn master(&self) -> RawFd {
        self.master.as_raw_fd()
    }

    /// Kills the child's whole session (the shell and the jobs it started),
    /// then reaps the child.
    pub fn kill(&mut self) -> Option<ExitStatus> {
        if let Ok(None) = self.child.try_wait() {
            if let Ok(pid) = libc::pid_t::try_from(self.child.id()) {
                // SAFETY: kill(2) with a negative pid signals the process group
                // our child leads (setsid made it the leader); the child is not
                // reaped yet, so the group id cannot have been reused.
                unsafe {
                    libc::kill(-pid, libc::SIGHUP);
                    libc::kill(-pid, libc::SIGKILL);
                }
            }
            let _ = self.child.kill();
        }
        self.child.wait().ok()
    }

    /// Reaps the child after its side of the pty closed.
    pub fn wait(&mut self) -> Option<ExitStatus> {
        self.child.wait().ok()
    }
}

impl Drop for Pty {
    fn drop(&mut self) {
        // Never leave a shell running behind a dropped console.
        if let Ok(None) = self.child.try_wait() {
            self.kill();
        }
    }
}
