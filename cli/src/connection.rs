//! Turns the options (flags, or the agent's file) into a device
//! configuration for one identity: the one builder of `nhc device`, `nhc
//! simulate` and `nhc agent`.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use nerves_hub_channel::nerves_hub::console::{ConsoleOptions, ShellOptions};
use nerves_hub_channel::nerves_hub::extensions::{ExtensionsOptions, HealthOptions};
use nerves_hub_channel::nerves_hub::file_transfer::FileTransferOptions;
use nerves_hub_channel::nerves_hub::nh1::{Nh1Auth, SharedSecret};
use nerves_hub_channel::nerves_hub::{DeviceConfig, FirmwareMetadata};
use nerves_hub_channel::{
    ExternalKey, PemSource, Pkcs11Key, Pkcs11KeyOptions, Pkcs11Pin, SocketConfig,
};

use crate::args::{ConnectionArgs, DeviceKnobs, Extension, MetadataArgs, Rejoin};

/// The configuration of the device with this identity (`cert_dir` and
/// `identity`: `DIR/<identity>.pem`; `identity` alone: the NH1 identifier).
pub fn device_config(
    c: &ConnectionArgs,
    knobs: &DeviceKnobs,
    cert_dir: Option<&Path>,
    identity: Option<&str>,
) -> Result<DeviceConfig, String> {
    let url = c
        .url
        .as_deref()
        .filter(|u| !u.is_empty())
        .ok_or("--url is required")?;
    let mut socket = SocketConfig::new(url);
    socket.tls.ca = c.ca.clone().map(PemSource::File);
    match (cert_dir, identity) {
        (Some(dir), Some(id)) => {
            socket.tls.client_cert = Some(PemSource::File(dir.join(format!("{id}.pem"))));
            socket.tls.client_key = Some(PemSource::File(dir.join(format!("{id}-key.pem"))));
        }
        _ => {
            socket.tls.client_cert = c.cert.clone().map(PemSource::File);
            socket.tls.client_key = c.key.clone().map(PemSource::File);
        }
    }
    socket.tls.client_signer = pkcs11_signer(c, cert_dir).map_err(|e| e.message)?;
    if let Some(stable) = c.stable_after {
        socket.stable_after = Duration::from_secs(stable);
    }
    let b = &mut socket.backoff;
    for (value, slot, name) in [
        (knobs.backoff_initial, &mut b.initial, "backoff initial"),
        (knobs.backoff_max, &mut b.max, "backoff max"),
    ] {
        if let Some(secs) = value {
            *slot = Duration::try_from_secs_f64(secs)
                .ok()
                .filter(|d| !d.is_zero())
                .ok_or(format!("{name} wants seconds > 0, got {secs}"))?;
        }
    }
    if let Some(jitter) = knobs.backoff_jitter {
        if !(0.0..=10.0).contains(&jitter) {
            return Err(format!("backoff jitter wants 0..=10, got {jitter}"));
        }
        b.jitter = jitter;
    }
    if b.initial > b.max {
        return Err("backoff initial must not be longer than backoff max".into());
    }
    let mut config = DeviceConfig::new(socket);
    if let Some(s) = &c.shared_secret {
        let identifier = identity
            .map(str::to_owned)
            .or_else(|| c.identifier.clone())
            .ok_or("--shared-secret needs --identifier")?;
        let secret = SharedSecret::new(s.key.clone(), s.secret.clone(), identifier);
        let signer = Nh1Auth::with_clock_offset(secret, c.clock_offset.unwrap_or(0))
            .map_err(|e| e.to_string())?;
        config.auth = Some(Arc::new(signer));
    }
    match c.device_rejoin_after_close {
        Some(Rejoin::Never) => config.device_rejoin_after_close = None,
        Some(Rejoin::After(d)) => config.device_rejoin_after_close = Some(d),
        None => {}
    }
    if let Some(v) = &knobs.device_api_version {
        config.device_api_version = v.clone();
    }
    config.fwup_version = knobs.fwup_version.clone();
    config.scripts = knobs.scripts;
    if knobs.console {
        let mut shell = ShellOptions::default();
        if let Some(command) = &knobs.console_shell {
            shell.command = command.split_whitespace().map(str::to_owned).collect();
            if shell.command.is_empty() {
                return Err("the console shell command is empty".into());
            }
        }
        let upload = file_transfer(
            knobs.console_upload_dir.as_deref(),
            knobs.console_max_upload_size,
        );
        config.console = Some(console_options(&config.device_api_version, shell, upload));
    }
    if !knobs.extensions.is_empty() || knobs.local_shell {
        config.extensions = Some(ExtensionsOptions {
            health: knobs
                .extensions
                .contains(&Extension::Health)
                .then(HealthOptions::default),
            geo: None,
            logging: knobs.extensions.contains(&Extension::Logging),
            local_shell: knobs.local_shell.then(ShellOptions::default),
        });
    }
    Ok(config)
}

/// A bad PKCS#11 setting: `setting` names the option (`pkcs11_uri`,
/// `pkcs11_module`, `pkcs11_pin_file`, `pkcs11_pin_env`, `key`) the message
/// is about, so `nhc agent` can name the key of its file.
pub struct Pkcs11SettingError {
    pub setting: &'static str,
    pub message: String,
}

/// The client key on a PKCS#11 token, opened now (module, token, PIN and
/// key are checked here), or `None` without a pkcs11 URI.
pub fn pkcs11_signer(
    c: &ConnectionArgs,
    cert_dir: Option<&Path>,
) -> Result<Option<ExternalKey>, Pkcs11SettingError> {
    let fail = |setting, message: &str| Pkcs11SettingError {
        setting,
        message: message.to_owned(),
    };
    let Some(uri) = &c.pkcs11_uri else {
        if c.pkcs11_module.is_some() || c.pkcs11_pin_file.is_some() || c.pkcs11_pin_env.is_some() {
            return Err(fail(
                "pkcs11_uri",
                "pkcs11 module and PIN settings need a pkcs11 URI",
            ));
        }
        return Ok(None);
    };
    if c.key.is_some() {
        return Err(fail("key", "a pkcs11 URI replaces the PEM key: give one"));
    }
    if cert_dir.is_some() {
        return Err(fail(
            "pkcs11_uri",
            "--pkcs11-uri replaces the keys of --cert-dir: give one",
        ));
    }
    let pin = match (&c.pkcs11_pin_file, &c.pkcs11_pin_env) {
        (Some(file), _) => Some(Pkcs11Pin::File(file.clone())),
        (None, Some(name)) => Some(Pkcs11Pin::Env(name.clone())),
        (None, None) => None,
    };
    let options = Pkcs11KeyOptions {
        module: c.pkcs11_module.clone(),
        uri: uri.clone(),
        pin,
    };
    let key = Pkcs11Key::open(&options).map_err(|e| {
        let message = e.to_string();
        // The library's message quotes the module or the PIN source it
        // could not use; anything else is about what the URI selects.
        let setting = if message.contains("module") && c.pkcs11_module.is_some() {
            "pkcs11_module"
        } else if message.contains("PIN") && c.pkcs11_pin_file.is_some() {
            "pkcs11_pin_file"
        } else if message.contains("PIN") && c.pkcs11_pin_env.is_some() {
            "pkcs11_pin_env"
        } else {
            "pkcs11_uri"
        };
        Pkcs11SettingError { setting, message }
    })?;
    Ok(Some(ExternalKey::new(key)))
}

/// The console with this shell. Without an upload directory `nhc` declines
/// browser uploads, and the library then announces console_version 1.0.0
/// (NervesHub's UI offers drag-and-drop uploads only from 2.0.0).
pub fn console_options(
    device_api_version: &str,
    shell: ShellOptions,
    file_transfer: Option<FileTransferOptions>,
) -> ConsoleOptions {
    ConsoleOptions {
        device_api_version: device_api_version.to_owned(),
        shell: Some(shell),
        decline_file_uploads: true,
        file_transfer,
        ..ConsoleOptions::default()
    }
}

/// Console file transfer into `dir`, when one is given.
pub fn file_transfer(dir: Option<&Path>, max: Option<u64>) -> Option<FileTransferOptions> {
    dir.map(|dir| {
        let mut ft = FileTransferOptions::new(dir);
        if let Some(max) = max {
            ft.max_upload_size = max;
        }
        ft
    })
}

/// Sets the metadata (and, from a U-Boot environment, the validation state).
pub fn apply_metadata(config: &mut DeviceConfig, m: &MetadataArgs) -> Result<(), String> {
    m.check()?;
    let mut metadata = match (&m.metadata_file, m.uboot()) {
        (Some(path), _) => {
            FirmwareMetadata::from_env_file(path).map_err(|e| format!("{}: {e}", path.display()))?
        }
        (None, Some(env)) => {
            config.firmware_validated = Some(env.validated_fn());
            env.metadata()?
        }
        (None, None) => FirmwareMetadata::new(),
    };
    for (k, v) in &m.meta {
        metadata.set(k.clone(), v.clone());
    }
    config.metadata = metadata;
    Ok(())
}

/// `fwup --version` of this fwup binary, when it runs.
pub fn detect_fwup_version(fwup: &str) -> Option<String> {
    let out = Command::new(fwup).arg("--version").output().ok()?;
    let version = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    (out.status.success() && !version.is_empty()).then_some(version)
}
