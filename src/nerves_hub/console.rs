//! The NervesHub remote console (`console` topic, protocol section 3).
//!
//! The server relays a browser terminal: keystrokes arrive as `dn`
//! `{"data"}`, resizes as `window_size` `{"height","width"}`, and whatever the
//! device pushes as `up` `{"data"}` is shown (and kept in a 1024-line
//! scrollback). What runs behind the terminal is the application's choice:
//! it reads [`ConsoleEvent`]s and answers with [`Console::send_output`], or
//! it enables the built-in PTY shell bridge ([`ShellOptions`], Linux only).
//!
//! File transfer (`file-data/start`, `file-data`, `file-data/stop`) is off
//! by default: the console announces `console_version` 1.0.0, so NervesHub's
//! UI offers no drag-and-drop, and an upload that arrives anyway gets a
//! one-line notice and is not stored. With [`ConsoleOptions::file_transfer`]
//! set, the console announces 2.0.0, stores uploads in the configured
//! directory ([`super::file_transfer`]) and [`Console::send_file`] sends a
//! file to the browser. The events still reach the application as
//! [`ConsoleEvent::File`] either way.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde_json::{json, Value};

use crate::error::{Error, Result};
use crate::event::Event;
use crate::message::Payload;
use crate::{Channel, JoinParams, Socket};

use super::file_transfer::{read_download, FileTransferOptions, Uploads};

#[cfg(target_os = "linux")]
use super::shell::Shell;
pub use super::shell::ShellOptions;

/// The console protocol version with file transfer (link's `console_version`).
pub const CONSOLE_VERSION: &str = "2.0.0";
/// The console protocol version without file transfer: NervesHub's UI then
/// offers no uploads (`console.js` allows them from 2.0.0).
pub const CONSOLE_VERSION_NO_FILES: &str = "1.0.0";
/// The `device_api_version` sent on the console join by default (link HEAD).
pub const DEFAULT_DEVICE_API_VERSION: &str = "2.3.0";

/// How long an `up` push may wait for the connection before it is reported
/// as not sent.
const OUTPUT_TIMEOUT: Duration = Duration::from_secs(10);

/// What the notice on a declined upload says (followed by the file name).
const DECLINE_NOTICE: &str = "File upload is not supported by this device; not saved:";

/// How the console joins and what runs behind it.
#[derive(Debug, Clone)]
pub struct ConsoleOptions {
    /// Sent as `console_version` on join. Empty (the default): "2.0.0" when
    /// `file_transfer` is set, "1.0.0" otherwise (see
    /// [`ConsoleOptions::announced_version`]).
    pub console_version: String,
    /// Sent as `device_api_version` on join (re-read on every rejoin, see
    /// [`Console::set_device_api_version`]).
    pub device_api_version: String,
    /// `Some`: the built-in PTY shell answers the terminal (Linux only).
    pub shell: Option<ShellOptions>,
    /// Without `file_transfer`: print a notice when a browser uploads a file
    /// (nothing is stored either way).
    pub decline_file_uploads: bool,
    /// `Some`: store browser uploads in a directory and allow
    /// [`Console::send_file`]; the console then announces 2.0.0.
    pub file_transfer: Option<FileTransferOptions>,
}

impl ConsoleOptions {
    /// The `console_version` the join sends.
    pub fn announced_version(&self) -> String {
        match (self.console_version.is_empty(), &self.file_transfer) {
            (false, _) => self.console_version.clone(),
            (true, Some(_)) => CONSOLE_VERSION.to_owned(),
            (true, None) => CONSOLE_VERSION_NO_FILES.to_owned(),
        }
    }
}

impl Default for ConsoleOptions {
    fn default() -> ConsoleOptions {
        ConsoleOptions {
            console_version: String::new(),
            device_api_version: DEFAULT_DEVICE_API_VERSION.to_owned(),
            shell: None,
            decline_file_uploads: true,
            file_transfer: None,
        }
    }
}

/// What the server sent on the console topic.
#[derive(Debug, Clone, PartialEq)]
pub enum ConsoleEvent {
    /// `dn`: terminal input (keystrokes or pasted text).
    Input(String),
    /// `window_size`: the browser terminal's size in columns and rows.
    WindowSize { width: u16, height: u16 },
    /// `restart`: restart the shell session.
    Restart,
    /// `file-data/start`, `file-data` or `file-data/stop` (browser upload).
    File { event: String, payload: Value },
    /// Anything else, including known events with unusable payloads.
    Other { event: String, payload: Payload },
}

/// The device's end of the remote console. Owned by the Device, which calls
/// [`Console::handle`] for every event of the socket.
pub struct Console {
    channel: Channel,
    versions: Arc<Mutex<(String, String)>>,
    decline_file_uploads: bool,
    uploads: Option<Mutex<Uploads>>,
    #[cfg(target_os = "linux")]
    shell: Option<Shell>,
}

impl std::fmt::Debug for Console {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Console")
            .field("channel", &self.channel.id())
            .finish_non_exhaustive()
    }
}

impl Console {
    /// Prepares the `console` channel on `socket`; nothing is sent until
    /// [`Console::join`]. With a shell configured, fails off Linux or when the
    /// command is empty.
    pub fn new(socket: &Socket, opts: ConsoleOptions) -> Result<Console> {
        if let Some(ft) = &opts.file_transfer {
            if ft.upload_dir.as_os_str().is_empty() {
                return Err(Error::InvalidArgument(
                    "the console upload directory is empty".into(),
                ));
            }
            if ft.max_upload_size == 0 {
                return Err(Error::InvalidArgument(
                    "the console upload size limit must be greater than 0".into(),
                ));
            }
        }
        let versions = Arc::new(Mutex::new((
            opts.announced_version(),
            opts.device_api_version.clone(),
        )));
        let params = {
            let versions = versions.clone();
            JoinParams::Dynamic(Arc::new(move || {
                let (console, api) = versions
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .clone();
                Payload::json(&json!({"console_version": console, "device_api_version": api}))
            }))
        };
        let channel = socket.channel("console", params)?;
        #[cfg(target_os = "linux")]
        let shell = match opts.shell {
            Some(shell_opts) => Some(Shell::new(shell_opts, output_sink(&channel))?),
            None => None,
        };
        #[cfg(not(target_os = "linux"))]
        if opts.shell.is_some() {
            return Err(Error::InvalidArgument(
                "the built-in console shell needs Linux; handle ConsoleEvent::Input yourself"
                    .into(),
            ));
        }
        Ok(Console {
            channel,
            versions,
            decline_file_uploads: opts.decline_file_uploads,
            uploads: opts.file_transfer.map(|o| Mutex::new(Uploads::new(o))),
            #[cfg(target_os = "linux")]
            shell,
        })
    }

    /// Joins `console`; the channel then rejoins by itself after errors and
    /// reconnects, with its parameters re-evaluated each time.
    pub fn join(&self) -> Result<()> {
        self.channel.join().map(drop)
    }

    /// Leaves `console` (the shell, if any, keeps running until it times out).
    pub fn leave(&self) -> Result<()> {
        self.channel.leave().map(drop)
    }

    /// The `device_api_version` sent on the next (re)join.
    pub fn set_device_api_version(&self, version: &str) {
        self.versions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .1 = version.to_owned();
    }

    /// The console channel, to match core events (`Joined`, `Reply`...) to it.
    pub fn channel(&self) -> &Channel {
        &self.channel
    }

    /// Pushes terminal output (`up {"data"}`) without waiting for a reply
    /// (NervesHub never replies). While disconnected the push waits up to 10 s.
    pub fn send_output(&self, data: &str) -> Result<()> {
        send_up(&self.channel, data)
    }

    /// Sends a file to the browser (device-to-browser download, as link's
    /// `send_file`): `file-data/start`, 1024-byte base64 `file-data` chunks,
    /// `file-data/stop`, named by the path's last component. Needs
    /// `file_transfer`; refuses files of 10 MiB or more. Blocks until every
    /// chunk is queued (each waits up to 10 s for the connection).
    pub fn send_file(&self, path: &std::path::Path) -> Result<()> {
        if self.uploads.is_none() {
            return Err(Error::InvalidArgument(
                "console file transfer is not enabled (ConsoleOptions::file_transfer)".into(),
            ));
        }
        let download = read_download(path).map_err(Error::InvalidArgument)?;
        let name = &download.filename;
        let push = |event: &str, payload: Value| {
            self.channel
                .cast(event, Payload::json(&payload), OUTPUT_TIMEOUT)
                .map(drop)
        };
        push("file-data/start", json!({ "filename": name }))?;
        for (index, data) in download.chunks.iter().enumerate() {
            push(
                "file-data",
                json!({ "filename": name, "chunk": index, "data": data }),
            )?;
        }
        push("file-data/stop", json!({ "filename": name }))
    }

    /// Decodes a core event. `Some` only for messages on this console
    /// channel; every such message yields an event (unknown ones as
    /// [`ConsoleEvent::Other`]). With the built-in shell, input, resizes and
    /// restarts are also applied to it here (without blocking).
    pub fn handle(&self, event: &Event) -> Option<ConsoleEvent> {
        let Event::Message {
            channel,
            event,
            payload,
            ..
        } = event
        else {
            return None;
        };
        if *channel != self.channel.id() {
            return None;
        }
        let decoded = decode(event, payload);
        self.act_on(&decoded);
        Some(decoded)
    }

    fn act_on(&self, event: &ConsoleEvent) {
        if let ConsoleEvent::File { event, payload } = event {
            if let Some(uploads) = &self.uploads {
                let said = uploads
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .handle(event, payload);
                if let Some(text) = said {
                    if let Err(e) = self.send_output(&text) {
                        log::warn!("console: cannot send the upload notice: {e}");
                    }
                }
            } else if self.decline_file_uploads && event == "file-data/start" {
                let name = payload
                    .get("filename")
                    .and_then(Value::as_str)
                    .unwrap_or("(unnamed)");
                let notice = format!("\r\n*** {DECLINE_NOTICE} {name} ***\r\n");
                if let Err(e) = self.send_output(&notice) {
                    log::warn!("console: cannot send the upload notice: {e}");
                }
            }
        }
        #[cfg(target_os = "linux")]
        if let Some(shell) = &self.shell {
            match event {
                ConsoleEvent::Input(data) => shell.input(data.as_bytes()),
                ConsoleEvent::WindowSize { width, height } => shell.resize(*width, *height),
                ConsoleEvent::Restart => shell.restart(),
                _ => {}
            }
        }
    }
}

fn send_up(channel: &Channel, data: &str) -> Result<()> {
    channel
        .cast(
            "up",
            Payload::json(&json!({ "data": data })),
            OUTPUT_TIMEOUT,
        )
        .map(drop)
}

#[cfg(target_os = "linux")]
fn output_sink(channel: &Channel) -> super::shell::OutputSink {
    let channel = channel.clone();
    Arc::new(move |data: &str| send_up(&channel, data))
}

/// Maps one console message to a [`ConsoleEvent`]; never fails.
pub fn decode(event: &str, payload: &Payload) -> ConsoleEvent {
    let other = || ConsoleEvent::Other {
        event: event.to_owned(),
        payload: payload.clone(),
    };
    let value = payload.to_value();
    match (event, &value) {
        ("dn", Some(v)) => match v.get("data").and_then(Value::as_str) {
            Some(data) => ConsoleEvent::Input(data.to_owned()),
            None => other(),
        },
        ("window_size", Some(v)) => {
            let dim = |key: &str| {
                v.get(key)
                    .and_then(Value::as_u64)
                    .and_then(|n| u16::try_from(n).ok())
            };
            match (dim("width"), dim("height")) {
                (Some(width), Some(height)) => ConsoleEvent::WindowSize { width, height },
                _ => other(),
            }
        }
        ("restart", _) => ConsoleEvent::Restart,
        ("file-data/start" | "file-data" | "file-data/stop", Some(v)) => ConsoleEvent::File {
            event: event.to_owned(),
            payload: v.clone(),
        },
        _ => other(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(v: Value) -> Payload {
        Payload::json(&v)
    }

    #[test]
    fn dn_is_input() {
        assert_eq!(
            decode("dn", &p(json!({"data": "ls\r"}))),
            ConsoleEvent::Input("ls\r".into())
        );
    }

    #[test]
    fn window_size_reads_width_and_height() {
        assert_eq!(
            decode("window_size", &p(json!({"height": 24, "width": 80}))),
            ConsoleEvent::WindowSize {
                width: 80,
                height: 24
            }
        );
    }

    #[test]
    fn unusable_payloads_become_other() {
        for (event, payload) in [
            ("dn", json!({"data": 5})),
            ("dn", json!({})),
            ("window_size", json!({"height": 24})),
            ("window_size", json!({"height": -1, "width": 80})),
            ("window_size", json!({"height": 70000, "width": 80})),
        ] {
            let got = decode(event, &p(payload.clone()));
            assert_eq!(
                got,
                ConsoleEvent::Other {
                    event: event.into(),
                    payload: p(payload)
                }
            );
        }
    }

    #[test]
    fn restart_and_file_events() {
        assert_eq!(decode("restart", &Payload::empty()), ConsoleEvent::Restart);
        let chunk = json!({"filename": "a.txt", "chunk": 0, "data": "aGk="});
        assert_eq!(
            decode("file-data", &p(chunk.clone())),
            ConsoleEvent::File {
                event: "file-data".into(),
                payload: chunk
            }
        );
    }

    #[test]
    fn unknown_events_are_kept() {
        let payload = Payload::Binary(vec![1, 2]);
        assert_eq!(
            decode("browser_thing", &payload),
            ConsoleEvent::Other {
                event: "browser_thing".into(),
                payload
            }
        );
    }
}
