//! The plain structs and enums of the NervesHub device API. As for the
//! socket's, every pointer handed to a callback is borrowed for the call
//! only and never NULL: absent text is "".

use std::ffi::c_char;

use crate::nhc_result;
use crate::types::{nhc_payload, nhc_state};

/// The kinds of `nhc_device_event`. Each kind's documentation names the
/// fields of `nhc_device_event` it sets; the others are "" / 0 / -1.
/// New kinds may be added: ignore the ones you do not know.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum nhc_device_event_kind {
    /// The connection changed: `state` (CONNECTING, CONNECTED, DISCONNECTED,
    /// AUTH_ERROR, PROTOCOL_ERROR, or CLOSED, which is always the device's
    /// last event), `error`, `reason`, `reconnect_in_ms`, `attempt`, as in
    /// `nhc_state_event`.
    NHC_DEVICE_EVENT_STATE = 0,
    /// A channel of the device joined (`topic`: "device", "console" or
    /// "extensions"); `payload` is the server's join reply.
    NHC_DEVICE_EVENT_JOINED = 1,
    /// A join failed: `topic`, `reason`, `error` (`NHC_ERR_TIMEOUT`,
    /// `NHC_ERR_CLOSED` or `NHC_OK` for a refusal), `payload` (the refusal's
    /// reply), `reconnect_in_ms` (the rejoin delay, -1 if none).
    NHC_DEVICE_EVENT_JOIN_FAILED = 2,
    /// A channel errored and rejoins by itself: `topic`, `reason`.
    NHC_DEVICE_EVENT_CHANNEL_ERROR = 3,
    /// A channel closed: `topic`, `reason`. The `device` channel rejoins by
    /// itself after `device_rejoin_after_close_ms` (unless that is negative).
    NHC_DEVICE_EVENT_CHANNEL_CLOSED = 4,
    /// A report to the server (status update, progress, ...) could not be
    /// sent in time: `topic`, `error`, `reason`.
    NHC_DEVICE_EVENT_REPORT_FAILED = 5,
    /// The server offers an update; `received` was already reported. Decide
    /// with `nhc_device_apply_update`, `nhc_device_ignore_update` or
    /// `nhc_device_reschedule_update` (with `auto_update` set the device
    /// already decided). `url` (firmware URL: a credential, do not log its
    /// query), `uuid`, `version`, `size` (-1 if unknown), `checksum`
    /// (uppercase SHA-256 hex or ""), `payload` (the whole `update` JSON).
    NHC_DEVICE_EVENT_UPDATE_AVAILABLE = 6,
    /// The device skipped an offer by itself: `uuid`, `reason`. With
    /// `auto_update`, that firmware already runs (`ignored` was reported);
    /// with `require_fwup_public_keys`, no signing key is known (`failed`
    /// was reported, and no UPDATE_AVAILABLE comes).
    NHC_DEVICE_EVENT_UPDATE_IGNORED = 7,
    /// Progress of the update being applied: `stage`, `percent` (0-100).
    NHC_DEVICE_EVENT_UPDATE_PROGRESS = 8,
    /// The update being applied ended: `ok` (true: the image is written and
    /// `completed` was reported; reboot when convenient), `reason` (why it
    /// failed, "" when `ok`).
    NHC_DEVICE_EVENT_UPDATE_FINISHED = 9,
    /// The server asked for a reboot; `rebooting` was already pushed. This
    /// event is the reboot callback: reboot (or exit) now.
    NHC_DEVICE_EVENT_REBOOT = 10,
    /// The server asked the device to identify itself (blink a LED...).
    NHC_DEVICE_EVENT_IDENTIFY = 11,
    /// The deployment has an archive: `uuid`, `url`, `version`, `size`,
    /// `payload` (the whole `archive` JSON).
    NHC_DEVICE_EVENT_ARCHIVE = 12,
    /// The organisation's firmware signing keys: `payload` is a JSON array of strings.
    NHC_DEVICE_EVENT_FWUP_PUBLIC_KEYS = 13,
    /// The organisation's archive signing keys: `payload` is a JSON array of strings.
    NHC_DEVICE_EVENT_ARCHIVE_PUBLIC_KEYS = 14,
    /// A support script to run (only with `scripts_enabled`): `script_ref`,
    /// `text`. Answer with `nhc_device_script_result`.
    NHC_DEVICE_EVENT_SCRIPT_RUN = 15,
    /// The server asked which extensions the device has; already answered.
    NHC_DEVICE_EVENT_EXTENSIONS_GET = 16,
    /// Remote console input (keystrokes): `text`.
    NHC_DEVICE_EVENT_CONSOLE_INPUT = 17,
    /// The remote terminal's size: `width` (columns), `height` (rows).
    NHC_DEVICE_EVENT_CONSOLE_WINDOW_SIZE = 18,
    /// The remote console asks to restart the shell session.
    NHC_DEVICE_EVENT_CONSOLE_RESTART = 19,
    /// A browser file upload on the console: `event` (`file-data/start`,
    /// `file-data`, `file-data/stop`), `payload`.
    NHC_DEVICE_EVENT_CONSOLE_FILE = 20,
    /// What the extensions did (they already answered the server): `event`
    /// is "negotiated" (`payload` `{"attached":[..],"rejected":[..]}`),
    /// "attached" / "detached" (`payload` `{"names":[..]}`), "health_check",
    /// "location_request" (`payload` `{}`), or another event name of the
    /// extensions topic with its `payload`.
    NHC_DEVICE_EVENT_EXTENSION = 21,
    /// A known event whose payload could not be used: `event`, `reason`
    /// (what is wrong), `payload`. Nothing was done, except for `update`:
    /// the server was told `failed` with the reason (unless another update
    /// is being applied).
    NHC_DEVICE_EVENT_INVALID_MESSAGE = 22,
    /// Any other message: `topic`, `event`, `payload`.
    NHC_DEVICE_EVENT_OTHER = 23,
    /// The server closed the last `attempt` connections soon after they
    /// joined: this identity (certificate or NH1 identifier) seems to be in
    /// use by another device, which NervesHub lets in by closing the older
    /// socket. `reason` says so for people. Reported once per run of such
    /// connections; the device keeps reconnecting with an escalating backoff.
    NHC_DEVICE_EVENT_IDENTITY_IN_USE = 24,
}

/// The stage of an update's progress.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum nhc_update_stage {
    /// Not a progress event.
    NHC_UPDATE_STAGE_NONE = 0,
    /// The image is being stored (file and callback sinks).
    NHC_UPDATE_STAGE_DOWNLOADING = 1,
    /// The image is being applied (fwup sinks, and the final 100).
    NHC_UPDATE_STAGE_UPDATING = 2,
}

/// The level of a line sent with `nhc_device_log`.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum nhc_log_level {
    NHC_LOG_ERROR = 0,
    NHC_LOG_WARNING = 1,
    NHC_LOG_INFO = 2,
    NHC_LOG_DEBUG = 3,
}

/// One event of a device, handed to its `nhc_device_event_closure`. `kind`
/// says which fields are set (see `nhc_device_event_kind`).
#[allow(non_camel_case_types)]
#[repr(C)]
pub struct nhc_device_event {
    /// What happened.
    pub kind: nhc_device_event_kind,
    /// STATE: the connection state; `NHC_STATE_CONNECTED` otherwise.
    pub state: nhc_state,
    /// STATE, JOIN_FAILED, REPORT_FAILED: the cause as a code; `NHC_OK` otherwise.
    pub error: nhc_result,
    /// Text for people: why (STATE, JOIN_FAILED, CHANNEL_*, REPORT_FAILED,
    /// UPDATE_IGNORED, UPDATE_FINISHED, INVALID_MESSAGE); "" otherwise.
    pub reason: *const c_char,
    /// STATE: ms until the next connection attempt; JOIN_FAILED: ms until
    /// the rejoin; -1 if none or otherwise.
    pub reconnect_in_ms: i64,
    /// STATE (CONNECTING): the attempt number; IDENTITY_IN_USE: the number
    /// of short connections; 0 otherwise.
    pub attempt: u32,
    /// The topic (JOINED, JOIN_FAILED, CHANNEL_*, REPORT_FAILED, OTHER); "" otherwise.
    pub topic: *const c_char,
    /// The event name (CONSOLE_FILE, EXTENSION, INVALID_MESSAGE, OTHER); "" otherwise.
    pub event: *const c_char,
    /// The JSON (or binary, OTHER only) payload; an empty JSON payload when
    /// the kind has none.
    pub payload: nhc_payload,
    /// UPDATE_AVAILABLE: the firmware URL; ARCHIVE: the archive URL; "" otherwise.
    pub url: *const c_char,
    /// UPDATE_AVAILABLE, UPDATE_IGNORED, ARCHIVE: the firmware / archive UUID.
    pub uuid: *const c_char,
    /// UPDATE_AVAILABLE, ARCHIVE: the version ("" if the server sent none).
    pub version: *const c_char,
    /// UPDATE_AVAILABLE, ARCHIVE: the size in bytes, -1 if unknown.
    pub size: i64,
    /// UPDATE_AVAILABLE: the SHA-256 of the image (uppercase hex), "" if none.
    pub checksum: *const c_char,
    /// UPDATE_PROGRESS: the stage; NONE otherwise.
    pub stage: nhc_update_stage,
    /// UPDATE_PROGRESS: 0-100.
    pub percent: u32,
    /// UPDATE_FINISHED: true on success.
    pub ok: bool,
    /// SCRIPT_RUN: the script's reference, for `nhc_device_script_result`.
    pub script_ref: *const c_char,
    /// SCRIPT_RUN: the script; CONSOLE_INPUT: the input; "" otherwise.
    pub text: *const c_char,
    /// Length of `text` in bytes, without the NUL.
    pub text_len: usize,
    /// CONSOLE_WINDOW_SIZE: columns.
    pub width: u16,
    /// CONSOLE_WINDOW_SIZE: rows.
    pub height: u16,
}
