//! `nhc_device_options`: everything `nhc_device_new` needs, versioned by
//! its size like `nhc_socket_options`.

use std::ffi::c_char;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use nerves_hub_channel::nerves_hub::console::{ConsoleOptions, ShellOptions};
use nerves_hub_channel::nerves_hub::extensions::{ExtensionsOptions, HealthOptions};
use nerves_hub_channel::nerves_hub::file_transfer::FileTransferOptions;
use nerves_hub_channel::nerves_hub::nh1::{Nh1Auth, Nh1Digest, SharedSecret};
use nerves_hub_channel::nerves_hub::{
    DeviceConfig, FirmwareMetadata, UbootEnvLayout, UpdatePolicy, DEFAULT_DEVICE_REJOIN,
};

use crate::args::{opt_str_arg, str_arg};
use crate::boundary::boundary_pure;
use crate::cbool::CBool;
use crate::closure::Owned;
use crate::device_closure::{nhc_device_event_closure, nhc_geo_closure, nhc_validated_closure};
use crate::error::{invalid, FfiResult};
use crate::nhc_result;
use crate::options::{self, nhc_delivery, nhc_key_value, nhc_socket_options};
use crate::update_options::{self, nhc_update_options, strings};
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
    /// (`nhc_device_dispatch` for POLLED; INLINE is refused with
    /// `NHC_ERR_INVALID_ARGUMENT`, since device events come from more than
    /// one thread: updates, the console). Its `on_state` must have no
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
    pub request_fwup_public_keys: CBool,
    /// Ask for the archive signing keys at every join.
    pub request_archive_public_keys: CBool,
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
    pub scripts_enabled: CBool,
    /// Join the remote `console` topic (CONSOLE_* events, `nhc_device_console_output`).
    pub console_enabled: CBool,
    /// With `console_enabled`, on Linux: the library runs `/bin/sh -l` in a
    /// PTY behind the console itself (CONSOLE_* events are still delivered).
    pub console_shell: CBool,
    /// Offer the `health` extension (Linux metrics and `nhc_device_report_metric`).
    pub health_enabled: CBool,
    /// Offer the `logging` extension (`nhc_device_log`).
    pub logging_enabled: CBool,
    /// How long a report may wait for the connection before it is given up
    /// (REPORT_FAILED), default 60000; > 0.
    pub report_timeout_ms: u32,
    /// Optional: with a `call`, the `geo` extension is offered and answered by it.
    pub geo: nhc_geo_closure,
    // ---- Version 2: appended fields (a V1 program gets their defaults). ----
    /// With `console_shell`: the program and its arguments, e.g.
    /// {"/bin/bash", "--login"}; NUL-terminated UTF-8 strings, the first one
    /// non-empty. NULL with `console_shell_command_len` 0 (the default):
    /// {"/bin/sh", "-l"}.
    pub console_shell_command: *const *const c_char,
    /// Number of `console_shell_command` strings.
    pub console_shell_command_len: usize,
    /// With `console_shell`: no input for this long ends the shell session
    /// (a notice is printed; the next keystroke starts a new one). Default
    /// 300000 (nerves_hub_link's `remote_iex_timeout`); > 0.
    pub console_shell_timeout_ms: u32,
    /// With `console_shell`: the variables added to the shell's
    /// environment. NULL with `console_shell_env_len` 0 (the default):
    /// TERM=xterm-256color; when set, these replace that default.
    pub console_shell_env: *const nhc_key_value,
    /// Number of `console_shell_env` entries.
    pub console_shell_env_len: usize,
    /// With `console_enabled`: a browser file upload prints a notice on the
    /// terminal and nothing is stored (default true). false: the uploads
    /// reach you as CONSOLE_FILE events only.
    pub console_decline_file_uploads: CBool,
    /// Firmware signing keys known before the server sends any: fwup public
    /// keys (base64 of 32 bytes, the content of `fwup-key.pub`), each
    /// checked. An FWUP_PUBLIC_KEYS event with at least one key replaces
    /// them. They are passed to a `fwup_command` sink as `--public-key K`
    /// unless its `fwup_args` already name a key.
    pub fwup_public_keys: *const *const c_char,
    /// Number of `fwup_public_keys`.
    pub fwup_public_keys_len: usize,
    /// Refuse every update while no fwup public key is known, whatever the
    /// sink: the server is told `failed` "Refusing unverified firmware : no
    /// public keys available" and you get UPDATE_IGNORED with that reason
    /// (as nerves_hub_link does). Default false (a fwup sink is refused
    /// without keys anyway, see `allow_unverified_firmware`). With it set
    /// and no `fwup_public_keys`, the keys are requested at every join.
    pub require_fwup_public_keys: CBool,
    /// A binary U-Boot environment image (the file or partition
    /// `fw_printenv` reads) to take the metadata from, like
    /// `fwup_env_path`; its CRC is checked. Needs `uboot_env_size`. Set at
    /// most one of `fwup_env_path` and `uboot_env_path`.
    pub uboot_env_path: *const c_char,
    /// The environment size in bytes (CONFIG_ENV_SIZE, the third column of
    /// fw_env.config), per copy.
    pub uboot_env_size: usize,
    /// The environment is redundant (CONFIG_ENV_REDUNDANT: a flag byte
    /// after the CRC); the image may then hold both copies back to back
    /// and the newer valid one is used.
    pub uboot_env_redundant: CBool,
    /// With `health_enabled`: report the Linux system metrics (CPU, load,
    /// memory, disk, temperature, network); default true. false: only your
    /// `nhc_device_report_metric` values.
    pub health_system_metrics: CBool,
    /// With `health_enabled`: the file system whose usage is reported
    /// (NULL: "/").
    pub health_disk_path: *const c_char,
    /// With `health_enabled`: where procfs is mounted (NULL: "/proc").
    pub health_proc_dir: *const c_char,
    /// With `health_enabled`: a file holding the CPU temperature in
    /// millidegrees Celsius (NULL: /sys/class/thermal/thermal_zone0/temp).
    pub health_cpu_temp_path: *const c_char,
    /// With `health_enabled`: sent as every report's `metadata`.
    pub health_metadata: *const nhc_key_value,
    /// Number of `health_metadata` entries.
    pub health_metadata_len: usize,
    /// After the server closed `device` with `phx_close`, rejoin it after
    /// this many milliseconds (default 5000); negative: never (the device
    /// stays un-joined until `nhc_device_connect`); 0 is refused.
    pub device_rejoin_after_close_ms: i64,
    /// Let a `fwup_command` sink running fwup apply firmware while no fwup
    /// public key is known (fwup then checks no signature). Default false:
    /// like nerves_hub_link, such an update is refused and the server is
    /// told `failed` "Refusing unverified firmware : no public keys
    /// available" (UPDATE_IGNORED with `auto_update`, UPDATE_FINISHED and
    /// `NHC_ERR_INVALID_ARGUMENT` from `nhc_device_apply_update`). File and
    /// callback sinks are never refused for want of keys: check the
    /// image's signature yourself (e.g. `fwup --verify --public-key`).
    pub allow_unverified_firmware: CBool,
    /// NH1: seconds added to the system clock for signatures (default 0;
    /// negative when the system clock is ahead), for a device that knows
    /// how wrong its clock is. Without it a wrong clock costs one refusal:
    /// the server's `Date` then corrects the signing time by itself.
    pub nh1_clock_offset_s: i64,
    /// Offer the `local_shell` extension (Linux): NervesHub's "Local Shell"
    /// tab gets `/bin/sh -l` on a pty (TERM=xterm-256color, 300 s
    /// inactivity timeout). Default false: it gives a shell to whoever may
    /// use the device's console in NervesHub.
    pub local_shell_enabled: CBool,
    /// With `console_enabled`: console file transfer. Browser uploads are
    /// stored in this directory (created when needed; a name with a path
    /// separator, `.`/`..` or a NUL is refused, the file appears under its
    /// name only when complete, errors such as a full disk are printed on
    /// the terminal), `nhc_device_console_send_file` works, and the console
    /// announces console_version 2.0.0. NULL (default): off, 1.0.0.
    pub console_upload_dir: *const c_char,
    /// With `console_upload_dir`: the largest upload in bytes; 0 (default):
    /// 10 MiB.
    pub console_max_upload_size: u64,
}

/// The size of the first published version of the struct (up to `geo`).
/// cbindgen:ignore
const V1_SIZE: usize = std::mem::offset_of!(nhc_device_options, console_shell_command);

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
        request_fwup_public_keys: CBool::FALSE,
        request_archive_public_keys: CBool::FALSE,
        firmware_validated: nhc_validated_closure::none(),
        validation_poll_interval_ms: 10_000,
        auto_update: std::ptr::null(),
        scripts_enabled: CBool::FALSE,
        console_enabled: CBool::FALSE,
        console_shell: CBool::FALSE,
        health_enabled: CBool::FALSE,
        logging_enabled: CBool::FALSE,
        report_timeout_ms: 60_000,
        geo: nhc_geo_closure::none(),
        console_shell_command: std::ptr::null(),
        console_shell_command_len: 0,
        console_shell_timeout_ms: ms(ShellOptions::default().inactivity_timeout),
        console_shell_env: std::ptr::null(),
        console_shell_env_len: 0,
        console_decline_file_uploads: true.into(),
        fwup_public_keys: std::ptr::null(),
        fwup_public_keys_len: 0,
        require_fwup_public_keys: CBool::FALSE,
        uboot_env_path: std::ptr::null(),
        uboot_env_size: 0,
        uboot_env_redundant: CBool::FALSE,
        health_system_metrics: true.into(),
        health_disk_path: std::ptr::null(),
        health_proc_dir: std::ptr::null(),
        health_cpu_temp_path: std::ptr::null(),
        health_metadata: std::ptr::null(),
        health_metadata_len: 0,
        device_rejoin_after_close_ms: i64::try_from(DEFAULT_DEVICE_REJOIN.as_millis())
            .unwrap_or(i64::MAX),
        allow_unverified_firmware: false.into(),
        nh1_clock_offset_s: 0,
        local_shell_enabled: CBool::FALSE,
        console_upload_dir: std::ptr::null(),
        console_max_upload_size: 0,
    }
}

fn ms(v: Duration) -> u32 {
    u32::try_from(v.as_millis()).unwrap_or(u32::MAX)
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
    // SAFETY: `opts` is NULL or has `struct_size` writable bytes (this function's contract); `init`
    // checks NULL and the size.
    boundary_pure(|| unsafe {
        versioned::init(opts, struct_size, V1_SIZE, defaults(), "nhc_device_options")
    })
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
    // SAFETY: `opts` is an initialised options struct (the caller's contract).
    let mut o = unsafe { versioned::read(opts, V1_SIZE, defaults(), "nhc_device_options") }?;
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
        // SAFETY: `auto_update` is not NULL (checked above) and initialised with valid pointers
        // (the caller's contract).
        .then(|| unsafe { update_options::take(o.auto_update) })
        .transpose();
    if o.socket.is_null() {
        return Err(invalid("socket (the connection options) is NULL"));
    }
    // SAFETY: `o.socket` is not NULL (checked above) and initialised (the caller's contract).
    let mut s = unsafe { options::read(o.socket) }?;
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
    // SAFETY: the pointers in `s` are NULL or valid (the caller's contract).
    let (socket, delivery) = unsafe { options::to_config(&s) }?;
    let mut c = DeviceConfig::new(socket);
    // SAFETY: the pointers in `o` are NULL or valid (the caller's contract).
    c.auth = unsafe { nh1(&o) }?;
    // SAFETY: `o.device_api_version` is NULL or a NUL-terminated string (the caller's contract).
    if let Some(v) = unsafe { opt_str_arg(o.device_api_version, "device_api_version") }? {
        c.device_api_version = v.to_owned();
    }
    // SAFETY: the pointers in `o` are NULL or valid (the caller's contract).
    c.metadata = unsafe { metadata_source(&o) }?;
    // SAFETY: `o.metadata` is NULL or points to `o.metadata_len` valid entries (the caller's
    // contract).
    for (k, v) in unsafe { options::pairs(o.metadata, o.metadata_len, "metadata") }? {
        c.metadata.set(k, v);
    }
    // SAFETY: `o.fwup_version` is NULL or a NUL-terminated string (the caller's contract).
    c.fwup_version = unsafe { opt_str_arg(o.fwup_version, "fwup_version") }?.map(str::to_owned);
    // SAFETY: `o.update_tool` is NULL or a NUL-terminated string (the caller's contract).
    if let Some(tool) = unsafe { opt_str_arg(o.update_tool, "update_tool") }? {
        c.update_tool = tool.to_owned();
    }
    c.request_fwup_public_keys = o.request_fwup_public_keys.get();
    // SAFETY: `o.fwup_public_keys` is NULL or points to `o.fwup_public_keys_len` valid entries (the
    // caller's contract).
    c.fwup_public_keys = unsafe {
        strings(
            o.fwup_public_keys,
            o.fwup_public_keys_len,
            "fwup_public_keys",
        )
    }?;
    c.require_fwup_public_keys = o.require_fwup_public_keys.get();
    c.allow_unverified_firmware = o.allow_unverified_firmware.get();
    c.request_archive_public_keys = o.request_archive_public_keys.get();
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
    c.device_rejoin_after_close = u64::try_from(o.device_rejoin_after_close_ms)
        .ok()
        .map(Duration::from_millis);
    if let Some(update) = auto_update {
        c.update_policy = UpdatePolicy::Auto(update);
    }
    c.scripts = o.scripts_enabled.get();
    // SAFETY: the pointers in `o` are NULL or valid (the caller's contract).
    c.console = unsafe { console(&o) }?;
    let geo = geo.raw().call.is_some().then(|| Arc::new(geo));
    let local_shell = o.local_shell_enabled.get();
    if o.health_enabled.get() || o.logging_enabled.get() || geo.is_some() || local_shell {
        let mut ext = ExtensionsOptions::default();
        if let Some(geo) = geo {
            ext.geo = Some(Arc::new(move || geo.call()));
        }
        if o.health_enabled.get() {
            // SAFETY: `&o` is NULL or a live device (the caller's contract).
            ext.health = Some(unsafe { health(&o) }?);
        }
        ext.logging = o.logging_enabled.get();
        ext.local_shell = local_shell.then(ShellOptions::default);
        c.extensions = Some(ext);
    }
    Ok(DeviceSetup {
        config: c,
        delivery,
        on_event,
    })
}

/// The metadata file, if any: a `fw_printenv` text dump or a binary image.
unsafe fn metadata_source(o: &nhc_device_options) -> FfiResult<FirmwareMetadata> {
    // SAFETY: `o.fwup_env_path` is NULL or a NUL-terminated string (the caller's contract).
    let text = unsafe { opt_str_arg(o.fwup_env_path, "fwup_env_path") }?;
    // SAFETY: `o.uboot_env_path` is NULL or a NUL-terminated string (the caller's contract).
    let image = unsafe { opt_str_arg(o.uboot_env_path, "uboot_env_path") }?;
    match (text, image) {
        (Some(_), Some(_)) => Err(invalid(
            "set fwup_env_path (fw_printenv text) or uboot_env_path (binary image), not both",
        )),
        (Some(path), None) => Ok(FirmwareMetadata::from_env_file(path)?),
        (None, Some(path)) => {
            if o.uboot_env_size == 0 {
                return Err(invalid(
                    "uboot_env_path needs uboot_env_size (CONFIG_ENV_SIZE, the third column of fw_env.config)",
                ));
            }
            let layout = if o.uboot_env_redundant.get() {
                UbootEnvLayout::Redundant
            } else {
                UbootEnvLayout::Single
            };
            Ok(FirmwareMetadata::from_uboot_env_image(
                path,
                o.uboot_env_size,
                layout,
            )?)
        }
        (None, None) => Ok(FirmwareMetadata::new()),
    }
}

/// The console and its shell. Shell settings given without the shell (or
/// the shell without the console) are a mistake worth reporting.
unsafe fn console(o: &nhc_device_options) -> FfiResult<Option<ConsoleOptions>> {
    let shell_set = o.console_shell_command_len > 0
        || !o.console_shell_command.is_null()
        || o.console_shell_env_len > 0
        || !o.console_shell_env.is_null();
    if shell_set && !o.console_shell.get() {
        return Err(invalid(
            "console_shell_command and console_shell_env need console_shell",
        ));
    }
    if o.console_shell.get() && !o.console_enabled.get() {
        return Err(invalid("console_shell needs console_enabled"));
    }
    // SAFETY: `o.console_upload_dir` is NULL or a NUL-terminated string (the caller's contract).
    let upload_dir = unsafe { opt_str_arg(o.console_upload_dir, "console_upload_dir") }?;
    if upload_dir.is_none() && o.console_max_upload_size != 0 {
        return Err(invalid("console_max_upload_size needs console_upload_dir"));
    }
    if upload_dir.is_some() && !o.console_enabled.get() {
        return Err(invalid("console_upload_dir needs console_enabled"));
    }
    if !o.console_enabled.get() {
        return Ok(None);
    }
    let mut console = ConsoleOptions {
        decline_file_uploads: o.console_decline_file_uploads.get(),
        file_transfer: upload_dir.map(|dir| {
            let mut ft = FileTransferOptions::new(dir);
            if o.console_max_upload_size != 0 {
                ft.max_upload_size = o.console_max_upload_size;
            }
            ft
        }),
        ..ConsoleOptions::default()
    };
    if o.console_shell.get() {
        let mut shell = ShellOptions::default();
        if !o.console_shell_command.is_null() || o.console_shell_command_len > 0 {
            // SAFETY: `o.console_shell_command` is NULL or points to `o.console_shell_command_len`
            // valid entries (the caller's contract).
            let command = unsafe {
                strings(
                    o.console_shell_command,
                    o.console_shell_command_len,
                    "console_shell_command",
                )
            }?;
            if command.first().is_none_or(|p| p.is_empty()) {
                return Err(invalid(
                    "console_shell_command must start with a program, e.g. {\"/bin/sh\", \"-l\"}",
                ));
            }
            shell.command = command;
        }
        if o.console_shell_timeout_ms == 0 {
            return Err(invalid("console_shell_timeout_ms must be greater than 0"));
        }
        shell.inactivity_timeout = millis(o.console_shell_timeout_ms);
        if !o.console_shell_env.is_null() || o.console_shell_env_len > 0 {
            // SAFETY: `o.console_shell_env` is NULL or points to `o.console_shell_env_len` valid
            // entries (the caller's contract).
            shell.env = unsafe {
                options::pairs(
                    o.console_shell_env,
                    o.console_shell_env_len,
                    "console_shell_env",
                )
            }?;
        }
        console.shell = Some(shell);
    }
    Ok(Some(console))
}

// Field by field so that options the core may add keep their defaults.
#[allow(clippy::field_reassign_with_default)]
unsafe fn health(o: &nhc_device_options) -> FfiResult<HealthOptions> {
    let mut health = HealthOptions::default();
    health.system_metrics = o.health_system_metrics.get();
    // SAFETY: `o.health_disk_path` is NULL or a NUL-terminated string (the caller's contract).
    if let Some(p) = unsafe { opt_str_arg(o.health_disk_path, "health_disk_path") }? {
        health.disk_path = PathBuf::from(p);
    }
    // SAFETY: `o.health_proc_dir` is NULL or a NUL-terminated string (the caller's contract).
    if let Some(p) = unsafe { opt_str_arg(o.health_proc_dir, "health_proc_dir") }? {
        health.proc_dir = PathBuf::from(p);
    }
    // SAFETY: `o.health_cpu_temp_path` is NULL or a NUL-terminated string (the caller's contract).
    if let Some(p) = unsafe { opt_str_arg(o.health_cpu_temp_path, "health_cpu_temp_path") }? {
        health.cpu_temp_path = PathBuf::from(p);
    }
    // SAFETY: `o.health_metadata` is NULL or points to `o.health_metadata_len` valid entries (the
    // caller's contract).
    health.metadata =
        unsafe { options::pairs(o.health_metadata, o.health_metadata_len, "health_metadata") }?
            .into_iter()
            .collect();
    Ok(health)
}

fn millis(v: u32) -> Duration {
    Duration::from_millis(u64::from(v))
}

type Auth = Option<Arc<dyn nerves_hub_channel::HeaderProvider>>;

unsafe fn nh1(o: &nhc_device_options) -> FfiResult<Auth> {
    // SAFETY: `o.nh1_key` is NULL or a NUL-terminated string (the caller's contract).
    let Some(key) = unsafe { opt_str_arg(o.nh1_key, "nh1_key") }? else {
        if !o.nh1_secret.is_null() || !o.nh1_identifier.is_null() || o.nh1_clock_offset_s != 0 {
            return Err(invalid(
                "nh1_secret, nh1_identifier and nh1_clock_offset_s need nh1_key",
            ));
        }
        return Ok(None);
    };
    // SAFETY: `o.nh1_secret` is NULL or a NUL-terminated string (the caller's contract).
    let secret = unsafe { str_arg(o.nh1_secret, "nh1_secret") }?;
    // SAFETY: `o.nh1_identifier` is NULL or a NUL-terminated string (the caller's contract).
    let identifier = unsafe { str_arg(o.nh1_identifier, "nh1_identifier") }?;
    let mut shared = SharedSecret::new(key, secret, identifier);
    // SAFETY: `o.nh1_digest` is NULL or a NUL-terminated string (the caller's contract).
    if let Some(name) = unsafe { opt_str_arg(o.nh1_digest, "nh1_digest") }? {
        shared.digest = Nh1Digest::parse(name).ok_or_else(|| {
            invalid(format!(
                "nh1_digest {name:?} is not sha256, sha384 or sha512"
            ))
        })?;
    }
    shared.iterations = o.nh1_iterations;
    shared.key_length = o.nh1_key_length;
    Ok(Some(Arc::new(Nh1Auth::with_clock_offset(
        shared,
        o.nh1_clock_offset_s,
    )?)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message<T>(r: FfiResult<T>) -> String {
        match r {
            Ok(_) => panic!("expected an error"),
            Err(e) => e.message(),
        }
    }

    #[test]
    fn console_upload_dir_turns_on_file_transfer() {
        let mut o = defaults();
        // SAFETY: every pointer is NULL or points to live literals.
        unsafe {
            o.console_max_upload_size = 100;
            assert!(message(console(&o)).contains("needs console_upload_dir"));
            o.console_upload_dir = c"/data/nerves-hub".as_ptr();
            assert!(message(console(&o)).contains("needs console_enabled"));
            o.console_enabled = true.into();
            let c = console(&o).expect("valid").expect("enabled");
            let ft = c.file_transfer.clone().expect("file transfer");
            assert_eq!(ft.upload_dir, std::path::Path::new("/data/nerves-hub"));
            assert_eq!(ft.max_upload_size, 100);
            assert_eq!(c.announced_version(), "2.0.0");
            o.console_max_upload_size = 0;
            let c = console(&o).expect("valid").expect("enabled");
            assert_eq!(
                c.file_transfer.expect("on").max_upload_size,
                nerves_hub_channel::nerves_hub::file_transfer::DEFAULT_MAX_UPLOAD_SIZE
            );
            o.console_upload_dir = std::ptr::null();
            let c = console(&o).expect("valid").expect("enabled");
            assert!(c.file_transfer.is_none());
            assert_eq!(c.announced_version(), "1.0.0");
        }
    }

    #[test]
    fn console_shell_settings_are_read_and_checked() {
        let command = [c"/bin/bash".as_ptr(), c"--login".as_ptr()];
        let env = [nhc_key_value {
            key: c"LANG".as_ptr(),
            value: c"C.UTF-8".as_ptr(),
        }];
        let mut o = defaults();
        o.console_shell_command = command.as_ptr();
        o.console_shell_command_len = 2;
        // SAFETY: every pointer is NULL or points to live literals.
        unsafe {
            assert!(message(console(&o)).contains("need console_shell"));
            o.console_shell = true.into();
            assert!(message(console(&o)).contains("needs console_enabled"));
            o.console_enabled = true.into();
            o.console_shell_timeout_ms = 1500;
            o.console_shell_env = env.as_ptr();
            o.console_shell_env_len = 1;
            o.console_decline_file_uploads = false.into();
            let c = console(&o).expect("valid").expect("enabled");
            let shell = c.shell.expect("shell");
            assert_eq!(shell.command, ["/bin/bash", "--login"]);
            assert_eq!(shell.inactivity_timeout, Duration::from_millis(1500));
            assert_eq!(shell.env, [("LANG".to_owned(), "C.UTF-8".to_owned())]);
            assert!(!c.decline_file_uploads);

            o.console_shell_timeout_ms = 0;
            assert!(message(console(&o)).contains("console_shell_timeout_ms"));
            o.console_shell_timeout_ms = 1;
            let empty = [c"".as_ptr()];
            o.console_shell_command = empty.as_ptr();
            o.console_shell_command_len = 1;
            assert!(message(console(&o)).contains("must start with a program"));
            o.console_shell_command = std::ptr::null();
            assert!(message(console(&o)).contains("is NULL but"));
        }
    }

    #[test]
    fn defaults_keep_the_shell_defaults() {
        let mut o = defaults();
        o.console_enabled = true.into();
        o.console_shell = true.into();
        // SAFETY: all pointers are NULL.
        let c = unsafe { console(&o) }.expect("valid").expect("enabled");
        assert_eq!(c.shell, Some(ShellOptions::default()));
        assert!(c.decline_file_uploads);
    }

    #[test]
    fn metadata_sources_are_exclusive_and_an_image_needs_its_size() {
        let mut o = defaults();
        o.fwup_env_path = c"/tmp/a".as_ptr();
        o.uboot_env_path = c"/tmp/b".as_ptr();
        // SAFETY: live literals.
        unsafe {
            assert!(message(metadata_source(&o)).contains("not both"));
            o.fwup_env_path = std::ptr::null();
            assert!(message(metadata_source(&o)).contains("uboot_env_size"));
            o.uboot_env_size = 8192;
            assert!(message(metadata_source(&o)).contains("/tmp/b"));
        }
    }

    #[test]
    fn a_v1_struct_gets_the_defaults_of_later_fields() {
        let mut o = defaults();
        o.struct_size = V1_SIZE;
        o.console_shell_timeout_ms = 7;
        o.health_system_metrics = false.into();
        // SAFETY: `o` is a live struct; only V1_SIZE bytes are read from it.
        let read = unsafe { versioned::read(&o, V1_SIZE, defaults(), "t") }.expect("v1 read");
        assert_eq!(read.console_shell_timeout_ms, 300_000);
        assert!(read.health_system_metrics.get() && read.console_decline_file_uploads.get());
    }

    /// A caller that is not C (ctypes, Go, Zig) may store any byte in a
    /// `bool` field: nonzero is true, and reading it is not undefined
    /// behaviour (Miri checks this test).
    #[test]
    fn a_bool_byte_other_than_0_or_1_is_true() {
        let mut o = defaults();
        // SAFETY: each field is one byte of the live struct `o`.
        unsafe {
            std::ptr::addr_of_mut!(o.console_enabled)
                .cast::<u8>()
                .write(2);
            std::ptr::addr_of_mut!(o.console_decline_file_uploads)
                .cast::<u8>()
                .write(0);
            std::ptr::addr_of_mut!(o.console_shell)
                .cast::<u8>()
                .write(0xff);
        }
        // SAFETY: `o` is a live struct; only its own bytes are read.
        let read = unsafe { versioned::read(&o, V1_SIZE, defaults(), "t") }.expect("read");
        // SAFETY: all pointers are NULL.
        let c = unsafe { console(&read) }.expect("valid").expect("enabled");
        assert!(c.shell.is_some());
        assert!(!c.decline_file_uploads);
    }
}
