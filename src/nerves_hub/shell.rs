//! The built-in console shell: a command on a pty, bridged to the console
//! channel (`dn` in, `up` out). Linux only; off unless configured.
//!
//! Behaviour, after nerves_hub_link's IEx console:
//! - the shell starts lazily, on the first input;
//! - `window_size` resizes the pty (the shell gets SIGWINCH);
//! - `restart` kills the shell's session and starts a new one, with a banner;
//! - no input for `inactivity_timeout` prints "Session timeout due to
//!   inactivity" and stops the shell; the next input starts a new one;
//! - when the shell exits by itself a banner says so, and the next input
//!   starts a new one.
//!
//! `Console::handle` runs on the Device's agent and must not block: it
//! queues input, resizes and signals; starting a shell (fork and exec, a few
//! milliseconds) is the only real work it does. One I/O thread per running
//! shell polls the pty master and an eventfd, writes queued input as the pty
//! accepts it and turns output into `up` pushes. Input is bounded (64 KiB
//! queued): when the shell stops reading, further keystrokes are dropped with
//! a warning rather than queued without limit. Output is back-pressured: when
//! the socket's outbound buffer is full the thread stops reading the pty, so
//! the shell blocks on its writes as it would on a slow terminal.

use std::sync::Arc;
use std::time::Duration;

use crate::error::Result;

#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
/// Pushes one chunk of terminal output (`up`).
pub(crate) type OutputSink = Arc<dyn Fn(&str) -> Result<()> + Send + Sync>;

/// The built-in PTY shell behind the console.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShellOptions {
    /// Program and arguments; default `["/bin/sh", "-l"]`.
    pub command: Vec<String>,
    /// No input for this long stops the shell; default 300 s (link's `remote_iex_timeout`).
    pub inactivity_timeout: Duration,
    /// Added to the shell's environment; default `TERM=xterm-256color`
    /// (the NervesHub web console is xterm.js).
    pub env: Vec<(String, String)>,
}

impl Default for ShellOptions {
    fn default() -> ShellOptions {
        ShellOptions {
            command: vec!["/bin/sh".into(), "-l".into()],
            inactivity_timeout: Duration::from_secs(300),
            env: vec![("TERM".into(), "xterm-256color".into())],
        }
    }
}

#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
pub(crate) const TIMEOUT_BANNER: &str = "\r\n*** Session timeout due to inactivity ***\r\n";
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
pub(crate) const RESTART_BANNER: &str = "\r\n*** Restarting shell ***\r\n";

/// Decodes a byte stream as UTF-8 across chunk boundaries: an incomplete
/// sequence at the end of a chunk waits for the next one; invalid bytes
/// become U+FFFD (the `up` payload is a JSON string).
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
#[derive(Default)]
pub(crate) struct Utf8Stream {
    carry: Vec<u8>,
}

#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
impl Utf8Stream {
    pub fn push(&mut self, bytes: &[u8]) -> String {
        let mut data = std::mem::take(&mut self.carry);
        data.extend_from_slice(bytes);
        let mut out = String::with_capacity(data.len());
        let mut rest = &data[..];
        loop {
            match std::str::from_utf8(rest) {
                Ok(s) => {
                    out.push_str(s);
                    break;
                }
                Err(e) => {
                    let (valid, after) = rest.split_at(e.valid_up_to());
                    out.push_str(&String::from_utf8_lossy(valid));
                    match e.error_len() {
                        Some(n) => {
                            out.push('\u{FFFD}');
                            rest = &after[n..];
                        }
                        None => {
                            self.carry = after.to_vec();
                            break;
                        }
                    }
                }
            }
        }
        out
    }

    /// What is left at the end of the stream.
    pub fn finish(&mut self) -> String {
        let rest = std::mem::take(&mut self.carry);
        String::from_utf8_lossy(&rest).into_owned()
    }
}

#[cfg(target_os = "linux")]
pub(crate) use linux::Shell;

#[cfg(target_os = "linux")]
mod linux {
    use std::collections::VecDeque;
    use std::io;
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
    use std::time::{Duration, Instant};

    use super::{OutputSink, ShellOptions, Utf8Stream, RESTART_BANNER, TIMEOUT_BANNER};
    use crate::error::{Error, Result};
    use crate::nerves_hub::pty::{set_size, Pty};

    /// Keystrokes queued for a shell that is not reading.
    const INPUT_LIMIT: usize = 64 * 1024;
    /// Pause before retrying output while the socket's outbound buffer is full.
    const OUTPUT_RETRY: Duration = Duration::from_millis(20);
    const DEFAULT_SIZE: (u16, u16) = (80, 24);

    fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
        m.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// State shared by the console side and one session's I/O thread.
    struct Session {
        input: Mutex<VecDeque<u8>>,
        last_input: Mutex<Instant>,
        /// Set by the console side: kill the shell and end the thread quietly.
        stop: AtomicBool,
        /// Set by the I/O thread when the shell is gone.
        ended: AtomicBool,
        /// Wakes the I/O thread's poll (eventfd).
        wake: OwnedFd,
        /// A duplicate of the master, for resizing from the console side.
        master: OwnedFd,
    }

    impl Session {
        fn wake(&self) {
            let one: u64 = 1;
            // SAFETY: writes 8 bytes from a valid u64 to our own eventfd.
            unsafe { libc::write(self.wake.as_raw_fd(), (&one as *const u64).cast(), 8) };
        }

        fn drain_wake(&self) {
            let mut value: u64 = 0;
            // SAFETY: reads 8 bytes into a valid u64 from our own non-blocking eventfd.
            unsafe { libc::read(self.wake.as_raw_fd(), (&mut value as *mut u64).cast(), 8) };
        }
    }

    struct State {
        size: (u16, u16),
        session: Option<Arc<Session>>,
    }

    pub(crate) struct Shell {
        opts: ShellOptions,
        output: OutputSink,
        state: Mutex<State>,
    }

    impl Shell {
        pub fn new(opts: ShellOptions, output: OutputSink) -> Result<Shell> {
            if opts.command.first().is_none_or(|p| p.is_empty()) {
                return Err(Error::InvalidArgument(
                    "ShellOptions::command has no program; give one, e.g. [\"/bin/sh\", \"-l\"]"
                        .into(),
                ));
            }
            if opts.inactivity_timeout.is_zero() {
                return Err(Error::InvalidArgument(
                    "ShellOptions::inactivity_timeout must be greater than zero".into(),
                ));
            }
            Ok(Shell {
                opts,
                output,
                state: Mutex::new(State {
                    size: DEFAULT_SIZE,
                    session: None,
                }),
            })
        }

        /// Queues terminal input, starting a shell if none is running.
        pub fn input(&self, data: &[u8]) {
            let mut state = lock(&self.state);
            let Some(session) = self.running(&mut state) else {
                return;
            };
            *lock(&session.last_input) = Instant::now();
            let mut queue = lock(&session.input);
            if queue.len() + data.len() > INPUT_LIMIT {
                log::warn!(
                    "console shell: dropped {} bytes of input, the shell has not read the last {} bytes",
                    data.len(),
                    queue.len()
                );
                return;
            }
            queue.extend(data);
            drop(queue);
            session.wake();
        }

        /// Starts a shell unless one is running (the local_shell extension
        /// opens it on request, before any input); the error says why not.
        pub fn open(&self) -> io::Result<()> {
            let mut state = lock(&self.state);
            if live(&state).is_none() {
                state.session = Some(self.start(state.size)?);
            }
            Ok(())
        }

        pub fn resize(&self, cols: u16, rows: u16) {
            let mut state = lock(&self.state);
            state.size = (cols, rows);
            if let Some(session) = live(&state) {
                *lock(&session.last_input) = Instant::now();
                if let Err(e) = set_size(session.master.as_raw_fd(), cols, rows) {
                    log::warn!("console shell: cannot resize the terminal: {e}");
                }
            }
        }

        pub fn restart(&self) {
            let mut state = lock(&self.state);
            if let Some(old) = state.session.take() {
                old.stop.store(true, Ordering::Release);
                old.wake();
            }
            self.emit(RESTART_BANNER);
            self.running(&mut state);
        }

        fn emit(&self, text: &str) {
            if let Err(e) = (self.output)(text) {
                log::warn!("console shell: cannot send output: {e}");
            }
        }

        /// The running session, started if needed (a failure is shown on the terminal).
        fn running(&self, state: &mut State) -> Option<Arc<Session>> {
            if let Some(session) = live(state) {
                return Some(session);
            }
            match self.start(state.size) {
                Ok(session) => {
                    state.session = Some(session.clone());
                    Some(session)
                }
                Err(e) => {
                    log::warn!("console shell: {e}");
                    self.emit(&format!("\r\n*** Cannot start the shell: {e} ***\r\n"));
                    None
                }
            }
        }

        fn start(&self, size: (u16, u16)) -> io::Result<Arc<Session>> {
            let pty = Pty::spawn(&self.opts.command, &self.opts.env, Some(size))?;
            // SAFETY: eventfd takes flags only and returns a new descriptor or -1.
            let efd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
            if efd < 0 {
                return Err(io::Error::last_os_error());
            }
            // SAFETY: efd is a fresh descriptor that nothing else owns.
            let wake = unsafe { OwnedFd::from_raw_fd(efd) };
            // SAFETY: the master is open for the whole call; we only borrow it to dup it.
            let master = unsafe { std::os::fd::BorrowedFd::borrow_raw(pty.master()) }
                .try_clone_to_owned()?;
            let session = Arc::new(Session {
                input: Mutex::new(VecDeque::new()),
                last_input: Mutex::new(Instant::now()),
                stop: AtomicBool::new(false),
                ended: AtomicBool::new(false),
                wake,
                master,
            });
            let io = IoThread {
                session: session.clone(),
                pty,
                output: self.output.clone(),
                timeout: self.opts.inactivity_timeout,
            };
            std::thread::Builder::new()
                .name("nhc-console-shell".into())
                .spawn(move || io.run())?;
            Ok(session)
        }
    }

    fn live(state: &State) -> Option<Arc<Session>> {
        state
            .session
            .as_ref()
            .filter(|s| !s.ended.load(Ordering::Acquire))
            .cloned()
    }

    impl Drop for Shell {
        fn drop(&mut self) {
            if let Some(session) = lock(&self.state).session.take() {
                session.stop.store(true, Ordering::Release);
                session.wake();
            }
        }
    }

    /// Owns the pty of one session; ends when the shell exits, times out or is stopped.
    struct IoThread {
        session: Arc<Session>,
        pty: Pty,
        output: OutputSink,
        timeout: Duration,
    }

    enum End {
        Stopped,
        TimedOut,
        Exited,
    }

    impl IoThread {
        fn run(mut self) {
            let end = self.pump();
            match end {
                End::Stopped => {
                    self.pty.kill();
                }
                End::TimedOut => {
                    self.session.ended.store(true, Ordering::Release);
                    self.emit(TIMEOUT_BANNER);
                    self.pty.kill();
                }
                End::Exited => {
                    self.session.ended.store(true, Ordering::Release);
                    let status = self
                        .pty
                        .wait()
                        .map(|s| s.to_string())
                        .unwrap_or_else(|| "unknown status".into());
                    self.emit(&format!(
                        "\r\n*** Shell exited ({status}); type to start a new one ***\r\n"
                    ));
                }
            }
            self.session.ended.store(true, Ordering::Release);
        }

        /// Sends output, waiting while the socket's outbound buffer is full.
        fn emit(&self, text: &str) {
            loop {
                match (self.output)(text) {
                    Ok(()) => return,
                    Err(Error::BufferFull(_)) if !self.session.stop.load(Ordering::Acquire) => {
                        // Not reading the pty meanwhile is the back-pressure.
                        std::thread::sleep(OUTPUT_RETRY);
                    }
                    Err(e) => {
                        log::debug!("console shell: output dropped: {e}");
                        return;
                    }
                }
            }
        }

        fn pump(&mut self) -> End {
            let master = self.pty.master();
            let wake = self.session.wake.as_raw_fd();
            let mut decoder = Utf8Stream::default();
            let mut pending: Vec<u8> = Vec::new();
            let mut buf = [0u8; 4096];
            loop {
                if self.session.stop.load(Ordering::Acquire) {
                    return End::Stopped;
                }
                let deadline = *lock(&self.session.last_input) + self.timeout;
                let now = Instant::now();
                if now >= deadline {
                    return End::TimedOut;
                }
                if pending.is_empty() {
                    pending.extend(lock(&self.session.input).drain(..));
                }
                let mut fds = [
                    libc::pollfd {
                        fd: master,
                        events: libc::POLLIN | if pending.is_empty() { 0 } else { libc::POLLOUT },
                        revents: 0,
                    },
                    libc::pollfd {
                        fd: wake,
                        events: libc::POLLIN,
                        revents: 0,
                    },
                ];
                // +1 ms so that we wake after the deadline, not just before it.
                let wait = i32::try_from((deadline - now).as_millis() + 1).unwrap_or(i32::MAX);
                // SAFETY: fds is a valid array of two pollfd for the call's duration.
                let rc = unsafe { libc::poll(fds.as_mut_ptr(), 2, wait) };
                if rc < 0 {
                    let e = io::Error::last_os_error();
                    if e.kind() == io::ErrorKind::Interrupted {
                        continue;
                    }
                    log::warn!("console shell: poll failed: {e}");
                    return End::Stopped;
                }
                if fds[1].revents != 0 {
                    self.session.drain_wake();
                }
                let revents = fds[0].revents;
                if revents & libc::POLLOUT != 0 && !pending.is_empty() {
                    // SAFETY: writes from a valid buffer to our own non-blocking master.
                    let n = unsafe { libc::write(master, pending.as_ptr().cast(), pending.len()) };
                    if let Ok(n) = usize::try_from(n) {
                        pending.drain(..n);
                    }
                }
                if revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0 {
                    loop {
                        // SAFETY: reads into a valid buffer from our own non-blocking master.
                        let n = unsafe { libc::read(master, buf.as_mut_ptr().cast(), buf.len()) };
                        match usize::try_from(n) {
                            Ok(0) => return self.exited(&mut decoder),
                            Ok(n) => {
                                let text = decoder.push(&buf[..n]);
                                if !text.is_empty() && !self.session.stop.load(Ordering::Acquire) {
                                    self.emit(&text);
                                }
                            }
                            Err(_) => {
                                let e = io::Error::last_os_error();
                                match e.kind() {
                                    io::ErrorKind::Interrupted => continue,
                                    io::ErrorKind::WouldBlock if revents & libc::POLLHUP == 0 => {
                                        break
                                    }
                                    // EIO: every slave descriptor is closed, the shell is gone.
                                    _ => return self.exited(&mut decoder),
                                }
                            }
                        }
                    }
                }
            }
        }

        fn exited(&self, decoder: &mut Utf8Stream) -> End {
            let rest = decoder.finish();
            if !rest.is_empty() {
                self.emit(&rest);
            }
            if self.session.stop.load(Ordering::Acquire) {
                End::Stopped
            } else {
                End::Exited
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf8_sequences_split_across_chunks_are_joined() {
        let mut s = Utf8Stream::default();
        let bytes = "héllo €".as_bytes();
        let mut out = String::new();
        for chunk in bytes.chunks(1) {
            out.push_str(&s.push(chunk));
        }
        out.push_str(&s.finish());
        assert_eq!(out, "héllo €");
    }

    #[test]
    fn invalid_bytes_become_replacement_characters() {
        let mut s = Utf8Stream::default();
        assert_eq!(s.push(b"a\xffb"), "a\u{FFFD}b");
        assert_eq!(s.push(b"\xe2\x82"), "");
        assert_eq!(s.finish(), "\u{FFFD}");
    }

    #[test]
    fn shell_defaults() {
        let o = ShellOptions::default();
        assert_eq!(o.command, ["/bin/sh", "-l"]);
        assert_eq!(o.inactivity_timeout, Duration::from_secs(300));
    }
}
