//! `Device`: a NervesHub device (socket, `device` channel, update flow,
//! console, extensions) over the core's `nerves_hub::Device`.

use std::collections::BTreeMap;
use std::ops::Deref;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nerves_hub_channel::nerves_hub::extensions::LogLevel;
use nerves_hub_channel::nerves_hub::update_info::UpdateInfo;
use nerves_hub_channel::nerves_hub::{Device as CoreDevice, DeviceEvent};
use nerves_hub_channel::EventSource;
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::delivery::Item;
use crate::device_convert;
use crate::device_options::{DeviceOptions, UpdateArgs};
use crate::device_router::DeviceRouter;
use crate::duration;
use crate::errors::{self, invalid, py_err};
use crate::handle::{callable, Delivery, PyHandle, PyRoute};
use crate::lifecycle::HandleBase;
use crate::options::Options;
use crate::wait;
use crate::watch::Watch;

/// Every kind a handler may be registered for; "*" matches all.
const KINDS: &[&str] = &[
    "update",
    "update_ignored",
    "update_progress",
    "update_finished",
    "reboot",
    "identify",
    "archive",
    "fwup_public_keys",
    "archive_public_keys",
    "script_run",
    "extensions_get",
    "console_input",
    "console_window_size",
    "console_restart",
    "console_message",
    "extension",
    "channel",
    "message",
    "invalid_message",
    "identity_in_use",
    "*",
];

/// A NervesHub device: a socket to ``url`` (``.../socket/websocket`` with
/// mutual TLS through ``cert``/``key``, or ``.../device-socket/websocket``
/// with an NH1 ``shared_secret``), the ``device`` channel joined with the
/// firmware metadata, and the update flow, console and extensions.
///
/// Socket keyword arguments are those of :class:`Socket`. ``metadata``
/// (``nerves_fw_*`` keys) and/or ``fwup_env_path`` (``fw_printenv`` output)
/// describe the running firmware; ``firmware_validated()`` returns
/// ``True``, ``False`` or ``None``. ``console=True`` joins the remote
/// console (``console_shell=[...]`` runs a PTY shell behind it, Linux);
/// ``extensions={"health": True | metrics_fn, "geo": location_fn,
/// "logging": True, "local_shell": True}`` offers extensions (``local_shell``:
/// NervesHub's Local Shell tab gets ``/bin/sh -l`` on a pty, Linux; off by default).
///
/// ``uboot_env_path`` with ``uboot_env_size`` (and ``uboot_env_redundant``)
/// reads a binary U-Boot environment image instead. ``auto_update={...}``
/// (``apply_update``'s keyword arguments) applies every new firmware by
/// itself. ``fwup_public_keys`` / ``require_fwup_public_keys`` refuse
/// updates while no firmware signing key is known; a ``fwup`` sink is
/// refused without a key unless ``allow_unverified_firmware=True``.
///
/// Server events reach the handlers registered with :meth:`on` (typed
/// objects, see ``nerves_hub_channel.EVENT_KINDS``); connection changes
/// reach ``on_state``. Delivery is as for :class:`Socket`: one library
/// thread (``"threaded"``) or :meth:`dispatch` (``"polled"``). Use it as a
/// context manager, or call :meth:`close`.
#[pyclass(frozen, extends = HandleBase, module = "nerves_hub_channel._native")]
pub struct Device {
    handle: Arc<PyHandle<CoreDevice, DeviceRouter>>,
}

impl Deref for Device {
    type Target = PyHandle<CoreDevice, DeviceRouter>;
    fn deref(&self) -> &Self::Target {
        &self.handle
    }
}

impl PyRoute for DeviceRouter {
    type Event = DeviceEvent;
    const REPORTS_THROUGH: &'static str = "its events";
    const NOUN: &'static str = "device";
    fn observe(&self, event: &DeviceEvent) {
        self.watch_event(event);
    }
    fn route(&self, py: Python<'_>, event: DeviceEvent) {
        DeviceRouter::route(self, py, event)
    }
    fn item(router: &Arc<Self>, source: EventSource<DeviceEvent>) -> Item {
        Item::Device(source, router.clone())
    }
    fn watch(&self) -> &Watch {
        &self.watch
    }
}

#[pymethods]
impl Device {
    #[new]
    #[pyo3(signature = (
        url, *, ca=None, cert=None, key=None, server_name=None, shared_secret=None, clock_offset=0,
        device_api_version="2.3.0", metadata=None, fwup_env_path=None, fwup_version=None,
        update_tool="fwup", request_fwup_public_keys=false, request_archive_public_keys=false,
        firmware_validated=None, validation_poll_interval=10.0, scripts=false, console=false,
        console_shell=None, console_shell_timeout=300.0, console_shell_env=None,
        console_decline_file_uploads=true, extensions=None, report_timeout=60.0, auto_update=None,
        fwup_public_keys=None, require_fwup_public_keys=false, allow_unverified_firmware=false,
        uboot_env_path=None,
        uboot_env_size=None, uboot_env_redundant=false, headers=None, params=None,
        connect_timeout=15.0, heartbeat_interval=30.0, heartbeat_timeout=30.0, timeout=10.0,
        rejoin_after=5.0, reconnect=true, backoff_initial=1.0, backoff_max=60.0,
        backoff_jitter=0.5, stable_after=120.0, event_capacity=1024, on_state=None,
        delivery="threaded", device_rejoin_after_close=5.0, serializer="json",
        console_upload_dir=None, console_max_upload_size=None, proxy=None, no_proxy=None,
        proxy_from_env=true
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new<'py>(
        url: String,
        ca: Option<Bound<'py, PyAny>>,
        cert: Option<Bound<'py, PyAny>>,
        key: Option<Bound<'py, PyAny>>,
        server_name: Option<String>,
        shared_secret: Option<Bound<'py, PyAny>>,
        clock_offset: i64,
        device_api_version: &str,
        metadata: Option<Bound<'py, PyAny>>,
        fwup_env_path: Option<PathBuf>,
        fwup_version: Option<String>,
        update_tool: &str,
        request_fwup_public_keys: bool,
        request_archive_public_keys: bool,
        firmware_validated: Option<Bound<'py, PyAny>>,
        validation_poll_interval: f64,
        scripts: bool,
        console: bool,
        console_shell: Option<Vec<String>>,
        console_shell_timeout: f64,
        console_shell_env: Option<BTreeMap<String, String>>,
        console_decline_file_uploads: bool,
        extensions: Option<Bound<'py, PyAny>>,
        report_timeout: f64,
        auto_update: Option<Bound<'py, PyAny>>,
        fwup_public_keys: Option<Vec<String>>,
        require_fwup_public_keys: bool,
        allow_unverified_firmware: bool,
        uboot_env_path: Option<PathBuf>,
        uboot_env_size: Option<usize>,
        uboot_env_redundant: bool,
        headers: Option<Bound<'py, PyAny>>,
        params: Option<Bound<'py, PyAny>>,
        connect_timeout: f64,
        heartbeat_interval: f64,
        heartbeat_timeout: f64,
        timeout: f64,
        rejoin_after: f64,
        reconnect: bool,
        backoff_initial: f64,
        backoff_max: f64,
        backoff_jitter: f64,
        stable_after: f64,
        event_capacity: usize,
        on_state: Option<Bound<'py, PyAny>>,
        delivery: &str,
        device_rejoin_after_close: f64,
        serializer: &str,
        console_upload_dir: Option<PathBuf>,
        console_max_upload_size: Option<u64>,
        proxy: Option<String>,
        no_proxy: Option<String>,
        proxy_from_env: bool,
    ) -> PyResult<PyClassInitializer<Device>> {
        let delivery = Delivery::parse_for::<CoreDevice>(delivery)?;
        let on_state = callable(on_state, "on_state")?;
        let socket = Options {
            url: url.clone(),
            ca,
            cert,
            key,
            server_name,
            headers,
            params,
            connect_timeout,
            heartbeat_interval,
            heartbeat_timeout,
            timeout,
            rejoin_after,
            rejoin_after_close: false,
            reconnect,
            backoff_initial,
            backoff_max,
            backoff_jitter,
            stable_after,
            outbound_capacity: 1024,
            event_capacity,
            max_message_size: 8 * 1024 * 1024,
            read_buffer_size: 4096,
            serializer: serializer.to_owned(),
            proxy,
            no_proxy,
            proxy_from_env,
        };
        let config = DeviceOptions {
            shared_secret,
            clock_offset,
            device_api_version: device_api_version.to_owned(),
            metadata,
            fwup_env_path,
            fwup_version,
            update_tool: update_tool.to_owned(),
            request_fwup_public_keys,
            request_archive_public_keys,
            firmware_validated,
            validation_poll_interval,
            scripts,
            console,
            console_shell,
            console_shell_timeout,
            console_shell_env,
            console_decline_file_uploads,
            extensions,
            report_timeout,
            auto_update,
            fwup_public_keys,
            require_fwup_public_keys,
            allow_unverified_firmware,
            uboot_env_path,
            uboot_env_size,
            uboot_env_redundant,
            device_rejoin_after_close,
            console_upload_dir,
            console_max_upload_size,
        }
        .into_config(socket)?;
        let core = CoreDevice::new(config).map_err(py_err)?;
        let router = DeviceRouter::new(on_state);
        let socket = core.socket().clone();
        let (handle, base) = PyHandle::new(core, &socket, router, delivery, &url)?;
        Ok(base.add_subclass(Device { handle }))
    }

    /// Whether the ``device`` channel is joined, as far as events tell.
    #[getter]
    fn joined(&self) -> bool {
        self.router.lock_seen().joined
    }

    /// Calls ``handler(event)`` for each event of ``kind`` (see
    /// ``nerves_hub_channel.EVENT_KINDS``; ``"*"`` matches every event).
    fn on(&self, kind: &str, handler: Bound<'_, PyAny>) -> PyResult<()> {
        if !KINDS.contains(&kind) {
            return Err(invalid(format!(
                "unknown device event kind {kind:?}; known: {}",
                KINDS.join(", ")
            )));
        }
        if !handler.is_callable() {
            return Err(invalid("handler must be callable"));
        }
        self.router.on(kind.to_owned(), handler.unbind());
        Ok(())
    }

    /// Removes the handlers of ``kind`` (only ``handler`` if given);
    /// returns how many were removed.
    #[pyo3(signature = (kind, handler=None))]
    fn off(
        &self,
        py: Python<'_>,
        kind: &str,
        handler: Option<Bound<'_, PyAny>>,
    ) -> PyResult<usize> {
        self.router.off(py, kind, handler.as_ref())
    }

    /// Blocks until the ``device`` channel is joined; raises
    /// :class:`JoinError` (``reason="timeout"``) after ``timeout`` seconds
    /// (the last connection error is the ``__cause__``). Threaded only.
    #[pyo3(signature = (timeout=None))]
    fn wait_joined(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<()> {
        self.blocking_allowed("wait_joined")?;
        let deadline = deadline(timeout)?;
        let met = wait::until(py, &self.router.seen, &self.router.changed, deadline, |s| {
            s.joined || s.closed_seen
        })?;
        if self.router.lock_seen().closed_seen {
            return Err(self.closed_err());
        }
        if met {
            return Ok(());
        }
        let last = self.router.watch.lock().last_error.clone();
        Err(errors::join_deadline(
            py,
            "device",
            timeout.unwrap_or(0.0),
            last.as_ref(),
        ))
    }

    /// The update waiting for a decision, if any.
    fn pending_update<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyAny>>> {
        self.core
            .pending_update()
            .map(|u| device_convert::update_info(py, &u))
            .transpose()
    }

    /// Whether an update is being downloaded or applied.
    #[getter]
    fn update_in_progress(&self) -> bool {
        self.core.update_in_progress()
    }

    /// Blocks until the server offers an update and returns it (at once if
    /// one is pending); ``None`` after ``timeout`` seconds. Threaded only.
    #[pyo3(signature = (timeout=None))]
    fn wait_for_update<'py>(
        &self,
        py: Python<'py>,
        timeout: Option<f64>,
    ) -> PyResult<Option<Bound<'py, PyAny>>> {
        self.blocking_allowed("wait_for_update")?;
        if let Some(u) = self.core.pending_update() {
            return device_convert::update_info(py, &u).map(Some);
        }
        let deadline = deadline(timeout)?;
        let start = self.router.lock_seen().offers;
        let met = wait::until(py, &self.router.seen, &self.router.changed, deadline, |s| {
            s.offers != start
        })?;
        if !met {
            return Ok(None);
        }
        let offer: Option<UpdateInfo> = self.router.lock_seen().last_offer.clone();
        offer
            .map(|u| device_convert::update_info(py, &u))
            .transpose()
    }

    /// Downloads, verifies and applies ``update`` (default: the pending
    /// one) into exactly one of: a file ``path`` (written to
    /// ``<path>.partial``, renamed once verified), a ``sink`` object with
    /// ``write(bytes)``, ``finish()``, ``abort(reason)`` (and optionally
    /// ``begin(update)`` and ``stage = "updating"``), or a ``fwup`` command
    /// reading the image on stdin. Returns at once; progress and the end
    /// arrive as ``update_progress`` and ``update_finished`` events and
    /// :meth:`wait_update` waits for the end. Raises
    /// :class:`InvalidArgument` if another update is being applied, and
    /// :class:`UpdateError` if it cannot start.
    #[pyo3(signature = (
        update=None, *, path=None, sink=None, fwup=None, idle_timeout=60.0, max_disconnects=10,
        retry_delay=15.0, max_total=86400.0, ca=None, headers=None
    ))]
    #[allow(clippy::too_many_arguments)]
    fn apply_update(
        &self,
        update: Option<Bound<'_, PyAny>>,
        path: Option<PathBuf>,
        sink: Option<Bound<'_, PyAny>>,
        fwup: Option<Vec<String>>,
        idle_timeout: f64,
        max_disconnects: u32,
        retry_delay: f64,
        max_total: f64,
        ca: Option<Bound<'_, PyAny>>,
        headers: Option<BTreeMap<String, String>>,
    ) -> PyResult<()> {
        let options = UpdateArgs {
            path,
            sink,
            fwup,
            idle_timeout,
            max_disconnects,
            retry_delay,
            max_total,
            ca,
            headers,
        }
        .into_options()?;
        let info = match update.filter(|u| !u.is_none()) {
            Some(u) => update_from_python(&u)?,
            None => self
                .core
                .pending_update()
                .ok_or_else(|| invalid("no update is waiting for a decision"))?,
        };
        {
            let mut seen = self.router.lock_seen();
            if seen.starting || self.core.update_in_progress() {
                return Err(invalid("an update is already being applied"));
            }
            seen.starting = true;
            seen.start_end = None;
        }
        // Not under the lock: the start queues events, and they are
        // observed (under that lock) on this thread; see `Seen::starting`.
        let started = self.core.apply_update(&info, options);
        let mut seen = self.router.lock_seen();
        seen.starting = false;
        let end = seen.start_end.take();
        match started {
            Ok(()) => {
                seen.applied += 1;
                // It ended before the start returned.
                if let Some(outcome) = end {
                    seen.finished += 1;
                    seen.outcome = Some(outcome);
                }
                drop(seen);
                self.router.changed.notify_all();
                Ok(())
            }
            Err(e) => {
                // A failed start is reported as `failed` and `UpdateFinished`,
                // unless the runtime itself is gone (nothing was started);
                // an end not seen yet is skipped when it comes.
                use nerves_hub_channel::Error as E;
                if end.is_none() && !matches!(e, E::Forked | E::Connect(_)) {
                    seen.skip += 1;
                }
                Err(new_update_error(format!("Update failed : {e}")))
            }
        }
    }

    /// Blocks until the update started by the last :meth:`apply_update`
    /// ends: returns on success, raises :class:`UpdateError` (``reason`` as
    /// reported to the server) on failure or cancellation, and
    /// :class:`TimeoutError` after ``timeout`` seconds. Returns at once
    /// when that update already ended. Threaded only.
    #[pyo3(signature = (timeout=None))]
    fn wait_update(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<()> {
        self.blocking_allowed("wait_update")?;
        let deadline = deadline(timeout)?;
        let target = self.router.lock_seen().applied;
        if target == 0 {
            return Err(invalid("no update was applied"));
        }
        let met = wait::until(py, &self.router.seen, &self.router.changed, deadline, |s| {
            s.finished >= target || s.closed_seen
        })?;
        let s = self.router.lock_seen();
        if s.finished < target {
            if !met {
                return Err(pyo3::exceptions::PyTimeoutError::new_err(
                    "the update did not finish in time",
                ));
            }
            return Err(self.closed_err());
        }
        match s.outcome.clone() {
            Some(Err(reason)) => Err(new_update_error(reason)),
            _ => Ok(()),
        }
    }

    /// Downloads the last archive the server offered (the ``archive`` event)
    /// into ``path``, a ``sink`` object or a ``fwup`` command, with the same
    /// resume and retry rules as firmware, and returns when it is complete.
    /// Nothing is reported to the server, and the archive carries no
    /// checksum: verify it in the sink. The GIL is released while waiting.
    /// Raises :class:`InvalidArgument` if no archive was offered,
    /// :class:`UpdateError` if the download failed, and ``TimeoutError``
    /// (after cancelling it) when ``timeout`` seconds pass.
    #[pyo3(signature = (
        *, path=None, sink=None, fwup=None, idle_timeout=60.0, max_disconnects=10,
        retry_delay=15.0, max_total=86400.0, ca=None, headers=None, timeout=None
    ))]
    #[allow(clippy::too_many_arguments)]
    fn download_archive(
        &self,
        py: Python<'_>,
        path: Option<PathBuf>,
        sink: Option<Bound<'_, PyAny>>,
        fwup: Option<Vec<String>>,
        idle_timeout: f64,
        max_disconnects: u32,
        retry_delay: f64,
        max_total: f64,
        ca: Option<Bound<'_, PyAny>>,
        headers: Option<BTreeMap<String, String>>,
        timeout: Option<f64>,
    ) -> PyResult<()> {
        let options = UpdateArgs {
            path,
            sink,
            fwup,
            idle_timeout,
            max_disconnects,
            retry_delay,
            max_total,
            ca,
            headers,
        }
        .into_options()?;
        let deadline = deadline(timeout)?;
        let archive = self
            .core
            .pending_archive()
            .ok_or_else(|| invalid("no archive was offered"))?;
        let handle = self
            .core
            .download_archive(&archive, options)
            .map_err(py_err)?;
        match wait::future(py, Box::pin(handle.outcome()), deadline)? {
            Some(Ok(())) => Ok(()),
            Some(Err(reason)) => Err(new_update_error(reason)),
            None => {
                handle.cancel();
                Err(pyo3::exceptions::PyTimeoutError::new_err(
                    "the archive download did not finish in time",
                ))
            }
        }
    }

    /// Declines the pending update; the server is told ``ignored``.
    fn ignore_update(&self, reason: &str) -> PyResult<()> {
        self.core.ignore_update(reason).map_err(py_err)
    }

    /// Postpones the pending update by ``delay`` seconds; the server is
    /// told ``rescheduled`` with ``delay_for`` in milliseconds.
    #[pyo3(signature = (delay, reason=None))]
    fn reschedule_update(&self, delay: f64, reason: Option<&str>) -> PyResult<()> {
        let delay = Duration::try_from_secs_f64(delay)
            .map_err(|_| invalid("delay must be a finite number of seconds >= 0"))?;
        self.core.reschedule_update(delay, reason).map_err(py_err)
    }

    /// Stops the update being applied (the server is told ``failed``
    /// "Update cancelled"); False if none was.
    fn cancel_update(&self) -> bool {
        self.core.cancel_update()
    }

    /// Like ``cancel_update``, for a program that is leaving: a file sink
    /// keeps the verified bytes, and the same update applied again (even
    /// after a restart) downloads only the rest.
    fn suspend_update(&self) -> bool {
        self.core.suspend_update()
    }

    /// Tells the server the running firmware is validated.
    fn firmware_validated(&self) -> PyResult<()> {
        self.core.firmware_validated().map_err(py_err)
    }

    /// Answers a ``script_run`` event; ``result`` is ``"completed"`` or ``"error"``.
    #[pyo3(signature = (script_ref, result, output="", returned="nil"))]
    fn script_result(
        &self,
        script_ref: &str,
        result: &str,
        output: &str,
        returned: &str,
    ) -> PyResult<()> {
        self.core
            .script_result(script_ref, result, output, returned)
            .map_err(py_err)
    }

    /// Tells the server which network interface the device uses.
    fn report_network_interface(&self, name: &str) -> PyResult<()> {
        self.core.report_network_interface(name).map_err(py_err)
    }

    /// Replaces the firmware metadata sent at the next (re)join.
    fn set_metadata(&self, metadata: Bound<'_, PyDict>) -> PyResult<()> {
        let mut m = nerves_hub_channel::nerves_hub::FirmwareMetadata::new();
        for (k, v) in metadata.iter() {
            m.set(k.extract::<String>()?, v.extract::<String>()?);
        }
        self.core.set_metadata(m);
        Ok(())
    }

    /// Sends terminal output to the remote console (``console=True``).
    fn console_output(&self, data: &str) -> PyResult<()> {
        let console = self
            .core
            .console()
            .ok_or_else(|| invalid("the console is not enabled; pass console=True"))?;
        console.send_output(data).map_err(py_err)
    }

    /// Sends the file at ``path`` to the browsers attached to the console
    /// (device-to-browser download; needs ``console_upload_dir``; files of
    /// 10 MiB or more are refused). Blocks until every chunk is queued.
    fn console_send_file(&self, py: Python<'_>, path: PathBuf) -> PyResult<()> {
        let console = self
            .core
            .console()
            .ok_or_else(|| invalid("the console is not enabled; pass console=True"))?;
        py.detach(|| console.send_file(&path)).map_err(py_err)
    }

    /// Sends a log line through the ``logging`` extension (rate-limited to
    /// 5 lines/s, burst 10); ``level`` is ``"error"``, ``"warning"``,
    /// ``"info"`` or ``"debug"``. Dropped while not attached.
    #[pyo3(signature = (level, message, meta=None))]
    fn log(
        &self,
        level: &str,
        message: &str,
        meta: Option<BTreeMap<String, String>>,
    ) -> PyResult<()> {
        let ext = self.extensions()?;
        let level: LogLevel = level.parse().map_err(|e: String| invalid(e))?;
        let meta = meta.unwrap_or_default();
        let pairs: Vec<(&str, &str)> = meta.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        ext.log(level, message, &pairs).map_err(py_err)
    }

    /// Sets a metric sent with every later health report.
    fn report_metric(&self, name: &str, value: f64) -> PyResult<()> {
        self.extensions()?.report_metric(name, value);
        Ok(())
    }

    /// Sends a health report now, as the server's ``health:check`` does;
    /// ``False`` when the server has not attached ``health`` (nothing sent).
    fn send_health_report(&self) -> PyResult<bool> {
        self.extensions()?.send_health_report().map_err(py_err)
    }

    /// The firmware signing keys the device knows: ``fwup_public_keys``, or
    /// the last non-empty list the server sent.
    #[getter]
    fn fwup_public_keys(&self) -> Vec<String> {
        self.core.fwup_public_keys()
    }

    /// The extensions the server attached.
    #[getter]
    fn attached_extensions(&self) -> Vec<String> {
        self.core
            .extensions()
            .map(|e| e.attached())
            .unwrap_or_default()
    }

    /// Pushes ``event`` on the ``device`` channel without waiting (for
    /// events this layer does not model).
    #[pyo3(signature = (event, payload=None))]
    fn cast(&self, event: &str, payload: Option<Bound<'_, PyAny>>) -> PyResult<()> {
        let payload = match payload {
            Some(p) => crate::convert::to_payload(&p)?,
            None => nerves_hub_channel::Payload::empty(),
        };
        self.core
            .device_channel()
            .cast(event, payload, Duration::from_secs(60))
            .map(drop)
            .map_err(py_err)
    }
}

impl Device {
    fn extensions(&self) -> PyResult<&nerves_hub_channel::nerves_hub::extensions::Extensions> {
        self.core
            .extensions()
            .ok_or_else(|| invalid("no extensions are enabled; pass extensions={...}"))
    }
}

fn deadline(timeout: Option<f64>) -> PyResult<Option<Instant>> {
    let timeout = timeout
        .map(|t| duration::seconds(t, "timeout"))
        .transpose()?;
    Ok(wait::deadline(timeout))
}

fn new_update_error(reason: String) -> PyErr {
    Python::attach(|py| {
        let built = py
            .import("nerves_hub_channel._errors")
            .and_then(|m| m.getattr("UpdateError"))
            .and_then(|cls| cls.call1((reason.clone(),)));
        match built {
            Ok(exc) => PyErr::from_value(exc),
            Err(e) => e,
        }
    })
}

/// An `UpdateInfo` (or a raw `update` payload dict) back to the core's.
fn update_from_python(update: &Bound<'_, PyAny>) -> PyResult<UpdateInfo> {
    let raw = if update.is_instance_of::<PyDict>() {
        update.clone()
    } else {
        update
            .getattr("raw")
            .map_err(|_| invalid("update must be an UpdateInfo (or its raw payload dict)"))?
    };
    let payload = crate::convert::to_payload(&raw)?;
    let value = payload
        .to_value()
        .ok_or_else(|| invalid("the update payload must be a JSON object"))?;
    UpdateInfo::parse(&value).map_err(|e| invalid(format!("unusable update: {e}")))
}

/// Reads a binary U-Boot environment image (the file or partition
/// ``fw_printenv`` reads) of ``env_size`` bytes per copy and returns all its
/// ``key=value`` entries. ``redundant=True`` for ``CONFIG_ENV_REDUNDANT``
/// (a flag byte after the CRC; the image may hold both copies, the newer
/// valid one is used). Raises :class:`InvalidArgument` on a CRC mismatch,
/// a size that does not fit, or an unreadable file.
#[pyfunction]
#[pyo3(signature = (path, env_size, *, redundant=false))]
pub fn read_uboot_env(
    path: PathBuf,
    env_size: usize,
    redundant: bool,
) -> PyResult<BTreeMap<String, String>> {
    nerves_hub_channel::nerves_hub::uboot_env::read(
        path,
        env_size,
        crate::device_options::layout(redundant),
    )
    .map_err(py_err)
}
