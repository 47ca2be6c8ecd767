//! The agent's "file plus command" firmware sink: the verified image is
//! stored as `<dir>/<uuid>.fw` (through the library's `FileSink`, so it
//! appears only once complete and checked), then the configured command
//! installs it, with the file's path as its last argument. The command's
//! failure is the update's failure, reported to the server with its output.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, PoisonError};

use nerves_hub_channel::nerves_hub::sink::{FileSink, ImageSink};
use nerves_hub_channel::nerves_hub::update_info::UpdateInfo;

pub struct FileThenCommand {
    dir: PathBuf,
    command: Vec<String>,
    current: Mutex<Option<(FileSink, PathBuf, String)>>,
}

impl FileThenCommand {
    pub fn new(dir: &Path, command: Vec<String>) -> FileThenCommand {
        FileThenCommand {
            dir: dir.to_owned(),
            command,
            current: Mutex::new(None),
        }
    }

    fn with<T>(&self, f: impl FnOnce(&FileSink) -> Result<T, String>) -> Result<T, String> {
        let current = self.current.lock().unwrap_or_else(PoisonError::into_inner);
        match current.as_ref() {
            Some((sink, _, _)) => f(sink),
            None => Err("the firmware file is not open".into()),
        }
    }
}

impl FileThenCommand {
    /// The open file sink, now closed to later calls.
    fn take(&self) -> Option<FileSink> {
        self.current
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
            .map(|(sink, _, _)| sink)
    }

    /// `<dir>/<uuid>.fw`, for a UUID that cannot leave the directory.
    fn path(&self, info: &UpdateInfo) -> Result<PathBuf, String> {
        let uuid = &info.firmware_meta.uuid;
        if uuid.is_empty() || !uuid.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return Err(format!("firmware uuid {uuid:?} is not a plain name"));
        }
        Ok(self.dir.join(format!("{uuid}.fw")))
    }
}

impl ImageSink for FileThenCommand {
    fn begin(&self, info: &UpdateInfo) -> Result<(), String> {
        self.begin_at(info, 0)
    }

    fn stored(&self, info: &UpdateInfo) -> Option<(u64, Box<dyn std::io::Read + Send>)> {
        FileSink::new(&self.path(info).ok()?).stored(info)
    }

    fn begin_at(&self, info: &UpdateInfo, offset: u64) -> Result<(), String> {
        let path = self.path(info)?;
        std::fs::create_dir_all(&self.dir)
            .map_err(|e| format!("cannot create {}: {e}", self.dir.display()))?;
        let sink = FileSink::new(&path);
        sink.begin_at(info, offset)?;
        *self.current.lock().unwrap_or_else(PoisonError::into_inner) =
            Some((sink, path, info.firmware_meta.uuid.clone()));
        Ok(())
    }

    fn suspend(&self, reason: &str) {
        if let Some(sink) = self.take() {
            sink.suspend(reason);
        }
    }

    fn write(&self, chunk: &[u8]) -> Result<(), String> {
        self.with(|sink| sink.write(chunk))
    }

    fn finish(&self) -> Result<(), String> {
        self.with(|sink| sink.finish())?;
        let (path, uuid) = match self
            .current
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            Some((_, path, uuid)) => (path, uuid),
            None => return Err("the firmware file is not open".into()),
        };
        let Some((program, args)) = self.command.split_first() else {
            return Ok(());
        };
        log::info!("installing {} with {program}", path.display());
        let out = Command::new(program)
            .args(args)
            .arg(&path)
            .env("NHC_FIRMWARE_UUID", &uuid)
            .output()
            .map_err(|e| format!("cannot run {program}: {e}"))?;
        if out.status.success() {
            return Ok(());
        }
        let said = String::from_utf8_lossy(&out.stderr);
        let said = said.trim();
        Err(format!(
            "{program} failed ({}){}{said}",
            out.status,
            if said.is_empty() { "" } else { ": " }
        ))
    }

    fn abort(&self, reason: &str) {
        if let Some(sink) = self.take() {
            sink.abort(reason);
        }
    }
}
