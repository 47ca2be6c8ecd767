//! The NervesHub device handle: a socket, the `device` channel, and one
//! ordered stream of `DeviceEvent`s fed by the agent task.

use std::os::fd::RawFd;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::{json, Value};
use tokio::sync::Notify;

use super::agent;
use super::console::Console;
use super::device_config::{DeviceConfig, FirmwareValidatedFn, UpdatePolicy};
use super::device_events::{ArchiveInfo, DeviceEvent};
use super::extensions::Extensions;
use super::fwup_keys::FwupKeys;
use super::join::JoinState;
use super::metadata::FirmwareMetadata;
use super::update::{UpdateHandle, UpdateOptions, UpdateStatus};
use super::update_flow::{self, UpdatePhase};
use super::update_info::UpdateInfo;
use crate::channel::Channel;
use crate::error::{Error, Result};
use crate::message::Payload;
use crate::pull::Puller;
use crate::queue::{EventQueue, Handler};
use crate::socket::Socket;
use crate::{runtime, ConnectionState};

/// The topic NervesHub devices join.
pub const DEVICE_TOPIC: &str = "device";

/// State shared by the handle, the agent task and update reporters.
pub(crate) struct Core {
    pub socket: Socket,
    pub channel: Channel,
    pub queue: Arc<EventQueue<DeviceEvent>>,
    pub join: Arc<JoinState>,
    pub update: Mutex<UpdatePhase>,
    /// The last archive the server offered.
    pub archive: Mutex<Option<ArchiveInfo>>,
    pub policy: UpdatePolicy,
    pub fwup_keys: FwupKeys,
    pub require_fwup_keys: bool,
    /// A fwup sink may apply firmware without keys.
    pub allow_unverified: bool,
    pub scripts: bool,
    pub report_timeout: Duration,
    pub validated_fn: Option<FirmwareValidatedFn>,
    pub poll_interval: Duration,
    /// Delay before rejoining `device` after the server closed it; `None`: never.
    pub rejoin_after_close: Option<Duration>,
    pub poller_running: Mutex<bool>,
    pub console: Option<Console>,
    pub extensions: Option<Extensions>,
    /// Set when the last handle is gone: the agent stops waiting for a
    /// consumer that will never come.
    pub abandoned: Notify,
    pub is_abandoned: std::sync::atomic::AtomicBool,
    /// The socket's proxy setting, for downloads that do not set their own.
    pub proxy: crate::proxy::ProxyConfig,
}

impl Core {
    pub fn lock_update(&self) -> MutexGuard<'_, UpdatePhase> {
        self.update.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Fire-and-forget push on the device channel (NervesHub never replies
    /// to device events). A failure to queue it is logged: there is no one
    /// to return it to when it comes from the agent.
    pub fn cast(&self, event: &str, payload: Value) {
        if let Err(e) = self.try_cast(event, payload) {
            log::warn!("cannot send {event:?} on the device channel: {e}");
        }
    }

    pub fn try_cast(&self, event: &str, payload: Value) -> Result<()> {
        self.channel
            .cast(event, Payload::json(&payload), self.report_timeout)
            .map(|_| ())
    }

    pub fn report(&self, status: &UpdateStatus) {
        self.cast("status_update", status.to_payload());
    }

    pub fn emit(&self, event: DeviceEvent) {
        self.queue.push(event);
    }
}

struct DeviceInner {
    core: Arc<Core>,
}

impl Drop for DeviceInner {
    fn drop(&mut self) {
        self.core.socket.close();
        self.core
            .is_abandoned
            .store(true, std::sync::atomic::Ordering::Release);
        self.core.abandoned.notify_one();
    }
}

/// A NervesHub device connection. Cheap to clone; every clone is the same
/// device. All methods may be called from any thread, including handlers.
#[derive(Clone)]
pub struct Device {
    inner: Arc<DeviceInner>,
}

impl Device {
    /// Validates the configuration and prepares the socket and the `device`
    /// channel. Nothing is sent until `connect`.
    pub fn new(config: DeviceConfig) -> Result<Device> {
        let socket_config = config.socket_config()?;
        let capacity = socket_config.event_capacity;
        let proxy = socket_config.proxy.clone();
        let socket = Socket::new(socket_config)?;
        // Asked once here, on the caller's thread; later by the poller.
        let validated = config.firmware_validated.as_ref().and_then(|f| f());
        let join = JoinState::new(&config, validated);
        let console = match config.console {
            Some(mut opts) => {
                opts.device_api_version = config.device_api_version.clone();
                join.set_extra("console_version", json!(opts.announced_version()));
                Some(Console::new(&socket, opts)?)
            }
            None => None,
        };
        let extensions = config
            .extensions
            .map(|opts| Extensions::new(&socket, opts))
            .transpose()?;
        let channel = socket.channel(DEVICE_TOPIC, join.params())?;
        let core = Arc::new(Core {
            proxy,
            socket,
            channel,
            queue: EventQueue::new(capacity),
            join,
            update: Mutex::new(UpdatePhase::Idle),
            archive: Mutex::new(None),
            policy: config.update_policy,
            fwup_keys: FwupKeys::new(&config.fwup_public_keys),
            require_fwup_keys: config.require_fwup_public_keys,
            allow_unverified: config.allow_unverified_firmware,
            scripts: config.scripts,
            report_timeout: config.report_timeout,
            validated_fn: config.firmware_validated,
            poll_interval: config.validation_poll_interval,
            rejoin_after_close: config.device_rejoin_after_close,
            poller_running: Mutex::new(false),
            console,
            extensions,
            abandoned: Notify::new(),
            is_abandoned: std::sync::atomic::AtomicBool::new(false),
        });
        runtime::handle()?.spawn(agent::run(core.clone()));
        Ok(Device {
            inner: Arc::new(DeviceInner { core }),
        })
    }

    fn core(&self) -> &Arc<Core> {
        &self.inner.core
    }

    /// Connects (and reconnects after failures) and joins `device`; the
    /// channel then rejoins by itself after errors and reconnects.
    pub fn connect(&self) -> Result<()> {
        self.core().socket.connect()?;
        // A join of an already joined channel is a no-op for the core.
        drop(self.core().channel.join()?);
        if let Some(console) = &self.core().console {
            console.join()?;
        }
        Ok(())
    }

    /// Closes the connection; `connect` resumes.
    pub fn disconnect(&self) -> Result<()> {
        self.core().socket.disconnect()
    }

    /// Closes for good; `DeviceEvent::Socket(Event::Closed)` is the last event.
    pub fn close(&self) {
        self.core().socket.close();
    }

    /// After `close`: see `Socket::wait_closed`.
    pub fn wait_closed(&self, timeout: Duration) -> bool {
        self.core().socket.wait_closed(timeout)
    }

    pub fn state(&self) -> ConnectionState {
        self.core().socket.state()
    }

    /// The underlying socket, e.g. to join more channels on the same connection.
    pub fn socket(&self) -> &Socket {
        &self.core().socket
    }

    /// The `device` channel, e.g. to push events this layer does not model.
    pub fn device_channel(&self) -> &Channel {
        &self.core().channel
    }

    /// The remote console (when `DeviceConfig::console` is set), to send output.
    pub fn console(&self) -> Option<&Console> {
        self.core().console.as_ref()
    }

    /// The extensions (when `DeviceConfig::extensions` is set), for logging and metrics.
    pub fn extensions(&self) -> Option<&Extensions> {
        self.core().extensions.as_ref()
    }

    /// The next event; `None` once the device is closed and drained.
    pub async fn next_event(&self) -> Option<DeviceEvent> {
        self.core().queue.pop_async().await
    }

    /// Waits up to `timeout` for the next event.
    pub fn recv_timeout(&self, timeout: Duration) -> Option<DeviceEvent> {
        self.core().queue.pop_timeout(timeout)
    }

    pub fn try_recv(&self) -> Option<DeviceEvent> {
        self.core().queue.try_pop()
    }

    /// A descriptor readable while device events are pending (polled mode).
    pub fn event_fd(&self) -> Result<RawFd> {
        self.core()
            .queue
            .fd()
            .map_err(|e| Error::Connect(format!("cannot create the event descriptor: {e}")))
    }

    /// Threaded mode: `handler` gets every device event, in order, on the
    /// library's dispatcher thread. `None` removes it.
    pub fn set_handler(&self, handler: Option<Handler<DeviceEvent>>) {
        self.core().queue.set_handler(handler);
    }

    /// Pulled mode (see [`Puller`]): a consumer on a thread of its own takes
    /// the device events, told by `puller` when there are some. Unlike
    /// inline handlers, fine for a device: `puller` only records and hands
    /// over, whichever thread produced the event. Installed once, instead
    /// of a handler.
    pub fn set_pull(&self, puller: Arc<dyn Puller<DeviceEvent>>) -> Result<()> {
        self.core().queue.set_pull(puller)
    }

    /// Replaces the firmware metadata sent at the next (re)join.
    pub fn set_metadata(&self, metadata: FirmwareMetadata) {
        self.core().join.set_metadata(metadata);
    }

    /// The update waiting for a decision (`UpdatePolicy::Manual`), if any.
    pub fn pending_update(&self) -> Option<UpdateInfo> {
        match &*self.core().lock_update() {
            UpdatePhase::Pending(info) => Some(info.clone()),
            _ => None,
        }
    }

    /// The last archive the server offered (`DeviceEvent::Archive`), if any.
    pub fn pending_archive(&self) -> Option<ArchiveInfo> {
        self.core()
            .archive
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Downloads `archive` into the options' sink (same resume and retry
    /// rules as firmware). Wait for the end with the returned handle.
    pub fn download_archive(
        &self,
        archive: &ArchiveInfo,
        mut options: UpdateOptions,
    ) -> Result<UpdateHandle> {
        options
            .download
            .proxy
            .get_or_insert_with(|| self.core().proxy.clone());
        super::archive::start_archive_download(archive, options)
    }

    /// The firmware signing keys the device knows: the configured ones, or
    /// the last non-empty list the server sent.
    pub fn fwup_public_keys(&self) -> Vec<String> {
        self.core().fwup_keys.get()
    }

    /// True while an update is being downloaded or applied.
    pub fn update_in_progress(&self) -> bool {
        matches!(*self.core().lock_update(), UpdatePhase::Applying { .. })
    }

    /// Downloads and applies `update` (usually the one of
    /// `DeviceEvent::UpdateAvailable`), reporting progress to the server and
    /// as `UpdateProgress` events; `UpdateFinished` ends it.
    pub fn apply_update(&self, update: &UpdateInfo, options: UpdateOptions) -> Result<()> {
        update_flow::apply(self.core(), update.clone(), options)
    }

    /// Stops the update being applied; the server is told `failed` with
    /// "Update cancelled". False if no update was being applied.
    pub fn cancel_update(&self) -> bool {
        update_flow::cancel(self.core(), false)
    }

    /// Like `cancel_update`, for a program that is leaving (SIGTERM): a
    /// resumable sink (a file) keeps the verified bytes, and when the same
    /// update (same firmware UUID and URL path) is applied again, even
    /// after a restart, only the rest is downloaded (HTTP `Range`). The
    /// whole image is verified as usual.
    pub fn suspend_update(&self) -> bool {
        update_flow::cancel(self.core(), true)
    }

    /// Declines the pending update; the server is told `ignored {reason}`.
    pub fn ignore_update(&self, reason: &str) -> Result<()> {
        let info = self.take_pending()?;
        log::info!("update {} ignored: {reason}", info.firmware_meta.uuid);
        self.core().report(&UpdateStatus::Ignored {
            reason: reason.to_owned(),
        });
        Ok(())
    }

    /// Postpones the pending update; the server is told `rescheduled` with
    /// `delay_for` in milliseconds, the unit nerves_hub_web reads (link
    /// sends minutes, which the server takes as milliseconds). A zero delay
    /// is refused: to decline the update, ignore it.
    pub fn reschedule_update(&self, delay: Duration, reason: Option<&str>) -> Result<()> {
        if delay.is_zero() {
            return Err(Error::InvalidArgument(
                "the reschedule delay must be longer than zero (to decline the update, ignore it)"
                    .into(),
            ));
        }
        let info = self.take_pending()?;
        log::info!(
            "update {} rescheduled in {} ms",
            info.firmware_meta.uuid,
            delay.as_millis()
        );
        self.core().report(&UpdateStatus::Rescheduled {
            delay,
            reason: reason.map(str::to_owned),
        });
        Ok(())
    }

    fn take_pending(&self) -> Result<UpdateInfo> {
        let mut phase = self.core().lock_update();
        match std::mem::replace(&mut *phase, UpdatePhase::Idle) {
            UpdatePhase::Pending(info) => Ok(info),
            other => {
                *phase = other;
                Err(Error::InvalidArgument(
                    "no update is waiting for a decision".into(),
                ))
            }
        }
    }

    /// Tells the server the running firmware is validated (`firmware_validated {}`).
    pub fn firmware_validated(&self) -> Result<()> {
        self.core().join.set_validated(Some(true));
        self.core().try_cast("firmware_validated", json!({}))
    }

    /// Answers a `ScriptRun`: `result` is "completed" or "error".
    pub fn script_result(
        &self,
        script_ref: &str,
        result: &str,
        output: &str,
        returned: &str,
    ) -> Result<()> {
        if !matches!(result, "completed" | "error") {
            return Err(Error::InvalidArgument(format!(
                "script result must be \"completed\" or \"error\", got {result:?}"
            )));
        }
        self.core().try_cast(
            "scripts/run",
            json!({"ref": script_ref, "result": result, "output": output, "return": returned}),
        )
    }

    /// Tells the server which network interface the device uses (`eth0`, `wlan0`...).
    pub fn report_network_interface(&self, name: &str) -> Result<()> {
        if name.is_empty() {
            return Err(Error::InvalidArgument(
                "the interface name must not be empty".into(),
            ));
        }
        self.core()
            .try_cast("report_network_interface", json!({"interface": name}))
    }
}
