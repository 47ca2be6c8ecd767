//! The `local_shell` extension (nerves_hub_web v2.3.0 and later,
//! `lib/nerves_hub/extensions/local_shell.ex`; device side after
//! nerves_hub_link's `Extensions.LocalShell`): a shell on the device's pty,
//! carried on the `extensions` channel rather than the console.
//!
//! Server to device: `local_shell:request_shell {}` (pushed when the
//! extension is attached), `local_shell:shell_input {"data"}`,
//! `local_shell:window_size {"rows", "cols"}` (rows/cols, unlike the
//! console's height/width) and `local_shell:kill_shell {"signal"?}` (link
//! only). Device to server: `local_shell:shell_output {"data"}`, which web
//! relays to the UI, and, as link does, `local_shell:request_status
//! {"status": "started" | "failed", "reason"?}`, which web logs and ignores.
//!
//! The pty, its I/O thread, the inactivity timeout and the banners are the
//! console shell's (`shell.rs`). Input before a shell was requested is
//! ignored, as link does; a detach stops the shell, since nobody is watching.

#[cfg(target_os = "linux")]
use std::sync::Arc;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use serde_json::{json, Value};

use crate::error::Result;
use crate::message::Payload;
use crate::nerves_hub::shell::ShellOptions;
use crate::Channel;

pub const NAME: &str = "local_shell";

/// How long an output push may wait for the connection.
const OUTPUT_TIMEOUT: Duration = Duration::from_secs(10);

/// One message of the extension, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Request {
    Open,
    Input(String),
    /// Columns, rows.
    Resize(u16, u16),
    Kill,
}

/// Decodes `local_shell:<event>`; `None` for anything else or a malformed payload.
pub(crate) fn decode(event: &str, payload: &Payload) -> Option<Request> {
    let value = payload.to_value().unwrap_or(Value::Null);
    match event {
        "request_shell" => Some(Request::Open),
        "kill_shell" => Some(Request::Kill),
        "shell_input" => value
            .get("data")
            .and_then(Value::as_str)
            .map(|d| Request::Input(d.to_owned())),
        "window_size" => {
            let dim = |key: &str| {
                value
                    .get(key)
                    .and_then(Value::as_u64)
                    .and_then(|n| u16::try_from(n).ok())
                    .filter(|n| *n > 0)
            };
            Some(Request::Resize(dim("cols")?, dim("rows")?))
        }
        _ => None,
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The device's local shell: at most one session, started on request.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
pub(crate) struct LocalShell {
    opts: ShellOptions,
    channel: Channel,
    /// Kept across sessions so that a new shell opens at the last size.
    size: Mutex<Option<(u16, u16)>>,
    #[cfg(target_os = "linux")]
    shell: Mutex<Option<crate::nerves_hub::shell::Shell>>,
}

impl LocalShell {
    /// Checks the options now, so that a bad command fails at configuration.
    #[cfg(target_os = "linux")]
    pub fn new(opts: ShellOptions, channel: Channel) -> Result<LocalShell> {
        drop(crate::nerves_hub::shell::Shell::new(
            opts.clone(),
            Arc::new(|_: &str| Ok(())),
        )?);
        Ok(LocalShell {
            opts,
            channel,
            size: Mutex::new(None),
            shell: Mutex::new(None),
        })
    }

    #[cfg(not(target_os = "linux"))]
    pub fn new(_opts: ShellOptions, _channel: Channel) -> Result<LocalShell> {
        Err(crate::error::Error::InvalidArgument(
            "the local_shell extension needs Linux".into(),
        ))
    }

    fn cast(&self, event: &str, payload: Value) {
        let sent = self
            .channel
            .cast(event, Payload::json(&payload), OUTPUT_TIMEOUT);
        if let Err(e) = sent {
            log::warn!("local_shell: cannot send {event}: {e}");
        }
    }

    /// Handles one decoded request; runs on the Device's agent and does not
    /// block (opening a shell is a fork and exec).
    pub fn handle(&self, request: Request) {
        match request {
            Request::Open => self.open(),
            Request::Kill => self.stop(),
            Request::Input(data) => {
                #[cfg(target_os = "linux")]
                match lock(&self.shell).as_ref() {
                    Some(shell) => shell.input(data.as_bytes()),
                    None => log::debug!("local_shell: input without a requested shell ignored"),
                }
                #[cfg(not(target_os = "linux"))]
                drop(data);
            }
            Request::Resize(cols, rows) => {
                *lock(&self.size) = Some((cols, rows));
                #[cfg(target_os = "linux")]
                if let Some(shell) = lock(&self.shell).as_ref() {
                    shell.resize(cols, rows);
                }
            }
        }
    }

    #[cfg(target_os = "linux")]
    fn open(&self) {
        let mut slot = lock(&self.shell);
        if slot.is_none() {
            let channel = self.channel.clone();
            let output: crate::nerves_hub::shell::OutputSink = Arc::new(move |data: &str| {
                channel
                    .cast(
                        "local_shell:shell_output",
                        Payload::json(&json!({ "data": data })),
                        OUTPUT_TIMEOUT,
                    )
                    .map(drop)
            });
            match crate::nerves_hub::shell::Shell::new(self.opts.clone(), output) {
                Ok(shell) => {
                    if let Some((cols, rows)) = *lock(&self.size) {
                        shell.resize(cols, rows);
                    }
                    *slot = Some(shell);
                }
                Err(e) => return self.failed(&e.to_string()),
            }
        }
        let opened = slot.as_ref().map(|shell| shell.open());
        drop(slot);
        match opened {
            Some(Ok(())) => self.cast("local_shell:request_status", json!({"status": "started"})),
            Some(Err(e)) => self.failed(&e.to_string()),
            None => {}
        }
    }

    #[cfg(not(target_os = "linux"))]
    fn open(&self) {
        self.failed("the local shell needs Linux");
    }

    fn failed(&self, reason: &str) {
        log::warn!("local_shell: cannot start the shell: {reason}");
        self.cast(
            "local_shell:request_status",
            json!({"status": "failed", "reason": reason}),
        );
    }

    /// Stops the shell (its whole session), if one runs.
    pub fn stop(&self) {
        #[cfg(target_os = "linux")]
        drop(lock(&self.shell).take());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(v: Value) -> Payload {
        Payload::json(&v)
    }

    #[test]
    fn requests_decode_like_link_reads_them() {
        assert_eq!(decode("request_shell", &p(json!({}))), Some(Request::Open));
        assert_eq!(
            decode("shell_input", &p(json!({"data": "ls\r"}))),
            Some(Request::Input("ls\r".into()))
        );
        assert_eq!(
            decode("window_size", &p(json!({"rows": 40, "cols": 120}))),
            Some(Request::Resize(120, 40))
        );
        assert_eq!(
            decode("kill_shell", &p(json!({"signal": 9}))),
            Some(Request::Kill)
        );
    }

    #[test]
    fn malformed_requests_are_not_decoded() {
        assert_eq!(decode("shell_input", &p(json!({"data": 1}))), None);
        assert_eq!(
            decode("window_size", &p(json!({"height": 4, "width": 5}))),
            None
        );
        assert_eq!(
            decode("window_size", &p(json!({"rows": 0, "cols": 5}))),
            None
        );
        assert_eq!(
            decode("window_size", &p(json!({"rows": 70000, "cols": 5}))),
            None
        );
        assert_eq!(decode("shell_output", &p(json!({"data": "x"}))), None);
    }
}
