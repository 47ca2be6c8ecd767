//! How a NervesHub device connects, what it reports at join, and how it
//! decides about updates.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::console::ConsoleOptions;
use super::extensions::ExtensionsOptions;
use super::metadata::FirmwareMetadata;
use super::update::UpdateOptions;
use crate::config::{HeaderProvider, SocketConfig};
use crate::error::{Error, Result};

/// Tells whether the running firmware is validated (committed): `Some(true)`
/// validated, `Some(false)` not yet, `None` unknown. Called on a library
/// worker thread, never on an I/O thread; it should return quickly.
pub type FirmwareValidatedFn = Arc<dyn Fn() -> Option<bool> + Send + Sync>;

/// What the device does when the server offers an update.
// One per device: boxing the options would only complicate the API.
#[allow(clippy::large_enum_variant)]
#[derive(Clone)]
pub enum UpdatePolicy {
    /// Emit `DeviceEvent::UpdateAvailable` and wait for the user's decision
    /// (`apply_update`, `ignore_update`, `reschedule_update`).
    Manual,
    /// Apply every update whose firmware UUID differs from the running one
    /// (`nerves_fw_uuid`); ignore the others.
    Auto(UpdateOptions),
}

impl fmt::Debug for UpdatePolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UpdatePolicy::Manual => f.write_str("Manual"),
            UpdatePolicy::Auto(_) => f.write_str("Auto(..)"),
        }
    }
}

/// Everything a `Device` needs. Build with `DeviceConfig::new(socket)`.
#[derive(Clone)]
pub struct DeviceConfig {
    /// URL must end in `/device-socket/websocket` (NH1 shared secret) or
    /// `/socket/websocket` (mutual TLS: set `socket.tls` client cert and key).
    pub socket: SocketConfig,
    /// NH1 shared-secret signing (e.g. `nerves_hub::nh1::Nh1Auth`); replaces
    /// `socket.header_provider` when set.
    pub auth: Option<Arc<dyn HeaderProvider>>,
    /// Sent as `device_api_version`; 2.2.0 or later gets `extensions:get`,
    /// 2.1.0 or later gets `scripts/run`.
    pub device_api_version: String,
    /// The running firmware's `nerves_fw_*` keys, sent at every join.
    pub metadata: FirmwareMetadata,
    /// Output of `fwup --version`; without it the server sends full images only.
    pub fwup_version: Option<String>,
    /// `"fwup"` or `"esp-idf"`.
    pub update_tool: String,
    /// Ask the server for the organisation's firmware signing keys at every join.
    pub request_fwup_public_keys: bool,
    /// Firmware signing keys known before the server sends any (fwup public
    /// keys: base64 of 32 bytes, the content of `fwup-key.pub`). A
    /// `fwup_public_keys` event with at least one key replaces them; they
    /// are passed to `fwup` sinks as `--public-key` arguments.
    pub fwup_public_keys: Vec<String>,
    /// Refuse every update while no fwup public key is known (reported as
    /// `failed` "Refusing unverified firmware : no public keys available",
    /// like nerves_hub_link), whatever the sink. Off by default: updates
    /// into a fwup sink are refused without keys anyway (see
    /// `allow_unverified_firmware`); images written to files or custom
    /// sinks are not signature-checked by the library. With it on and no
    /// configured key, the keys are requested at every join.
    pub require_fwup_public_keys: bool,
    /// Let a fwup sink apply firmware while no fwup public key is known
    /// (fwup then checks no signature). Off by default: like
    /// nerves_hub_link, such an update is refused and reported as `failed`
    /// "Refusing unverified firmware : no public keys available".
    pub allow_unverified_firmware: bool,
    /// Ask the server for the organisation's archive signing keys at every join.
    pub request_archive_public_keys: bool,
    /// Sent as `meta.firmware_validated`; while it says `Some(false)` it is
    /// polled, and `firmware_validated` is pushed once it says `Some(true)`.
    pub firmware_validated: Option<FirmwareValidatedFn>,
    pub validation_poll_interval: Duration,
    pub update_policy: UpdatePolicy,
    /// Deliver `scripts/run` as `DeviceEvent::ScriptRun`; otherwise the
    /// device answers that scripts are not supported.
    pub scripts: bool,
    /// `Some`: join the remote `console` topic (see `nerves_hub::console`).
    pub console: Option<ConsoleOptions>,
    /// `Some`: offer these extensions when the server sends `extensions:get`.
    pub extensions: Option<ExtensionsOptions>,
    /// How long a status report may wait for the connection before it is
    /// given up (reported as `Event::Reply` with `NotSent`/`Timeout`).
    pub report_timeout: Duration,
    /// After the server closed `device` with `phx_close`: `Some(delay)`
    /// rejoins it after `delay` (default 5 s: a device left un-joined can
    /// never get updates); `None` leaves it closed until `Device::connect`.
    /// `socket.rejoin_after_close`, when set, rejoins every channel anyway.
    pub device_rejoin_after_close: Option<Duration>,
}

impl fmt::Debug for DeviceConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeviceConfig")
            .field("socket", &self.socket)
            .field("auth", &self.auth.is_some())
            .field("device_api_version", &self.device_api_version)
            .field("metadata", &self.metadata)
            .field("update_policy", &self.update_policy)
            .field("console", &self.console)
            .field("extensions", &self.extensions)
            .finish_non_exhaustive()
    }
}

/// The default of `device_rejoin_after_close`.
pub const DEFAULT_DEVICE_REJOIN: Duration = Duration::from_secs(5);

const DEVICE_PATHS: [&str; 2] = ["/device-socket/websocket", "/socket/websocket"];

impl DeviceConfig {
    pub fn new(socket: SocketConfig) -> DeviceConfig {
        DeviceConfig {
            socket,
            auth: None,
            device_api_version: "2.3.0".into(),
            metadata: FirmwareMetadata::new(),
            fwup_version: None,
            update_tool: "fwup".into(),
            request_fwup_public_keys: false,
            fwup_public_keys: Vec::new(),
            require_fwup_public_keys: false,
            allow_unverified_firmware: false,
            request_archive_public_keys: false,
            firmware_validated: None,
            validation_poll_interval: Duration::from_secs(10),
            update_policy: UpdatePolicy::Manual,
            scripts: false,
            console: None,
            extensions: None,
            report_timeout: Duration::from_secs(60),
            device_rejoin_after_close: Some(DEFAULT_DEVICE_REJOIN),
        }
    }

    /// The socket configuration to use, checked for NervesHub's needs.
    pub(crate) fn socket_config(&self) -> Result<SocketConfig> {
        let url = self.socket.endpoint_url()?;
        // A suffix, not the whole path: a reverse proxy or load balancer may
        // serve NervesHub under a path prefix (and redirect from there).
        if !DEVICE_PATHS.iter().any(|p| url.path().ends_with(p)) {
            return Err(Error::InvalidArgument(format!(
                "a NervesHub device URL ends in /device-socket/websocket (shared secret) or /socket/websocket (mutual TLS), got path {:?}",
                url.path()
            )));
        }
        if self.device_api_version.trim().is_empty() {
            return Err(Error::InvalidArgument(
                "device_api_version must not be empty".into(),
            ));
        }
        if self.validation_poll_interval.is_zero() || self.report_timeout.is_zero() {
            return Err(Error::InvalidArgument(
                "validation_poll_interval and report_timeout must be greater than zero".into(),
            ));
        }
        if self.device_rejoin_after_close.is_some_and(|d| d.is_zero()) {
            return Err(Error::InvalidArgument(
                "device_rejoin_after_close must be greater than zero (or none: never rejoin)"
                    .into(),
            ));
        }
        for key in &self.fwup_public_keys {
            super::fwup_keys::validate_key(key)?;
        }
        let mut socket = self.socket.clone();
        if let Some(auth) = &self.auth {
            socket.header_provider = Some(auth.clone());
        }
        Ok(socket)
    }
}
