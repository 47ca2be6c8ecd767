//! Turns the options (flags, or the agent's file) into a device
//! configuration for one identity: the one builder of `nhc device`, `nhc
//! simulate` and `nhc agent`.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use nerves_hub_channel::nerves_hub::console::{ConsoleOptions, ShellOptions};
use nerves_hub_channel::nerves_hub::extensions::{ExtensionsOptions, HealthOptions};
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
    if c.pkcs11_uri.is_none()
        && (c.pkcs11_module.is_some() || c.pkcs11_pin_file.is_some() || c.pkcs11_pin_env.is_some())
    {
        return Err("pkcs11 module and PIN settings need a pkcs11 URI".into());
    }
    if let Some(uri) = &c.pkcs11_uri {
        if c.key.is_some() {
            return Err("a pkcs11 URI replaces the PEM key: give one".into());
        }
        if cert_dir.is_some() {
            return Err("--pkcs11-uri replaces the keys of --cert-dir: give one".into());
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
        let key = Pkcs11Key::open(&options).map_err(|e| e.to_string())?;
        socket.tls.client_signer = Some(ExternalKey::new(key));
    }
    if let Some(stable) = c.stable_after {
        socket.stable_after = Duration::from_secs(stable);
    }
    socket.proxy.url = c.proxy.as_ref().map(|p| p.0.clone());
    socket.proxy.no_proxy = c.noproxy.clone();
    socket.proxy.from_env = !c.no_proxy_env;
    if let Some(secs) = c.heartbeat_interval {
        socket.heartbeat_interval = Duration::try_from_secs_f64(secs)
            .ok()
            .filter(|d| !d.is_zero())
            .ok_or(format!("heartbeat interval wants seconds > 0, got {secs}"))?;
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
        config.console = Some(console_options(&config.device_api_version, shell));
    }
    if !knobs.extensions.is_empty() {
        config.extensions = Some(ExtensionsOptions {
            health: knobs
                .extensions
                .contains(&Extension::Health)
                .then(HealthOptions::default),
            geo: None,
            logging: knobs.extensions.contains(&Extension::Logging),
        });
    }
    Ok(config)
}

/// The console with this shell. `nhc` declines browser uploads, so it
/// announces console_version 1.0.0: NervesHub's UI offers drag-and-drop
/// uploads only to consoles of version 2.0.0 or later.
pub fn console_options(device_api_version: &str, shell: ShellOptions) -> ConsoleOptions {
    ConsoleOptions {
        console_version: "1.0.0".into(),
        device_api_version: device_api_version.to_owned(),
        shell: Some(shell),
        decline_file_uploads: true,
    }
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
