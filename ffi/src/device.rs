//! `nhc_device_*`: a NervesHub device (socket + `device` channel, and the
//! optional console and extensions) with one ordered event closure.

use std::ffi::{c_char, c_int};
use std::sync::Arc;
use std::time::Duration;

use nerves_hub_channel::nerves_hub::extensions::LogLevel;
use nerves_hub_channel::nerves_hub::{Device, FirmwareMetadata};
use nerves_hub_channel::Error;

use crate::args::{bytes_arg, opt_str_arg, str_arg};
use crate::boundary::{boundary, boundary_or};
use crate::device_options::{self, nhc_device_options};
use crate::device_router::DeviceRouter;
use crate::error::{invalid, Failure, FfiResult};
use crate::handle::{self, HandleCore, Kind};
use crate::nhc_result;
use crate::options::nhc_key_value;
use crate::types::nhc_state;
use crate::update_options::{self, nhc_update_options};

/// A NervesHub device: one connection, the `device` channel (and the
/// `console` and `extensions` channels when enabled), one event closure.
/// Created by `nhc_device_new`, released by `nhc_device_free`. Every
/// function taking it may be called from any thread, including from the
/// device's own event callback.
#[allow(non_camel_case_types)]
pub struct nhc_device {
    core: Arc<HandleCore<nhc_device>>,
}

impl Kind for nhc_device {
    type Handle = Device;
    type Router = DeviceRouter;
    type Extra = ();
    const ARG: &'static str = "dev";
    const NOUN: &'static str = "device";
    const PREFIX: &'static str = "nhc_device";

    fn core(&self) -> &Arc<HandleCore<Self>> {
        &self.core
    }
    fn wrap(core: Arc<HandleCore<Self>>) -> Self {
        nhc_device { core }
    }
    /// An update being applied stops with the connection.
    fn before_close(device: &Device) {
        device.cancel_update();
    }
}

/// The device behind `dev`.
///
/// # Safety
/// `dev` is NULL or a live device from `nhc_device_new`.
pub(crate) unsafe fn device_ref<'a>(dev: *const nhc_device) -> FfiResult<&'a Device> {
    // SAFETY: `dev` is NULL or a live device (the caller's contract).
    Ok(&unsafe { handle::get(dev) }?.handle)
}

pub(crate) fn no_component(what: &str, option: &str) -> Failure {
    Failure::InvalidState(format!(
        "{what} needs a device created with {option} = true"
    ))
}

/// Creates a device from `opts` (see `nhc_device_options`; copied). Nothing
/// is sent until `nhc_device_connect`. The closures in `opts` are moved
/// into the device, also on failure (then dropped before this returns).
///
/// On success `*out` receives the device; free it with `nhc_device_free`.
///
/// Errors: `NHC_ERR_INVALID_ARGUMENT` (NULL `opts`, `opts->socket` or
/// `out`; options not from their `_default` macros; a URL whose path is not
/// `/socket/websocket` or `/device-socket/websocket`; an incomplete or
/// invalid NH1 secret; an unreadable `fwup_env_path`; invalid UTF-8; an
/// option out of range; `socket->on_state` with a `call`), `NHC_ERR_TLS`
/// (unreadable or invalid certificate, key or CA), `NHC_ERR_CONNECT` (the
/// I/O runtime could not start), `NHC_ERR_FORKED`, `NHC_ERR_PANIC`.
///
/// # Safety
/// `opts` is NULL or an initialised options struct whose pointers are valid.
#[no_mangle]
pub unsafe extern "C" fn nhc_device_new(
    opts: *const nhc_device_options,
    out: *mut *mut nhc_device,
) -> nhc_result {
    boundary(|| {
        if opts.is_null() {
            return Err(invalid("opts is NULL"));
        }
        // SAFETY: `opts` is NULL or initialised with valid pointers (this function's contract).
        let setup = unsafe { device_options::read(opts) }?;
        if out.is_null() {
            return Err(invalid("out is NULL"));
        }
        let device = Device::new(setup.config)?;
        let router = DeviceRouter::new(setup.on_event);
        let created = handle::create::<nhc_device>(device, router, (), setup.delivery)?;
        // SAFETY: `out` is valid for writes (the caller's contract; NULL was refused above).
        unsafe { *out = created };
        Ok(())
    })
}

/// Starts connecting in the background and joins `device` (and `console`
/// when enabled); STATE and JOINED events report progress. The device
/// reconnects and rejoins by itself until `nhc_device_disconnect`. Calling
/// it while connected does nothing.
///
/// Errors: `NHC_ERR_INVALID_ARGUMENT` (NULL), `NHC_ERR_CLOSED` (freed or
/// shut down), `NHC_ERR_FORKED`, `NHC_ERR_PANIC`.
///
/// # Safety
/// `dev` is NULL or a live device.
#[no_mangle]
pub unsafe extern "C" fn nhc_device_connect(dev: *mut nhc_device) -> nhc_result {
    // SAFETY: `dev` is NULL or a live device (the caller's contract).
    boundary(|| unsafe { handle::connect(dev) })
}

/// Closes the connection and stops reconnecting; `nhc_device_connect` resumes.
///
/// Errors: as `nhc_device_connect`.
///
/// # Safety
/// `dev` is NULL or a live device.
#[no_mangle]
pub unsafe extern "C" fn nhc_device_disconnect(dev: *mut nhc_device) -> nhc_result {
    // SAFETY: `dev` is NULL or a live device (the caller's contract).
    boundary(|| unsafe { handle::disconnect(dev) })
}

/// Writes the connection state to `*out` (DISCONNECTED, CONNECTING,
/// CONNECTED or CLOSED).
///
/// Errors: `NHC_ERR_INVALID_ARGUMENT` (NULL), `NHC_ERR_CLOSED`,
/// `NHC_ERR_FORKED`, `NHC_ERR_PANIC`.
///
/// # Safety
/// `dev` is NULL or a live device; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn nhc_device_state(
    dev: *const nhc_device,
    out: *mut nhc_state,
) -> nhc_result {
    // SAFETY: `dev` is NULL or a live device, `out` NULL or writable (the caller's contract).
    boundary(|| unsafe { handle::state(dev, out) })
}

/// Polled devices (`socket->delivery` POLLED): writes to `*fd` a file
/// descriptor readable while events wait for `nhc_device_dispatch`.
/// Level-triggered; owned by the device (do not read, write or close it);
/// valid until `nhc_device_free`.
///
/// Errors: `NHC_ERR_INVALID_ARGUMENT` (NULL), `NHC_ERR_INVALID_STATE` (a
/// threaded device), `NHC_ERR_CONNECT` (no descriptor could be created),
/// `NHC_ERR_CLOSED`, `NHC_ERR_FORKED`, `NHC_ERR_PANIC`.
///
/// # Safety
/// `dev` is NULL or a live device; `fd` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn nhc_device_fd(dev: *const nhc_device, fd: *mut c_int) -> nhc_result {
    // SAFETY: `dev` is NULL or a live device, `fd` NULL or writable (the caller's contract).
    boundary(|| unsafe { handle::fd(dev, fd) })
}

/// Polled devices: runs the event callback for the waiting events, in
/// order, on the calling thread. Waits up to `timeout_ms` for the first
/// (0: do not wait; negative: without limit), then handles what is
/// waiting, at most 64 events. The callback may call any `nhc_` function,
/// including `nhc_device_free` on this device (this function then returns
/// `NHC_OK` once the callback returned).
///
/// Returns `NHC_OK` when at least one event was handled.
///
/// Errors: `NHC_ERR_TIMEOUT` (no event within `timeout_ms`),
/// `NHC_ERR_CLOSED` (the last event, STATE CLOSED, was handled, or the
/// device was freed), `NHC_ERR_INVALID_ARGUMENT` (NULL),
/// `NHC_ERR_INVALID_STATE` (a threaded device, or a dispatch of this device
/// already running), `NHC_ERR_FORKED`, `NHC_ERR_PANIC`.
///
/// # Safety
/// `dev` is NULL or a live device.
#[no_mangle]
pub unsafe extern "C" fn nhc_device_dispatch(dev: *mut nhc_device, timeout_ms: i32) -> nhc_result {
    // SAFETY: `dev` is NULL or a live device (the caller's contract).
    boundary(|| unsafe { handle::dispatch(dev, timeout_ms) })
}

/// Closes the device and releases it; NULL is ignored. Call it exactly once.
///
/// The event closure is dropped: called from outside the device's callback
/// it waits for a callback running on another thread to return, and once
/// it returns no callback of this device runs any more. Called from inside
/// the callback it does not wait, and the closure is dropped right after
/// that callback returns. Like `nhc_socket_free`, it waits until the
/// connection has let go of the client key (a `key.sign` closure dropped,
/// a PKCS#11 session closed). An update being applied is stopped with the
/// connection; the `firmware_validated` closure and an update sink are
/// dropped once the library's tasks holding them have ended (at the latest
/// in `nhc_shutdown`). In a child process after fork() it releases nothing.
///
/// # Safety
/// `dev` is NULL or a live device, not used again afterwards.
#[no_mangle]
pub unsafe extern "C" fn nhc_device_free(dev: *mut nhc_device) {
    // SAFETY: `dev` is NULL or a live device, not used again (the caller's contract).
    boundary_or((), || unsafe { handle::free(dev) })
}

/// Downloads and applies the update of the last UPDATE_AVAILABLE event
/// (the one waiting for a decision) with `opts` (see
/// `nhc_update_options`; copied, its `sink` moved in, also on failure).
/// Returns at once: progress comes as UPDATE_PROGRESS events and the end as
/// one UPDATE_FINISHED event; `started`, `fwup_progress`, `completed` or
/// `failed` are reported to the server.
///
/// Errors: `NHC_ERR_INVALID_ARGUMENT` (NULL, options not from
/// `nhc_update_options_default`, not exactly one sink, a sink callback
/// missing, invalid UTF-8, a timeout of 0, a bad firmware URL),
/// `NHC_ERR_INVALID_STATE` (no update is waiting for a decision, or one is
/// being applied), `NHC_ERR_CLOSED`, `NHC_ERR_FORKED`, `NHC_ERR_PANIC`.
///
/// # Safety
/// `dev` is NULL or a live device; `opts` is NULL or initialised with valid pointers.
#[no_mangle]
pub unsafe extern "C" fn nhc_device_apply_update(
    dev: *mut nhc_device,
    opts: *const nhc_update_options,
) -> nhc_result {
    boundary(|| {
        // SAFETY: `opts` is NULL or initialised with valid pointers (this function's contract).
        let options = unsafe { update_options::take(opts) };
        // SAFETY: `dev` is NULL or a live device (the caller's contract).
        let device = unsafe { device_ref(dev) }?;
        let options = options?;
        if device.update_in_progress() {
            return Err(Failure::InvalidState(
                "an update is already being applied".into(),
            ));
        }
        let info = device
            .pending_update()
            .ok_or_else(|| Failure::InvalidState("no update is waiting for a decision".into()))?;
        Ok(device.apply_update(&info, options)?)
    })
}

/// Downloads the archive of the last ARCHIVE event into the sink of `opts`
/// (see `nhc_update_options`; copied, its `sink` moved in, also on failure)
/// and returns when it is complete, failed, or `timeout_ms` passed (0: the
/// options' overall `max_total`). Same redirect, resume and retry rules as
/// firmware; nothing is reported to the server. The archive carries no
/// checksum: verify it in the sink (e.g. `fwup --verify` with the archive
/// public keys). It blocks: do not call it from a callback of a threaded
/// device (its events would wait until it returns).
///
/// Errors: `NHC_ERR_INVALID_ARGUMENT` (NULL, bad options as for
/// `nhc_device_apply_update`), `NHC_ERR_INVALID_STATE` (no archive was
/// offered), `NHC_ERR_CONNECT` (the download failed: HTTP status, too many
/// interruptions), `NHC_ERR_PROTOCOL` (size mismatch or the sink refused
/// it), `NHC_ERR_TIMEOUT` (cancelled after `timeout_ms`), `NHC_ERR_CLOSED`,
/// `NHC_ERR_FORKED`, `NHC_ERR_PANIC`; `nhc_last_error_message` has the reason.
///
/// # Safety
/// `dev` is NULL or a live device; `opts` is NULL or initialised with valid pointers.
#[no_mangle]
pub unsafe extern "C" fn nhc_device_download_archive(
    dev: *mut nhc_device,
    opts: *const nhc_update_options,
    timeout_ms: u32,
) -> nhc_result {
    boundary(|| {
        // SAFETY: `opts` is NULL or initialised with valid pointers (this function's contract).
        let options = unsafe { update_options::take(opts) };
        // SAFETY: `dev` is NULL or a live device (the caller's contract).
        let device = unsafe { device_ref(dev) }?;
        let options = options?;
        let archive = device
            .pending_archive()
            .ok_or_else(|| Failure::InvalidState("no archive was offered".into()))?;
        let limit = match timeout_ms {
            0 => options.download.max_total,
            ms => Duration::from_millis(u64::from(ms)),
        };
        let handle = device.download_archive(&archive, options)?;
        match handle.wait(limit) {
            Some(Ok(())) => Ok(()),
            Some(Err(reason)) if reason.starts_with("Download failed") => {
                Err(Error::Connect(reason).into())
            }
            Some(Err(reason)) => Err(Error::Protocol(reason).into()),
            None => {
                handle.cancel();
                Err(
                    Error::Timeout(format!("the archive download took longer than {limit:?}"))
                        .into(),
                )
            }
        }
    })
}

/// Declines the update waiting for a decision; the server is told
/// `ignored` with `reason` (NUL-terminated UTF-8, copied).
///
/// Errors: `NHC_ERR_INVALID_ARGUMENT` (NULL, invalid UTF-8),
/// `NHC_ERR_INVALID_STATE` (no update is waiting for a decision),
/// `NHC_ERR_CLOSED`, `NHC_ERR_FORKED`, `NHC_ERR_PANIC`.
///
/// # Safety
/// `dev` is NULL or a live device; `reason` is NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn nhc_device_ignore_update(
    dev: *mut nhc_device,
    reason: *const c_char,
) -> nhc_result {
    boundary(|| {
        // SAFETY: `dev` is NULL or a live device (the caller's contract).
        let device = unsafe { device_ref(dev) }?;
        // SAFETY: `reason` is NULL or a NUL-terminated string (the caller's contract).
        let reason = unsafe { str_arg(reason, "reason") }?;
        pending(device)?;
        Ok(device.ignore_update(reason)?)
    })
}

fn pending(device: &Device) -> FfiResult {
    match device.pending_update() {
        Some(_) => Ok(()),
        None => Err(Failure::InvalidState(
            "no update is waiting for a decision".into(),
        )),
    }
}

/// Postpones the update waiting for a decision; the server is told
/// `rescheduled` with `delay_for` = `delay_ms` (milliseconds, the unit
/// nerves_hub_web reads) and `reason` (NULL: none).
///
/// Errors: as `nhc_device_ignore_update`; `NHC_ERR_INVALID_ARGUMENT` for a
/// zero delay (to decline the update, ignore it).
///
/// # Safety
/// `dev` is NULL or a live device; `reason` is NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn nhc_device_reschedule_update(
    dev: *mut nhc_device,
    delay_ms: u64,
    reason: *const c_char,
) -> nhc_result {
    boundary(|| {
        // SAFETY: `dev` is NULL or a live device (the caller's contract).
        let device = unsafe { device_ref(dev) }?;
        // SAFETY: `reason` is NULL or a NUL-terminated string (the caller's contract).
        let reason = unsafe { opt_str_arg(reason, "reason") }?;
        pending(device)?;
        Ok(device.reschedule_update(Duration::from_millis(delay_ms), reason)?)
    })
}

/// Stops the update being applied: the sink is aborted, the server is told
/// `failed` ("Update cancelled"), and UPDATE_FINISHED (ok false) follows.
///
/// Errors: `NHC_ERR_INVALID_STATE` (no update is being applied, or it is
/// still starting), `NHC_ERR_INVALID_ARGUMENT` (NULL), `NHC_ERR_CLOSED`,
/// `NHC_ERR_FORKED`, `NHC_ERR_PANIC`.
///
/// # Safety
/// `dev` is NULL or a live device.
#[no_mangle]
pub unsafe extern "C" fn nhc_device_cancel_update(dev: *mut nhc_device) -> nhc_result {
    // SAFETY: `dev` is NULL or a live device (the caller's contract).
    boundary(|| unsafe { stop_update(dev, Device::cancel_update) })
}

/// Cancels or suspends the running update.
///
/// # Safety
/// `dev` is NULL or a live device.
unsafe fn stop_update(dev: *mut nhc_device, stop: fn(&Device) -> bool) -> FfiResult {
    // SAFETY: `dev` is NULL or a live device (the caller's contract).
    if stop(unsafe { device_ref(dev) }?) {
        Ok(())
    } else {
        Err(Failure::InvalidState("no update is being applied".into()))
    }
}

/// Like `nhc_device_cancel_update`, for a program that is leaving: a file
/// sink keeps the verified bytes it stored, and when the same update (same
/// firmware UUID and URL path) is applied again, even after a restart,
/// only the rest is downloaded (HTTP Range). Same errors.
///
/// # Safety
/// `dev` is NULL or a live device.
#[no_mangle]
pub unsafe extern "C" fn nhc_device_suspend_update(dev: *mut nhc_device) -> nhc_result {
    // SAFETY: `dev` is NULL or a live device (the caller's contract).
    boundary(|| unsafe { stop_update(dev, Device::suspend_update) })
}

/// Tells the server the running firmware is validated (`firmware_validated
/// {}`), and says so at later joins.
///
/// Errors: `NHC_ERR_INVALID_ARGUMENT` (NULL), `NHC_ERR_BUFFER_FULL`,
/// `NHC_ERR_CLOSED`, `NHC_ERR_FORKED`, `NHC_ERR_PANIC`. A report that
/// cannot reach the server in time arrives as REPORT_FAILED.
///
/// # Safety
/// `dev` is NULL or a live device.
#[no_mangle]
pub unsafe extern "C" fn nhc_device_firmware_validated(dev: *mut nhc_device) -> nhc_result {
    // SAFETY: `dev` is NULL or a live device (the caller's contract).
    boundary(|| Ok(unsafe { device_ref(dev) }?.firmware_validated()?))
}

/// Answers a SCRIPT_RUN event: `script_ref` from the event, `result`
/// "completed" or "error", the script's `output` and its return value as
/// text (`returned`). All NUL-terminated UTF-8, copied.
///
/// Errors: `NHC_ERR_INVALID_ARGUMENT` (NULL, invalid UTF-8, another
/// `result`), `NHC_ERR_BUFFER_FULL`, `NHC_ERR_CLOSED`, `NHC_ERR_FORKED`,
/// `NHC_ERR_PANIC`.
///
/// # Safety
/// `dev` is NULL or a live device; strings are NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn nhc_device_script_result(
    dev: *mut nhc_device,
    script_ref: *const c_char,
    result: *const c_char,
    output: *const c_char,
    returned: *const c_char,
) -> nhc_result {
    boundary(|| {
        // SAFETY: `dev` is NULL or a live device (the caller's contract).
        let device = unsafe { device_ref(dev) }?;
        // SAFETY: `script_ref` is NULL or a NUL-terminated string (the caller's contract).
        let script_ref = unsafe { str_arg(script_ref, "script_ref") }?;
        // SAFETY: `result` is NULL or a NUL-terminated string (the caller's contract).
        let result = unsafe { str_arg(result, "result") }?;
        // SAFETY: `output` is NULL or a NUL-terminated string (the caller's contract).
        let output = unsafe { str_arg(output, "output") }?;
        // SAFETY: `returned` is NULL or a NUL-terminated string (the caller's contract).
        let returned = unsafe { str_arg(returned, "returned") }?;
        Ok(device.script_result(script_ref, result, output, returned)?)
    })
}

/// Tells the server which network interface the device uses (`name`, for
/// example "eth0"; non-empty NUL-terminated UTF-8).
///
/// Errors: `NHC_ERR_INVALID_ARGUMENT` (NULL, empty, invalid UTF-8),
/// `NHC_ERR_BUFFER_FULL`, `NHC_ERR_CLOSED`, `NHC_ERR_FORKED`, `NHC_ERR_PANIC`.
///
/// # Safety
/// `dev` is NULL or a live device; `name` is NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn nhc_device_report_network_interface(
    dev: *mut nhc_device,
    name: *const c_char,
) -> nhc_result {
    boundary(|| {
        // SAFETY: `dev` is NULL or a live device (the caller's contract).
        let device = unsafe { device_ref(dev) }?;
        // SAFETY: `name` is NULL or a NUL-terminated string (the caller's contract).
        let name = unsafe { str_arg(name, "name") }?;
        Ok(device.report_network_interface(name)?)
    })
}

/// Sends terminal output to the remote console (`up`): `len` bytes of UTF-8
/// at `data` (not NUL-terminated; copied).
///
/// Errors: `NHC_ERR_INVALID_ARGUMENT` (NULL `dev`, NULL `data` with `len` >
/// 0, invalid UTF-8), `NHC_ERR_INVALID_STATE` (created without
/// `console_enabled`), `NHC_ERR_BUFFER_FULL`, `NHC_ERR_CLOSED`,
/// `NHC_ERR_FORKED`, `NHC_ERR_PANIC`.
///
/// # Safety
/// `dev` is NULL or a live device; `data` is NULL or `len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn nhc_device_console_output(
    dev: *mut nhc_device,
    data: *const c_char,
    len: usize,
) -> nhc_result {
    boundary(|| {
        // SAFETY: `dev` is NULL or a live device (the caller's contract).
        let device = unsafe { device_ref(dev) }?;
        // SAFETY: `data.cast()` is NULL or points to `len` readable bytes (the caller's contract).
        let bytes = unsafe { bytes_arg(data.cast(), len, "data") }?;
        let text = std::str::from_utf8(bytes)
            .map_err(|e| invalid(format!("data is not valid UTF-8 ({e})")))?;
        let console = device
            .console()
            .ok_or_else(|| no_component("nhc_device_console_output", "console_enabled"))?;
        Ok(console.send_output(text)?)
    })
}

/// Sends the file at `path` (NUL-terminated) to the browsers attached to
/// the console (device-to-browser download, saved under the path's last
/// component), in 1024-byte chunks. Blocks until every chunk is queued.
///
/// Errors: `NHC_ERR_INVALID_ARGUMENT` (NULL, invalid UTF-8, unreadable
/// file, 10 MiB or larger, `console_upload_dir` not set),
/// `NHC_ERR_INVALID_STATE` (created without `console_enabled`), or the
/// push's error (e.g. `NHC_ERR_TIMEOUT` while disconnected).
#[no_mangle]
pub unsafe extern "C" fn nhc_device_console_send_file(
    dev: *mut nhc_device,
    path: *const c_char,
) -> nhc_result {
    boundary(|| {
        // SAFETY: `dev` is NULL or a live device (the caller's contract).
        let device = unsafe { device_ref(dev) }?;
        // SAFETY: `path` is NULL or a NUL-terminated string (the caller's contract).
        let path = unsafe { str_arg(path, "path") }?;
        let console = device
            .console()
            .ok_or_else(|| no_component("nhc_device_console_send_file", "console_enabled"))?;
        Ok(console.send_file(std::path::Path::new(path))?)
    })
}

/// Sends one log line through the `logging` extension, at `level` (an
/// `nhc_log_level` value). Lines beyond 5 per second (burst 10) are
/// summarised, and lines logged while the server has not attached the
/// extension are dropped; both still return `NHC_OK`.
///
/// Errors: `NHC_ERR_INVALID_ARGUMENT` (NULL, invalid UTF-8, unknown
/// level), `NHC_ERR_INVALID_STATE` (created without `logging_enabled`),
/// `NHC_ERR_BUFFER_FULL`, `NHC_ERR_CLOSED`, `NHC_ERR_FORKED`, `NHC_ERR_PANIC`.
///
/// # Safety
/// `dev` is NULL or a live device; `message` is NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn nhc_device_log(
    dev: *mut nhc_device,
    level: c_int,
    message: *const c_char,
) -> nhc_result {
    boundary(|| {
        // SAFETY: `dev` is NULL or a live device (the caller's contract).
        let device = unsafe { device_ref(dev) }?;
        let level = match level {
            0 => LogLevel::Error,
            1 => LogLevel::Warning,
            2 => LogLevel::Info,
            3 => LogLevel::Debug,
            other => return Err(invalid(format!("level {other} is not an nhc_log_level"))),
        };
        // SAFETY: `message` is NULL or a NUL-terminated string (the caller's contract).
        let message = unsafe { str_arg(message, "message") }?;
        let ext = device
            .extensions()
            .ok_or_else(|| no_component("nhc_device_log", "logging_enabled"))?;
        Ok(ext.log(level, message, &[])?)
    })
}

/// Replaces the firmware metadata sent at the next (re)join with `len`
/// key/value pairs (for example after writing new firmware).
///
/// Errors: `NHC_ERR_INVALID_ARGUMENT` (NULL `dev`, NULL `metadata` with
/// `len` > 0, a NULL or non-UTF-8 key or value), `NHC_ERR_CLOSED`,
/// `NHC_ERR_FORKED`, `NHC_ERR_PANIC`.
///
/// # Safety
/// `dev` is NULL or a live device; `metadata` is NULL or `len` valid pairs.
#[no_mangle]
pub unsafe extern "C" fn nhc_device_set_metadata(
    dev: *mut nhc_device,
    metadata: *const nhc_key_value,
    len: usize,
) -> nhc_result {
    boundary(|| {
        // SAFETY: `dev` is NULL or a live device (the caller's contract).
        let device = unsafe { device_ref(dev) }?;
        // SAFETY: `metadata` is NULL or points to `len` valid entries (the caller's contract).
        let pairs = unsafe { crate::options::pairs(metadata, len, "metadata") }?;
        device.set_metadata(FirmwareMetadata::from_pairs(pairs));
        Ok(())
    })
}
