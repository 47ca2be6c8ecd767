//! Console file transfer (`console_version` 2.0.0): browser-to-device
//! uploads into one configured directory, and device-to-browser downloads.
//!
//! Wire format, as nerves_hub_web's console (v2.4.0 and main,
//! `assets/js/hooks/console.js`, `channels/user_console_channel.ex`) and
//! nerves_hub_link (`socket.ex`, `upload_file.ex`) speak it, in both
//! directions on the `console` topic:
//! `file-data/start {"filename"}` (the server adds `uploaded_by`),
//! `file-data {"filename", "chunk", "data": base64 of <= 1024 bytes}`,
//! `file-data/stop {"filename"}`.
//! The browser restarts `chunk` at 0 for every block its file reader
//! returns, so `chunk` is not an offset: chunks are appended in arrival
//! order (as link does), keyed by file name because a drop of several files
//! interleaves them.
//!
//! Where link trusts the browser, this module does not: the name must be a
//! plain file name (no `/`, `\`, NUL, `.` or `..`), the size is capped
//! (link has no upload cap; we use its 10 MiB download cap as the default),
//! data goes to a hidden temporary name that is renamed only on
//! `file-data/stop`, and every refusal or write error (a full disk
//! included) is told to the user on the terminal, with the partial file
//! removed.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use serde_json::Value;

/// Largest file a download may send: link refuses files of 10 MiB or more
/// (`socket.ex` `send_file`, `size < 10_485_760`).
pub const MAX_DOWNLOAD_SIZE: u64 = 10_485_760;
/// Default cap on an upload (link has none; its download cap is reused).
pub const DEFAULT_MAX_UPLOAD_SIZE: u64 = MAX_DOWNLOAD_SIZE;
/// Bytes per `file-data` chunk, as the browser and link send them.
pub const CHUNK_SIZE: usize = 1024;

/// Where uploads go and how large they may be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileTransferOptions {
    /// Directory that receives uploads (created when the first one starts).
    pub upload_dir: PathBuf,
    /// An upload that grows past this many bytes is refused and removed.
    pub max_upload_size: u64,
}

impl FileTransferOptions {
    /// Uploads into `upload_dir`, capped at [`DEFAULT_MAX_UPLOAD_SIZE`].
    pub fn new(upload_dir: impl Into<PathBuf>) -> FileTransferOptions {
        FileTransferOptions {
            upload_dir: upload_dir.into(),
            max_upload_size: DEFAULT_MAX_UPLOAD_SIZE,
        }
    }
}

/// Opens the temporary file an upload is written to. The default creates
/// the file; tests substitute a writer that fails like a full disk.
pub(crate) type OpenFn = Arc<dyn Fn(&Path) -> io::Result<Box<dyn Write + Send>> + Send + Sync>;

/// A file being written; `flush` makes it durable before the rename.
struct DurableFile(File);

impl Write for DurableFile {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.0.sync_all()
    }
}

fn create_file(path: &Path) -> io::Result<Box<dyn Write + Send>> {
    Ok(Box::new(DurableFile(File::create(path)?)))
}

struct Upload {
    temp: PathBuf,
    writer: Box<dyn Write + Send>,
    written: u64,
}

/// The uploads in progress, by file name.
pub(crate) struct Uploads {
    opts: FileTransferOptions,
    open: OpenFn,
    active: HashMap<String, Upload>,
}

impl Drop for Uploads {
    fn drop(&mut self) {
        for (_, upload) in self.active.drain() {
            discard(upload);
        }
    }
}

/// Why `name` may not be used as a file name in the upload directory.
pub fn check_file_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        Err("the file name is empty")
    } else if name == "." || name == ".." {
        Err("the file name is a directory reference")
    } else if name.contains(['/', '\\']) {
        Err("the file name contains a path separator")
    } else if name.contains('\0') {
        Err("the file name contains a NUL byte")
    } else {
        Ok(())
    }
}

fn discard(upload: Upload) {
    drop(upload.writer);
    if let Err(e) = std::fs::remove_file(&upload.temp) {
        if e.kind() != io::ErrorKind::NotFound {
            log::warn!(
                "console upload: cannot remove {}: {e}",
                upload.temp.display()
            );
        }
    }
}

fn describe(e: &io::Error) -> String {
    if e.raw_os_error() == Some(libc::ENOSPC) {
        "the device's storage is full".to_owned()
    } else {
        e.to_string()
    }
}

fn notice(text: &str) -> String {
    format!("\r\n*** {text} ***\r\n")
}

impl Uploads {
    pub(crate) fn new(opts: FileTransferOptions) -> Uploads {
        Uploads::with_opener(opts, Arc::new(create_file))
    }

    pub(crate) fn with_opener(opts: FileTransferOptions, open: OpenFn) -> Uploads {
        Uploads {
            opts,
            open,
            active: HashMap::new(),
        }
    }

    /// Applies one `file-data*` event; returns what to print on the
    /// terminal (refusals, errors, and the saved file's path).
    pub(crate) fn handle(&mut self, event: &str, payload: &Value) -> Option<String> {
        let Some(name) = payload.get("filename").and_then(Value::as_str) else {
            return Some(notice(&format!(
                "Upload ignored: {event} without a file name"
            )));
        };
        match event {
            "file-data/start" => self.start(name),
            "file-data" => self.chunk(name, payload.get("data")),
            "file-data/stop" => self.stop(name),
            _ => None,
        }
    }

    fn start(&mut self, name: &str) -> Option<String> {
        if let Some(old) = self.active.remove(name) {
            discard(old);
        }
        if let Err(why) = check_file_name(name) {
            return Some(notice(&format!("Upload refused: {why}: {name:?}")));
        }
        let dir = &self.opts.upload_dir;
        let temp = dir.join(format!(".{name}.upload"));
        let opened = std::fs::create_dir_all(dir).and_then(|()| (self.open)(&temp));
        match opened {
            Ok(writer) => {
                self.active.insert(
                    name.to_owned(),
                    Upload {
                        temp,
                        writer,
                        written: 0,
                    },
                );
                None
            }
            Err(e) => Some(notice(&format!(
                "Upload of {name} failed: {}",
                describe(&e)
            ))),
        }
    }

    fn fail(&mut self, name: &str, why: String) -> Option<String> {
        if let Some(upload) = self.active.remove(name) {
            discard(upload);
        }
        Some(notice(&format!(
            "Upload of {name} failed: {why}; nothing saved"
        )))
    }

    fn chunk(&mut self, name: &str, data: Option<&Value>) -> Option<String> {
        // Chunks of a refused or failed upload were already reported.
        let max = self.opts.max_upload_size;
        let upload = self.active.get_mut(name)?;
        let Some(bytes) = data
            .and_then(Value::as_str)
            .and_then(|d| STANDARD.decode(d).ok())
        else {
            return self.fail(name, "a chunk is not base64".to_owned());
        };
        let total = upload.written.saturating_add(bytes.len() as u64);
        if total > max {
            return self.fail(name, format!("the file is larger than {max} bytes"));
        }
        match upload.writer.write_all(&bytes) {
            Ok(()) => {
                upload.written = total;
                None
            }
            Err(e) => self.fail(name, describe(&e)),
        }
    }

    fn stop(&mut self, name: &str) -> Option<String> {
        let mut upload = self.active.remove(name)?;
        let target = self.opts.upload_dir.join(name);
        match upload.writer.flush() {
            Ok(()) => {}
            Err(e) => {
                let why = describe(&e);
                discard(upload);
                return Some(notice(&format!(
                    "Upload of {name} failed: {why}; nothing saved"
                )));
            }
        }
        drop(upload.writer);
        match std::fs::rename(&upload.temp, &target) {
            Ok(()) => Some(notice(&format!(
                "Saved {} ({} bytes)",
                target.display(),
                upload.written
            ))),
            Err(e) => {
                let why = describe(&e);
                let _ = std::fs::remove_file(&upload.temp);
                Some(notice(&format!(
                    "Upload of {name} failed: {why}; nothing saved"
                )))
            }
        }
    }
}

/// A file read for a device-to-browser download: its name as the browser
/// saves it, and its content in chunks.
#[derive(Debug)]
pub(crate) struct Download {
    pub(crate) filename: String,
    pub(crate) chunks: Vec<String>,
}

/// Reads `path` (below [`MAX_DOWNLOAD_SIZE`]) into base64 chunks.
pub(crate) fn read_download(path: &Path) -> Result<Download, String> {
    let filename = path
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| format!("{} has no usable file name", path.display()))?
        .to_owned();
    let file = File::open(path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    let size = file
        .metadata()
        .map_err(|e| format!("cannot stat {}: {e}", path.display()))?
        .len();
    if size >= MAX_DOWNLOAD_SIZE {
        return Err(format!(
            "{} is {size} bytes; downloads must be smaller than {MAX_DOWNLOAD_SIZE}",
            path.display()
        ));
    }
    let mut content = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    // The limit also holds if the file grows while it is read.
    file.take(MAX_DOWNLOAD_SIZE)
        .read_to_end(&mut content)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if content.len() as u64 >= MAX_DOWNLOAD_SIZE {
        return Err(format!("{} grew past the download limit", path.display()));
    }
    let chunks = content
        .chunks(CHUNK_SIZE)
        .map(|c| STANDARD.encode(c))
        .collect();
    Ok(Download { filename, chunks })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A fresh directory, removed when dropped.
    struct Scratch(PathBuf);
    impl Scratch {
        fn path(&self) -> &Path {
            &self.0
        }
    }
    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    fn scratch() -> Scratch {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("nhc-ft-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    fn uploads(dir: &Path, max: u64) -> Uploads {
        Uploads::new(FileTransferOptions {
            upload_dir: dir.to_owned(),
            max_upload_size: max,
        })
    }

    fn start(u: &mut Uploads, name: &str) -> Option<String> {
        u.handle(
            "file-data/start",
            &json!({"filename": name, "uploaded_by": 1}),
        )
    }
    fn chunk(u: &mut Uploads, name: &str, bytes: &[u8]) -> Option<String> {
        u.handle(
            "file-data",
            &json!({"filename": name, "chunk": 0, "data": STANDARD.encode(bytes)}),
        )
    }
    fn stop(u: &mut Uploads, name: &str) -> Option<String> {
        u.handle("file-data/stop", &json!({"filename": name}))
    }

    fn entries(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .map(|rd| {
                rd.filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }

    #[test]
    fn upload_is_written_under_a_temporary_name_and_renamed_on_stop() {
        let dir = scratch();
        let target = dir.path().join("in");
        let mut u = uploads(&target, 100);
        assert_eq!(start(&mut u, "a.txt"), None);
        assert_eq!(chunk(&mut u, "a.txt", b"hello "), None);
        assert_eq!(chunk(&mut u, "a.txt", b"world"), None);
        assert_eq!(entries(&target), vec![".a.txt.upload"]);
        let saved = stop(&mut u, "a.txt").expect("a saved notice");
        assert!(saved.contains("11 bytes"), "{saved}");
        assert_eq!(entries(&target), vec!["a.txt"]);
        assert_eq!(std::fs::read(target.join("a.txt")).unwrap(), b"hello world");
    }

    #[test]
    fn interleaved_uploads_stay_apart() {
        let dir = scratch();
        let mut u = uploads(dir.path(), 100);
        start(&mut u, "a");
        start(&mut u, "b");
        chunk(&mut u, "a", b"1");
        chunk(&mut u, "b", b"2");
        chunk(&mut u, "a", b"3");
        stop(&mut u, "b");
        stop(&mut u, "a");
        assert_eq!(std::fs::read(dir.path().join("a")).unwrap(), b"13");
        assert_eq!(std::fs::read(dir.path().join("b")).unwrap(), b"2");
    }

    #[test]
    fn traversal_and_odd_names_are_refused_and_write_nothing() {
        let root = scratch();
        let dir = root.path().join("uploads");
        let mut u = uploads(&dir, 100);
        for name in [
            "../evil",
            "..",
            ".",
            "/etc/passwd",
            "a/b",
            "a\\b",
            "nul\0x",
            "",
        ] {
            let said = start(&mut u, name).unwrap_or_else(|| panic!("{name:?} accepted"));
            assert!(said.contains("Upload refused"), "{name:?}: {said}");
            assert_eq!(
                chunk(&mut u, name, b"x"),
                None,
                "chunks of a refused upload"
            );
            assert_eq!(stop(&mut u, name), None);
        }
        assert_eq!(
            entries(root.path()),
            Vec::<String>::new(),
            "nothing created"
        );
    }

    #[test]
    fn oversize_upload_is_refused_and_removed() {
        let dir = scratch();
        let mut u = uploads(dir.path(), 10);
        start(&mut u, "big");
        assert_eq!(
            chunk(&mut u, "big", b"0123456789"),
            None,
            "exactly the limit"
        );
        let said = chunk(&mut u, "big", b"x").expect("refusal");
        assert!(said.contains("larger than 10 bytes"), "{said}");
        assert_eq!(stop(&mut u, "big"), None);
        assert_eq!(entries(dir.path()), Vec::<String>::new());
    }

    #[test]
    fn bad_base64_fails_the_upload() {
        let dir = scratch();
        let mut u = uploads(dir.path(), 10);
        start(&mut u, "f");
        let said = u
            .handle("file-data", &json!({"filename": "f", "data": "%%%"}))
            .expect("error");
        assert!(said.contains("not base64"), "{said}");
        assert_eq!(entries(dir.path()), Vec::<String>::new());
    }

    /// A real ENOSPC from the kernel: the temporary file is /dev/full.
    #[cfg(target_os = "linux")]
    #[test]
    fn full_disk_is_reported_to_the_user() {
        let dir = scratch();
        let opened = Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = opened.clone();
        let mut u = Uploads::with_opener(
            FileTransferOptions::new(dir.path()),
            Arc::new(move |p: &Path| {
                seen.lock().unwrap().push(p.to_owned());
                let full = std::fs::OpenOptions::new().write(true).open("/dev/full")?;
                Ok(Box::new(full) as Box<dyn Write + Send>)
            }),
        );
        assert_eq!(start(&mut u, "f"), None);
        let said = chunk(&mut u, "f", b"data").expect("error");
        assert!(said.contains("storage is full"), "{said}");
        assert_eq!(stop(&mut u, "f"), None, "the upload is gone");
        assert_eq!(*opened.lock().unwrap(), vec![dir.path().join(".f.upload")]);
    }

    #[test]
    fn restarting_an_upload_discards_the_first_attempt() {
        let dir = scratch();
        let mut u = uploads(dir.path(), 100);
        start(&mut u, "f");
        chunk(&mut u, "f", b"old");
        start(&mut u, "f");
        chunk(&mut u, "f", b"new");
        stop(&mut u, "f");
        assert_eq!(std::fs::read(dir.path().join("f")).unwrap(), b"new");
    }

    #[test]
    fn download_chunks_are_1024_bytes_and_the_limit_is_link_s() {
        let dir = scratch();
        let path = dir.path().join("log.txt");
        std::fs::write(&path, vec![7u8; 2500]).unwrap();
        let d = read_download(&path).unwrap();
        assert_eq!(d.filename, "log.txt");
        let sizes: Vec<usize> = d
            .chunks
            .iter()
            .map(|c| STANDARD.decode(c).unwrap().len())
            .collect();
        assert_eq!(sizes, vec![1024, 1024, 452]);
        let big = dir.path().join("big");
        File::create(&big)
            .unwrap()
            .set_len(MAX_DOWNLOAD_SIZE)
            .unwrap();
        assert!(read_download(&big).unwrap_err().contains("smaller than"));
        File::create(&big)
            .unwrap()
            .set_len(MAX_DOWNLOAD_SIZE - 1)
            .unwrap();
        assert_eq!(read_download(&big).unwrap().chunks.len(), 10240);
    }
}
