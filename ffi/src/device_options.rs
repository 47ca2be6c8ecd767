//! `nhc_device_options`: everything `nhc_device_new` needs, versioned by
//! its size like `nhc_socket_options`.

use std::ffi::c_char;
use std::sync::Arc;
use std::time::Duration;

use nerves_hub_channel::nerves_hub::console::{ConsoleOptions, ShellOptions};
use nerves_hub_channel::nerves_hub::extensions::{ExtensionsOptions, HealthOptions};
use nerves_hub_channel::nerves_hub::nh1::{Nh1Auth, Nh1Digest, SharedSecret};
use nerves_hub_channel::nerves_hub::{DeviceConfig, FirmwareMetadata, UpdatePolicy};

use crate::args::{opt_str_arg, str_arg};
use crate::boundary::boundary_pure;
use crate::closure::Owned;
use crate::device_closure::{nhc_device_event_closure, nhc_geo_closure, nhc_validated_closure};
use crate::error::{invalid, FfiResult};
use crate::nhc_result;
use crate::options::{self, nhc_delivery, nhc_key_value, nhc_socket_options};
use crate::update_options::{self, nhc_update_options};
use crate::versioned;

/// Everything `nhc_device_new` needs. Fill it with
/// `nhc_device_options_default(&opts)`, then set the fields you need.
/// Pointers are borrowed until `nhc_device_new` returns, which copies
/// everything; the closures (`on_event`, `firmware_validated`, the `sink`
/// of `auto_update`, the `on_state` of `socket`) are moved into it, also on
/// failure. New fields are only appended (`struct_size`).
///
/// Authentication: mutual TLS through `socket` (`cert_*`, `key_*`, and the
/// URL path `/socket/websocket`), or an NH1 shared secret (`nh1_key`,
/// `nh1_secret`, `nh1_identifier`; path `/device-socket/websocket`).
#[allow(non_camel_case_types)]
#[repr(C)]
pub struct nhc_device_options {
    /// `sizeof(nhc_device_options)` as compiled; set by `nhc_device_options_default`.
    pub struct_size: usize,
    /// Required: the connection, as for a socket (filled with
    /// `nhc_socket_options_default`): `url` ending in `/socket/websocket`
    /// or `/device-socket/websocket`, TLS material, timeouts, and
    /// `delivery`, which also chooses how device events are delivered
    /// (`nhc_device_dispatch` for POLLED). Its `on_state` must have no
    /// `call`: state changes arrive as `NHC_DEVICE_EVENT_STATE`.
    pub socket: *const nhc_socket_options,
    /// Receives every device event.
    pub on_event: nhc_device_event_closure,
    /// NH1: the shared key (`nhp_...` product key or `nhd_...` device key).
    /// Setting it requires `nh1_secret` and `nh1_identifier`.
    pub nh1_key: *const c_char,
    /// NH1: the secret (never logged).
    pub nh1_secret: *const c_char,
    /// NH1: the device identifier (usually the serial number).
    pub nh1_identifier: *const c_char,
    /// NH1: "sha256" (default when NULL), "sha384" or "sha512".
    pub nh1_digest: *const c_char,
    /// NH1: PBKDF2 iterations (default 1000).
    pub nh1_iterations: u32,
    /// NH1: derived key length in bytes (default 32).
    pub nh1_key_length: u32,
    /// Sent as `device_api_version` (NULL: "2.3.0").
    pub device_api_version: *const c_char,
    /// Firmware metadata (`nerves_fw_uuid`, `nerves_fw_version`, ...), sent
    /// at every join. Applied after `fwup_env_path`, so they override it.
    pub metadata: *const nhc_key_value,
    /// Number of `metadata` entries.
    pub metadata_len: usize,
    /// A file of `key=value` lines as printed by `fw_printenv` (U-Boot or
    /// fwup environment): the active slot's `nerves_fw_*` keys are sent.
    pub fwup_env_path: *const c_char,
    /// Output of `fwup --version` (NULL: not sent; the server then offers
    /// full images only).
    pub fwup_version: *const c_char,
    /// "fwup" (default when NULL) or "esp-idf".
    pub update_tool: *const c_char,
    /// Ask for the organisation's firmware signing keys at every join
    /// (`NHC_DEVICE_EVENT_FWUP_PUBLIC_KEYS`).
    pub request_fwup_public_keys: bool,
    /// Ask for the archive signing keys at every join.
    pub request_archive_public_keys: bool,
    /// Optional: tells whether the running firmware is validated.
    pub firmware_validated: nhc_validated_closure,
    /// How often `firmware_validated` is asked while it says 0 (default 10000; > 0).
    pub validation_poll_interval_ms: u32,
    /// NULL: every update waits for your decision (UPDATE_AVAILABLE). Else
    /// the device applies every update whose UUID differs from the running
    /// `nerves_fw_uuid` with these options (read like
    /// `nhc_device_apply_update`'s), and ignores the others.
    pub auto_update: *const nhc_update_options,
    /// Deliver `scripts/run` as `NHC_DEVICE_EVENT_SCRIPT_RUN`; otherwise the
    /// device answers that scripts are not supported.
    pub scripts_enabled: bool,
    /// Join the remote `console` topic (CONSOLE_* events, `nhc_device_console_output`).
    pub console_enabled: bool,
    /// With `console_enabled`, on Linux: the library runs `/bin/sh -l` in a
    /// PTY behind the console itself (CONSOLE_* events are still delivered).
    pub console_shell: bool,
    /// Offer the `health` extension (Linux metrics and `nhc_device_report_metric`).
    pub health_enabled: bool,
    /// Offer the `logging` extension (`nhc_device_log`).
    pub logging_enabled: bool,
    /// How long a report may wait for the connection before it is given up
    /// (REPORT_FAILED), default 60000; > 0.
    pub report_timeout_ms: u32,
    /// Optional: with a `call`, the `geo` extension is offered and answered by it.
    pub geo: nhc_geo_closure,
}

/// The size of the first published version of the struct.
/// cbindgen:ignore
const V1_SIZE: usize = std::mem::size_of::<nhc_device_options>();

fn defaults() -> nhc_device_options {
    nhc_device_options {
        struct_size: std::mem::size_of::<nhc_device_options>(),
        socket: std::ptr::null(),
        on_event: nhc_device_event_closure::none(),
        nh1_key: std::ptr::null(),
        nh1_secret: std::ptr::null(),
        nh1_identifier: std::ptr::null(),
        nh1_digest: std::ptr::null(),
        nh1_iterations: 1000,
        nh1_key_length: 32,
        device_api_version: std::ptr::null(),
        metadata: std::ptr::null(),
        metadata_len: 0,
        fwup_env_path: std::ptr::null(),
        fwup_version: std::ptr::null(),
        update_tool: std::ptr::null(),
        request_fwup_public_keys: false,
        request_archive_public_keys: false,
        firmware_validated: nhc_validated_closure::none(),
        validation_poll_interval_ms: 10_000,
        auto_update: std::ptr::null(),
        scripts_enabled: false,
        console_enabled: false,
        console_shell: false,
        health_enabled: false,
        logging_enabled: false,
        report_timeout_ms: 60_000,
        geo: nhc_geo_closure::none(),
    }
}

/// Fills `*opts` (of `struct_size` bytes) with the defaults. Programs call
/// it through `nhc_device_options_default(&opts)`, which passes `sizeof`.
///
/// Errors: `NHC_ERR_INVALID_ARGUMENT` if `opts` is NULL or `struct_size`
/// is smaller than any version of the struct.
///
/// # Safety
/// `opts` is NULL or points to `struct_size` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn nhc_device_options_init(
    opts: *mut nhc_device_options,
    struct_size: usize,
) -> nhc_result {
    boundary_pure(|| versioned::init(opts, struct_size, V1_SIZE, defaults(), "nhc_device_options"))
}

/// What `nhc_device_new` builds a device from.
pub(crate) struct DeviceSetup {
    pub config: DeviceConfig,
    pub delivery: nhc_delivery,
    pub on_event: Owned<nhc_device_event_closure>,
}

/// Reads the caller's options. The closures are owned first, so that each
/// is dropped exactly once whatever fails.
///
/// # Safety
/// `opts` is an initialised options struct whose pointers are valid.
pub(crate) unsafe fn read(opts: *const nhc_device_options) -> FfiResult<DeviceSetup> {
    let mut o = versioned::read(opts, V1_SIZE, defaults(), "nhc_device_options")?;
    let on_event = Owned::new(std::mem::replace(
        &mut o.on_event,
        nhc_device_event_closure::none(),
    ));
    let validated = Owned::new(std::mem::replace(
        &mut o.firmware_validated,
        nhc_validated_closure::none(),
    ));
    let geo = Owned::new(std::mem::replace(&mut o.geo, nhc_geo_closure::none()));
    let auto_update = (!o.auto_update.is_null())
        .then(|| update_options::take(o.auto_update))
        .transpose();
    if o.socket.is_null() {
        return Err(invalid("socket (the connection options) is NULL"));
    }
    let mut s = options::read(o.socket)?;
    let on_state = Owned::new(std::mem::replace(
        &mut s.on_state,
        crate::closure::nhc_state_closure::none(),
    ));
    if on_state.raw().call.is_some() {
        return Err(invalid(
            "socket->on_state is not used by a device: state changes arrive as NHC_DEVICE_EVENT_STATE",
        ));
    }
    drop(on_state);
    let auto_update = auto_update?;
    let (socket, delivery) = options::to_config(&s)?;
    let mut c = DeviceConfig::new(socket);
    c.auth = nh1(&o)?;
    if let Some(v) = opt_str_arg(o.device_api_version, "device_api_version")? {
        c.device_api_version = v.to_owned();
    }
    c.metadata = match opt_str_arg(o.fwup_env_path, "fwup_env_path")? {
        Some(path) => FirmwareMetadata::from_env_file(path)?,
        None => FirmwareMetadata::new(),
    };
    for (k, v) in options::pairs(o.metadata, o.metadata_len, "metadata")? {
        c.metadata.set(k, v);
    }
    c.fwup_version = opt_str_arg(o.fwup_version, "fwup_version")?.map(str::to_owned);
    if let Some(tool) = opt_str_arg(o.update_tool, "update_tool")? {
        c.update_tool = tool.to_owned();
    }
    c.request_fwup_public_keys = o.request_fwup_public_keys;
    c.request_archive_public_keys = o.request_archive_public_keys;
    if validated.raw().call.is_some() {
        let v = Arc::new(validated);
        c.firmware_validated = Some(Arc::new(move || v.call()));
    }
    if o.validation_poll_interval_ms == 0 || o.report_timeout_ms == 0 {
        return Err(invalid(
            "validation_poll_interval_ms and report_timeout_ms must be greater than 0",
        ));
    }
    c.validation_poll_interval = millis(o.validation_poll_interval_ms);
    c.report_timeout = millis(o.report_timeout_ms);
    if let Some(update) = auto_update {
        c.update_policy = UpdatePolicy::Auto(update);
    }
    c.scripts = o.scripts_enabled;
    if o.console_shell && !o.console_enabled {
        return Err(invalid("console_shell needs console_enabled"));
    }
    if o.console_enabled {
        let mut console = ConsoleOptions::default();
        if o.console_shell {
            console.shell = Some(ShellOptions::default());
        }
        c.console = Some(console);
    }
    let geo = geo.raw().call.is_some().then(|| Arc::new(geo));
    if o.health_enabled || o.logging_enabled || geo.is_some() {
        let mut ext = ExtensionsOptions::default();
        if let Some(geo) = geo {
            ext.geo = Some(Arc::new(move || geo.call()));
        }
        if o.health_enabled {
            ext.health = Some(HealthOptions::default());
        }
        ext.logging = o.logging_enabled;
        c.extensions = Some(ext);
    }
    Ok(DeviceSetup {
        config: c,
        delivery,
        on_event,
    })
}

fn millis(v: u32) -> Duration {
    Duration::from_millis(u64::from(v))
}

type Auth = Option<Arc<dyn nerves_hub_channel::HeaderProvider>>;

unsafe fn nh1(o: &nhc_device_options) -> FfiResult<Auth> {
    let Some(key) = opt_str_arg(o.nh1_key, "nh1_key")? else {
        if !o.nh1_secret.is_null() || !o.nh1_identifier.is_null() {
            return Err(invalid("nh1_secret and nh1_identifier need nh1_key"));
        }
        return Ok(None);
    };
    let secret = str_arg(o.nh1_secret, "nh1_secret")?;
    let identifier = str_arg(o.nh1_identifier, "nh1_identifier")?;
    let mut shared = SharedSecret::new(key, secret, identifier);
    if let Some(name) = opt_str_arg(o.nh1_digest, "nh1_digest")? {
        shared.digest = Nh1Digest::parse(name).ok_or_else(|| {
            invalid(format!(
                "nh1_digest {name:?} is not sha256, sha384 or sha512"
            ))
        })?;
    }
    shared.iterations = o.nh1_iterations;
    shared.key_length = o.nh1_key_length;
    Ok(Some(Arc::new(Nh1Auth::new(shared)?)))
}
