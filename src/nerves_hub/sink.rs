//! Where a verified firmware image goes: a file, `fwup` (or another command
//! reading the image on stdin), or the application's own [`ImageSink`].
//!
//! A command named `fwup` is run with `--framing` (see `fwup_framing`): the
//! image goes in packets, progress and errors come back from fwup itself.
//! Any other command gets the plain bytes on stdin.
//!
//! Sink methods block; the updater calls them on tokio's blocking pool,
//! never on an I/O thread (writes come from the verification pipeline's
//! last stage, `verify::Pipeline`).

use std::ffi::OsString;
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;

use super::fwup_framing::{self, ProgressFn, Said, END_OF_INPUT};
use super::no_sigpipe::without_sigpipe;
use super::update::Stage;
use super::update_info::UpdateInfo;

/// Receives the image. Calls come in the order `begin`, `write`..., then
/// `finish` or `abort`, one at a time, except that `abort` may also be
/// called from another thread while a `write` is blocked (to cancel it).
/// `abort` is never called after a successful `finish`, nor while `begin`
/// or `finish` runs (the updater's `SinkStage` sees to that).
pub trait ImageSink: Send + Sync {
    fn begin(&self, info: &UpdateInfo) -> Result<(), String>;
    /// Only bytes that passed the chunk checks arrive here.
    fn write(&self, chunk: &[u8]) -> Result<(), String>;
    /// Called after the whole-file checksum matched.
    fn finish(&self) -> Result<(), String>;
    fn abort(&self, reason: &str);
    /// Which progress stage writing to this sink is: `Updating` for sinks
    /// that apply the image as it streams (fwup), `Downloading` for sinks
    /// that only store it.
    fn stage(&self) -> Stage {
        Stage::Downloading
    }
    /// Called once before `begin`. A sink that learns how far the image is
    /// applied from the applier itself (fwup's progress packets) keeps
    /// `progress`, calls it with percents and returns true; otherwise the
    /// bytes written decide the progress.
    fn report_progress(&self, _progress: ProgressFn) -> bool {
        false
    }
    /// Resume support, asked before `begin`: the bytes an earlier run of
    /// this same update (same firmware UUID and URL path) left after
    /// [`ImageSink::suspend`], as their count and a reader from byte 0.
    /// The updater re-verifies them and calls `begin_at` with the offset
    /// it keeps. Default: nothing stored.
    fn stored(&self, _info: &UpdateInfo) -> Option<(u64, Box<dyn Read + Send>)> {
        None
    }
    /// `begin`, keeping the first `offset` stored bytes (see `stored`);
    /// writes then continue at `offset`. Only called with 0 unless
    /// `stored` returned something.
    fn begin_at(&self, info: &UpdateInfo, offset: u64) -> Result<(), String> {
        if offset == 0 {
            self.begin(info)
        } else {
            Err("this sink cannot resume".into())
        }
    }
    /// Like `abort`, for an update stopped only because the program is
    /// leaving: a sink that can resume keeps what it wrote (durably) for
    /// `stored`. Default: `abort`.
    fn suspend(&self, reason: &str) {
        self.abort(reason);
    }
}

/// Where to put the image.
#[derive(Clone)]
pub enum SinkSpec {
    /// Written to `<path>.partial`, renamed to `path` after verification.
    File(PathBuf),
    Custom(Arc<dyn ImageSink>),
    /// A command reading the image on stdin, typically
    /// `fwup --apply --no-unmount -d /dev/mmcblk0 --task upgrade`.
    Fwup {
        command: String,
        args: Vec<String>,
    },
}

impl std::fmt::Debug for SinkSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SinkSpec::File(p) => f.debug_tuple("File").field(p).finish(),
            SinkSpec::Custom(_) => f.write_str("Custom(..)"),
            SinkSpec::Fwup { command, args } => f
                .debug_struct("Fwup")
                .field("command", command)
                .field("args", args)
                .finish(),
        }
    }
}

impl SinkSpec {
    /// Whether this sink runs fwup (a command named `fwup`), which checks
    /// the image's signature when given `--public-key`.
    pub fn runs_fwup(&self) -> bool {
        match self {
            SinkSpec::Fwup { command, .. } => is_fwup(command),
            _ => false,
        }
    }

    pub(crate) fn build(&self) -> Arc<dyn ImageSink> {
        match self {
            SinkSpec::File(path) => Arc::new(FileSink::new(path)),
            SinkSpec::Custom(sink) => sink.clone(),
            SinkSpec::Fwup { command, args } => Arc::new(FwupSink::new(command, args.clone())),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Stores the image in a file; the final path appears only once complete and verified.
///
/// Resumable: `<path>.partial.resume` names the update the partial file
/// belongs to (firmware UUID and URL without its query, which changes
/// with every signature); a suspended update keeps both, and the next run
/// of the same update continues after the stored bytes.
#[derive(Debug)]
pub struct FileSink {
    path: PathBuf,
    partial: PathBuf,
    resume: PathBuf,
    file: Mutex<Option<OpenFile>>,
}

/// What `<path>.partial.resume` holds: which update the partial file is.
fn resume_key(info: &UpdateInfo) -> String {
    let url = match url::Url::parse(&info.firmware_url) {
        Ok(mut u) => {
            u.set_query(None);
            u.set_fragment(None);
            u.to_string()
        }
        Err(_) => String::new(),
    };
    serde_json::json!({"uuid": info.firmware_meta.uuid, "url": url}).to_string()
}

/// Written bytes are sent to the disk in steps of this many as the download
/// goes, rather than all by the final `fsync`.
const WRITEBACK_STEP: u64 = 8 << 20;

#[derive(Debug)]
struct OpenFile {
    file: File,
    written: u64,
    /// Write-back was started for every byte before this...
    started: u64,
    /// ...and waited for before this.
    waited: u64,
}

impl OpenFile {
    fn write(&mut self, chunk: &[u8]) -> std::io::Result<()> {
        self.file.write_all(chunk)?;
        self.written += chunk.len() as u64;
        if self.written - self.started >= WRITEBACK_STEP {
            self.write_back();
        }
        Ok(())
    }

    /// Starts writing the new bytes to disk and waits for the previous
    /// step's: the final `fsync` then has little left to do, and a device
    /// with little memory never holds the whole image in dirty pages.
    #[cfg(target_os = "linux")]
    fn write_back(&mut self) {
        use std::os::fd::AsRawFd;
        let fd = self.file.as_raw_fd();
        let (from, to) = (self.started, self.written);
        // SAFETY: plain syscalls on a descriptor we own; failures only mean
        // the final fsync does all the work (as on other systems).
        unsafe {
            libc::sync_file_range(
                fd,
                from as libc::off64_t,
                (to - from) as libc::off64_t,
                libc::SYNC_FILE_RANGE_WRITE,
            );
            if from > self.waited {
                libc::sync_file_range(
                    fd,
                    self.waited as libc::off64_t,
                    (from - self.waited) as libc::off64_t,
                    libc::SYNC_FILE_RANGE_WAIT_BEFORE
                        | libc::SYNC_FILE_RANGE_WRITE
                        | libc::SYNC_FILE_RANGE_WAIT_AFTER,
                );
            }
        }
        (self.waited, self.started) = (from, to);
    }

    #[cfg(not(target_os = "linux"))]
    fn write_back(&mut self) {
        (self.waited, self.started) = (self.started, self.written);
    }
}

impl FileSink {
    pub fn new(path: &Path) -> FileSink {
        let mut partial = OsString::from(path.as_os_str());
        partial.push(".partial");
        let mut resume = partial.clone();
        resume.push(".resume");
        FileSink {
            path: path.to_owned(),
            partial: PathBuf::from(partial),
            resume: PathBuf::from(resume),
            file: Mutex::new(None),
        }
    }

    /// `<path>.partial`, where bytes go until `finish`.
    pub fn partial_path(&self) -> &Path {
        &self.partial
    }
}

impl ImageSink for FileSink {
    fn begin(&self, info: &UpdateInfo) -> Result<(), String> {
        self.begin_at(info, 0)
    }

    fn stored(&self, info: &UpdateInfo) -> Option<(u64, Box<dyn Read + Send>)> {
        let key = std::fs::read_to_string(&self.resume).ok()?;
        if key != resume_key(info) {
            return None;
        }
        let file = File::open(&self.partial).ok()?;
        let len = file.metadata().ok()?.len();
        Some((len, Box::new(file)))
    }

    fn begin_at(&self, info: &UpdateInfo, offset: u64) -> Result<(), String> {
        let open = |e: std::io::Error| format!("cannot open {}: {e}", self.partial.display());
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(offset == 0)
            .open(&self.partial)
            .map_err(open)?;
        if offset > 0 {
            // Drops whatever followed the verified prefix.
            file.set_len(offset).map_err(open)?;
            std::io::Seek::seek(&mut file, std::io::SeekFrom::Start(offset)).map_err(open)?;
        }
        std::fs::write(&self.resume, resume_key(info))
            .map_err(|e| format!("cannot write {}: {e}", self.resume.display()))?;
        *lock(&self.file) = Some(OpenFile {
            file,
            written: offset,
            started: offset,
            waited: offset,
        });
        Ok(())
    }

    fn suspend(&self, reason: &str) {
        if let Some(open) = lock(&self.file).take() {
            match open.file.sync_all() {
                Ok(()) => {
                    log::info!(
                        "keeping {} ({} bytes) to resume: {reason}",
                        self.partial.display(),
                        open.written
                    );
                    return;
                }
                Err(e) => log::warn!("cannot sync {}: {e}", self.partial.display()),
            }
        }
        self.abort(reason);
    }

    fn write(&self, chunk: &[u8]) -> Result<(), String> {
        let mut guard = lock(&self.file);
        let file = guard
            .as_mut()
            .ok_or_else(|| format!("{} is not open (aborted?)", self.partial.display()))?;
        file.write(chunk)
            .map_err(|e| format!("cannot write {}: {e}", self.partial.display()))
    }

    fn finish(&self) -> Result<(), String> {
        let file = lock(&self.file)
            .take()
            .ok_or_else(|| format!("{} is not open (aborted?)", self.partial.display()))?
            .file;
        // The data must be on disk before the rename makes it look complete.
        file.sync_all()
            .map_err(|e| format!("cannot sync {}: {e}", self.partial.display()))?;
        drop(file);
        let _ = std::fs::remove_file(&self.resume);
        std::fs::rename(&self.partial, &self.path).map_err(|e| {
            format!(
                "cannot rename {} to {}: {e}",
                self.partial.display(),
                self.path.display()
            )
        })?;
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            // Persists the rename itself; not every filesystem supports it.
            if let Ok(d) = File::open(dir) {
                let _ = d.sync_all();
            }
        }
        Ok(())
    }

    fn abort(&self, reason: &str) {
        log::info!("discarding {}: {reason}", self.partial.display());
        drop(lock(&self.file).take());
        let _ = std::fs::remove_file(&self.partial);
        let _ = std::fs::remove_file(&self.resume);
    }
}

/// Keeps the last bytes a child wrote, for error messages.
const TAIL_BYTES: usize = 2048;

fn drain(mut pipe: impl Read + Send + 'static, tail: Arc<Mutex<Vec<u8>>>) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = pipe.read(&mut buf) {
            if n == 0 {
                break;
            }
            let mut t = lock(&tail);
            t.extend_from_slice(&buf[..n]);
            let excess = t.len().saturating_sub(TAIL_BYTES);
            t.drain(..excess);
        }
    })
}

struct Running {
    pid: u32,
    child: Mutex<Child>,
    stdin: Mutex<Option<ChildStdin>>,
    /// Set, under this lock, by the thread that reaps the child; `kill`
    /// signals under it too, so never a pid that was reaped and reused.
    reaped: Mutex<bool>,
    stderr: Arc<Mutex<Vec<u8>>>,
    stdout: Arc<Mutex<Vec<u8>>>,
    readers: Mutex<Vec<JoinHandle<()>>>,
}

impl Running {
    /// Waits for the child and its output; `Err` with the exit status and
    /// the tail of what it printed unless it exited with 0.
    fn wait(&self, name: &str) -> Result<(), String> {
        // Waits for the exit without reaping, so no lock is held while the
        // child runs (`kill` must get in), and the pid stays the child's
        // (a zombie) until it is reaped below under the `reaped` lock.
        wait_for_exit(self.pid);
        let status = {
            let mut reaped = lock(&self.reaped);
            let status = lock(&self.child).wait();
            *reaped = true;
            status
        };
        for reader in lock(&self.readers).drain(..) {
            let _ = reader.join();
        }
        let status = status.map_err(|e| format!("cannot wait for {name}: {e}"))?;
        if status.success() {
            return Ok(());
        }
        let text = |tail: &Mutex<Vec<u8>>| {
            let bytes = lock(tail);
            let s = String::from_utf8_lossy(&bytes);
            let lines: Vec<&str> = s.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
            lines[lines.len().saturating_sub(5)..].join(" | ")
        };
        let (err, out) = (text(&self.stderr), text(&self.stdout));
        let said = if !err.is_empty() { err } else { out };
        let code = match status.code() {
            Some(c) => format!("status {c}"),
            None => "a signal".to_owned(),
        };
        Err(if said.is_empty() {
            format!("{name} exited with {code}")
        } else {
            format!("{name} exited with {code}: {said}")
        })
    }

    fn kill(&self) {
        let reaped = lock(&self.reaped);
        if !*reaped {
            // SAFETY: plain syscall; the child is not reaped (and cannot be
            // while we hold the lock), so the pid is still ours.
            unsafe { libc::kill(self.pid as libc::pid_t, libc::SIGKILL) };
        }
    }
}

/// Blocks until the child `pid` exited, leaving it unreaped.
fn wait_for_exit(pid: u32) {
    loop {
        // SAFETY: an all-zero siginfo_t is valid; waitid fills it.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: waitid with WNOWAIT only observes our own child; `info` is valid.
        let rc = unsafe {
            libc::waitid(
                libc::P_PID,
                pid as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOWAIT,
            )
        };
        // Anything but EINTR (ECHILD: already reaped) ends the wait; the
        // reaping wait() reports the real outcome.
        if rc == 0 || std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
            return;
        }
    }
}

/// Whether `command` is fwup: empty (the default) or a file named `fwup`.
fn is_fwup(command: &str) -> bool {
    command.is_empty() || Path::new(command).file_name() == Some("fwup".as_ref())
}

/// Pipes the image into a command's stdin (`fwup` by default); its exit
/// status decides success. fwup runs with `--framing`: its progress
/// packets are the update's progress and its error packet is the failure
/// reason (`FWUP error : "..."`). For other commands the tail of stderr
/// explains failures.
pub struct FwupSink {
    command: String,
    args: Vec<String>,
    running: Mutex<Option<Arc<Running>>>,
    /// fwup with `--framing`.
    framed: bool,
    progress: Mutex<Option<ProgressFn>>,
    /// What the current fwup run said (framed only).
    said: Mutex<Option<Arc<Mutex<Said>>>>,
}

impl FwupSink {
    pub fn new(command: &str, mut args: Vec<String>) -> FwupSink {
        let framed = is_fwup(command);
        if framed && !args.iter().any(|a| a == "--framing" || a == "-F") {
            args.push("--framing".into());
        }
        FwupSink {
            command: if command.is_empty() {
                "fwup".into()
            } else {
                command.into()
            },
            args,
            running: Mutex::new(None),
            framed,
            progress: Mutex::new(None),
            said: Mutex::new(None),
        }
    }

    /// fwup's own error message in link's wording when it gave one,
    /// otherwise `fallback` (the exit status and output tail).
    fn explain(&self, fallback: String) -> String {
        lock(&self.said)
            .as_deref()
            .and_then(fwup_framing::failure)
            .unwrap_or(fallback)
    }

    /// Writes to the command's stdin; for fwup as one packet.
    fn send(&self, stdin: &mut ChildStdin, chunk: &[u8]) -> std::io::Result<()> {
        if self.framed {
            if chunk.is_empty() {
                return Ok(()); // an empty packet would end the input
            }
            let header = fwup_framing::input_header(chunk.len())
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
            without_sigpipe(|| stdin.write_all(&header))?;
        }
        without_sigpipe(|| stdin.write_all(chunk))
    }

    fn running(&self) -> Result<Arc<Running>, String> {
        lock(&self.running)
            .clone()
            .ok_or_else(|| format!("{} is not running (aborted?)", self.command))
    }
}

impl ImageSink for FwupSink {
    fn begin(&self, _info: &UpdateInfo) -> Result<(), String> {
        let mut child = Command::new(&self.command)
            .args(&self.args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", self.command))?;
        let (stdout, stderr) = (Arc::default(), Arc::default());
        let mut readers = Vec::new();
        let said = Arc::new(Mutex::new(Said::default()));
        *lock(&self.said) = self.framed.then(|| said.clone());
        if let Some(pipe) = child.stdout.take() {
            readers.push(if self.framed {
                fwup_framing::read(pipe, said, lock(&self.progress).clone())
            } else {
                drain(pipe, Arc::clone(&stdout))
            });
        }
        if let Some(pipe) = child.stderr.take() {
            readers.push(drain(pipe, Arc::clone(&stderr)));
        }
        let running = Running {
            pid: child.id(),
            stdin: Mutex::new(child.stdin.take()),
            child: Mutex::new(child),
            reaped: Mutex::new(false),
            stderr,
            stdout,
            readers: Mutex::new(readers),
        };
        *lock(&self.running) = Some(Arc::new(running));
        Ok(())
    }

    fn write(&self, chunk: &[u8]) -> Result<(), String> {
        let running = self.running()?;
        let result = match lock(&running.stdin).as_mut() {
            Some(stdin) => self.send(stdin, chunk),
            None => return Err(format!("{} stdin is closed", self.command)),
        };
        result.map_err(|e| {
            // A broken pipe means the command died: its exit says why.
            drop(lock(&running.stdin).take());
            match running.wait(&self.command) {
                Err(exit) => self.explain(exit),
                Ok(()) => format!("{} stopped reading its input: {e}", self.command),
            }
        })
    }

    fn finish(&self) -> Result<(), String> {
        let running = self.running()?;
        if self.framed {
            if let Some(stdin) = lock(&running.stdin).as_mut() {
                // A write error means fwup is gone: its exit says why.
                let _ = without_sigpipe(|| stdin.write_all(&END_OF_INPUT));
            }
        }
        drop(lock(&running.stdin).take());
        let result = running.wait(&self.command).map_err(|e| self.explain(e));
        *lock(&self.running) = None;
        result
    }

    fn abort(&self, reason: &str) {
        let Some(running) = lock(&self.running).take() else {
            return;
        };
        log::info!("stopping {}: {reason}", self.command);
        running.kill();
        drop(lock(&running.stdin).take());
        let _ = running.wait(&self.command);
    }

    fn stage(&self) -> Stage {
        Stage::Updating
    }

    fn report_progress(&self, progress: ProgressFn) -> bool {
        *lock(&self.progress) = Some(progress);
        self.framed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info() -> UpdateInfo {
        UpdateInfo::parse(&serde_json::json!({"update_available": false})).unwrap()
    }

    fn temp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("nhc-sink-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn file_sink_renames_only_on_finish_and_abort_removes_the_partial() {
        let dir = temp("file");
        let path = dir.join("fw.img");
        let sink = FileSink::new(&path);
        sink.begin(&info()).unwrap();
        sink.write(b"abc").unwrap();
        sink.write(b"def").unwrap();
        assert!(sink.partial_path().exists() && !path.exists());
        sink.finish().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"abcdef");
        assert!(!sink.partial_path().exists());

        let other = FileSink::new(&dir.join("other.img"));
        other.begin(&info()).unwrap();
        other.write(b"x").unwrap();
        other.abort("test");
        assert!(!other.partial_path().exists());
        assert!(other.write(b"y").unwrap_err().contains("not open"));
        std::fs::remove_dir_all(dir).unwrap();
    }

    fn offer(uuid: &str, url: &str) -> UpdateInfo {
        UpdateInfo::parse(&serde_json::json!({
            "update_available": true, "firmware_url": url, "firmware_meta": {"uuid": uuid}
        }))
        .unwrap()
    }

    #[test]
    fn file_sink_keeps_a_suspended_update_for_the_same_uuid_and_url_path() {
        let dir = temp("resume");
        let path = dir.join("fw.img");
        let first = offer("u1", "https://h/f.fw?sig=1");
        let sink = FileSink::new(&path);
        sink.begin(&first).unwrap();
        sink.write(b"abcdef").unwrap();
        sink.suspend("leaving");
        assert!(sink.partial_path().exists());

        // Another signature of the same URL: resumable. Another uuid or path: not.
        let again = offer("u1", "https://h/f.fw?sig=2");
        let sink = FileSink::new(&path);
        assert!(sink.stored(&offer("u2", "https://h/f.fw?sig=2")).is_none());
        assert!(sink.stored(&offer("u1", "https://h/g.fw?sig=2")).is_none());
        let (len, mut reader) = sink.stored(&again).expect("stored");
        let mut bytes = Vec::new();
        reader.read_to_end(&mut bytes).unwrap();
        assert_eq!((len, bytes.as_slice()), (6, &b"abcdef"[..]));
        // Only the verified prefix is kept; writes continue after it.
        sink.begin_at(&again, 4).unwrap();
        sink.write(b"XY").unwrap();
        sink.finish().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"abcdXY");
        assert!(sink.stored(&again).is_none(), "nothing left to resume");

        // A plain abort leaves nothing to resume.
        sink.begin(&again).unwrap();
        sink.write(b"z").unwrap();
        sink.abort("cancelled");
        assert!(sink.stored(&again).is_none());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn fwup_sink_pipes_bytes_and_reports_a_failing_command() {
        let dir = temp("fwup");
        let out = dir.join("out.bin");
        let sink = FwupSink::new(
            "sh",
            vec!["-c".into(), format!("cat > '{}'", out.display())],
        );
        assert_eq!(sink.stage(), Stage::Updating);
        sink.begin(&info()).unwrap();
        sink.write(&[7u8; 100_000]).unwrap();
        sink.finish().unwrap();
        assert_eq!(std::fs::read(&out).unwrap(), vec![7u8; 100_000]);

        let failing = FwupSink::new(
            "sh",
            vec![
                "-c".into(),
                "cat >/dev/null; echo 'fwup: bad signature' >&2; exit 3".into(),
            ],
        );
        failing.begin(&info()).unwrap();
        failing.write(b"data").unwrap();
        let err = failing.finish().unwrap_err();
        assert_eq!(err, "sh exited with status 3: fwup: bad signature");

        let missing = FwupSink::new("/nonexistent/fwup", vec![]);
        assert!(missing
            .begin(&info())
            .unwrap_err()
            .contains("cannot start /nonexistent/fwup"));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn fwup_sink_write_fails_with_the_exit_reason_when_the_command_dies() {
        let sink = FwupSink::new("sh", vec!["-c".into(), "echo nope >&2; exit 9".into()]);
        sink.begin(&info()).unwrap();
        // The pipe buffer may take the first writes; keep writing until the death is seen.
        let err = (0..1000)
            .find_map(|_| sink.write(&[0u8; 65536]).err())
            .expect("a write fails once the command is gone");
        assert_eq!(err, "sh exited with status 9: nope");
    }

    #[test]
    fn kill_gets_in_while_another_thread_waits_and_is_a_no_op_once_reaped() {
        let sink = FwupSink::new("sleep", vec!["60".into()]);
        sink.begin(&info()).unwrap();
        let running = sink.running().unwrap();
        let waiter = {
            let running = running.clone();
            std::thread::spawn(move || running.wait("sleep"))
        };
        running.kill();
        assert_eq!(
            waiter.join().unwrap().unwrap_err(),
            "sleep exited with a signal"
        );
        assert!(*lock(&running.reaped));
        running.kill(); // the pid may be someone else's now: not signalled
    }

    #[test]
    fn fwup_sink_abort_kills_a_command_that_never_reads() {
        let sink = FwupSink::new("sleep", vec!["60".into()]);
        sink.begin(&info()).unwrap();
        sink.abort("cancelled");
        assert!(sink.write(b"x").is_err());
    }
}
