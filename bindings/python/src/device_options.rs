//! `Device` keyword arguments to the core's `DeviceConfig`, and the
//! arguments of `apply_update` to `UpdateOptions`.
//!
//! User callables (firmware validation, health metrics, geo location) are
//! called by the core on its blocking pool, never on an I/O thread; they
//! take the GIL for the call only, and an exception is logged and treated
//! as "no answer".

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use nerves_hub_channel::nerves_hub::console::{ConsoleOptions, ShellOptions};
use nerves_hub_channel::nerves_hub::extensions::health::{AlarmsProvider, ChecksProvider};
use nerves_hub_channel::nerves_hub::extensions::{
    Check, ExtensionsOptions, GeoProvider, HealthOptions, Location,
};
use nerves_hub_channel::nerves_hub::file_transfer::FileTransferOptions;
use nerves_hub_channel::nerves_hub::nh1::{Nh1Auth, Nh1Digest, SharedSecret};
use nerves_hub_channel::nerves_hub::update::{DownloadOptions, SinkSpec, UpdateOptions};
use nerves_hub_channel::nerves_hub::{
    DeviceConfig, FirmwareMetadata, FirmwareValidatedFn, UbootEnvLayout, UpdatePolicy,
};
use nerves_hub_channel::{PemSource, TlsOptions};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};

use crate::errors::{invalid, py_err};
use crate::logging;
use crate::options::{self, Options};
use crate::py_sink::PySink;

/// The device-specific keyword arguments of `Device(...)`.
pub struct DeviceOptions<'py> {
    pub shared_secret: Option<Bound<'py, PyAny>>,
    /// Seconds added to the system clock for NH1 signatures.
    pub clock_offset: i64,
    pub device_api_version: String,
    pub metadata: Option<Bound<'py, PyAny>>,
    pub fwup_env_path: Option<PathBuf>,
    pub fwup_version: Option<String>,
    pub update_tool: String,
    pub request_fwup_public_keys: bool,
    pub request_archive_public_keys: bool,
    pub firmware_validated: Option<Bound<'py, PyAny>>,
    pub validation_poll_interval: f64,
    pub scripts: bool,
    pub console: bool,
    pub console_shell: Option<Vec<String>>,
    pub console_shell_timeout: f64,
    pub console_shell_env: Option<BTreeMap<String, String>>,
    pub console_decline_file_uploads: bool,
    /// Console file transfer into this directory (console_version 2.0.0).
    pub console_upload_dir: Option<PathBuf>,
    pub console_max_upload_size: Option<u64>,
    pub extensions: Option<Bound<'py, PyAny>>,
    pub report_timeout: f64,
    pub auto_update: Option<Bound<'py, PyAny>>,
    pub fwup_public_keys: Option<Vec<String>>,
    pub require_fwup_public_keys: bool,
    pub allow_unverified_firmware: bool,
    pub uboot_env_path: Option<PathBuf>,
    pub uboot_env_size: Option<usize>,
    pub uboot_env_redundant: bool,
    /// Seconds; `math.inf`: never rejoin `device` after `phx_close`.
    pub device_rejoin_after_close: f64,
}

impl DeviceOptions<'_> {
    pub fn into_config(self, socket: Options<'_>) -> PyResult<DeviceConfig> {
        let mut c = DeviceConfig::new(socket.into_config()?);
        let secret = self.shared_secret.filter(|s| !s.is_none());
        if secret.is_none() && self.clock_offset != 0 {
            return Err(invalid(
                "clock_offset is for NH1 signatures: it needs shared_secret",
            ));
        }
        if let Some(secret) = secret {
            let auth = Nh1Auth::with_clock_offset(shared_secret(&secret)?, self.clock_offset)
                .map_err(py_err)?;
            c.auth = Some(Arc::new(auth));
        }
        c.device_api_version = self.device_api_version;
        let source = match (self.fwup_env_path, self.uboot_env_path) {
            (Some(_), Some(_)) => return Err(invalid(
                "pass fwup_env_path (fw_printenv text) or uboot_env_path (binary image), not both",
            )),
            (Some(text), None) => Some(EnvSource::Text(text)),
            (None, Some(image)) => {
                let size = self.uboot_env_size.filter(|s| *s > 0).ok_or_else(|| {
                    invalid("uboot_env_path needs uboot_env_size (CONFIG_ENV_SIZE, the third column of fw_env.config)")
                })?;
                Some(EnvSource::Image(
                    image,
                    size,
                    layout(self.uboot_env_redundant),
                ))
            }
            (None, None) => None,
        };
        c.metadata = metadata(source, self.metadata.as_ref())?;
        c.fwup_version = self.fwup_version;
        c.update_tool = self.update_tool;
        c.request_fwup_public_keys = self.request_fwup_public_keys;
        c.fwup_public_keys = self.fwup_public_keys.unwrap_or_default();
        c.require_fwup_public_keys = self.require_fwup_public_keys;
        c.allow_unverified_firmware = self.allow_unverified_firmware;
        c.request_archive_public_keys = self.request_archive_public_keys;
        c.firmware_validated = self
            .firmware_validated
            .filter(|f| !f.is_none())
            .map(validated_fn)
            .transpose()?;
        c.validation_poll_interval =
            options::seconds(self.validation_poll_interval, "validation_poll_interval")?;
        c.scripts = self.scripts;
        if self.console_shell.is_none() && self.console_shell_env.is_some() {
            return Err(invalid(
                "console_shell_env needs console_shell=[program, args...]",
            ));
        }
        if self.console_upload_dir.is_none() && self.console_max_upload_size.is_some() {
            return Err(invalid("console_max_upload_size needs console_upload_dir"));
        }
        if self.console_upload_dir.is_some() && !self.console && self.console_shell.is_none() {
            return Err(invalid("console_upload_dir needs console=True"));
        }
        if self.console || self.console_shell.is_some() {
            let mut console = ConsoleOptions {
                decline_file_uploads: self.console_decline_file_uploads,
                file_transfer: self.console_upload_dir.map(|dir| {
                    let mut ft = FileTransferOptions::new(dir);
                    if let Some(max) = self.console_max_upload_size {
                        ft.max_upload_size = max;
                    }
                    ft
                }),
                ..ConsoleOptions::default()
            };
            if let Some(command) = self.console_shell {
                if command.first().is_none_or(|p| p.is_empty()) {
                    return Err(invalid(
                        "console_shell must be a program and its arguments, e.g. [\"/bin/sh\", \"-l\"]",
                    ));
                }
                let mut shell = ShellOptions {
                    command,
                    inactivity_timeout: options::seconds(
                        self.console_shell_timeout,
                        "console_shell_timeout",
                    )?,
                    ..ShellOptions::default()
                };
                if let Some(env) = self.console_shell_env {
                    shell.env = env.into_iter().collect();
                }
                console.shell = Some(shell);
            }
            c.console = Some(console);
        }
        c.extensions = self
            .extensions
            .filter(|e| !e.is_none())
            .map(|e| extensions(&e))
            .transpose()?;
        c.report_timeout = options::seconds(self.report_timeout, "report_timeout")?;
        c.device_rejoin_after_close = match self.device_rejoin_after_close {
            // A float keeps the signature plain; "never" is an infinite delay.
            s if s == f64::INFINITY => None,
            s => Some(options::seconds(s, "device_rejoin_after_close")?),
        };
        if let Some(auto) = self.auto_update.filter(|a| !a.is_none()) {
            c.update_policy = UpdatePolicy::Auto(auto_update(&auto)?);
        }
        Ok(c)
    }
}

/// `SharedSecret(key, secret, identifier, digest)` or a `(key, secret,
/// identifier[, digest])` tuple. Messages never show the secret.
fn shared_secret(value: &Bound<'_, PyAny>) -> PyResult<SharedSecret> {
    let usage = "shared_secret must be nhc.SharedSecret(key, secret, identifier, digest=\"sha256\") or a (key, secret, identifier) tuple";
    let (key, secret, identifier, digest): (String, String, String, String) =
        if value.hasattr("secret")? {
            let get = |name: &str| -> PyResult<String> {
                value.getattr(name)?.extract().map_err(|_| invalid(usage))
            };
            (
                get("key")?,
                get("secret")?,
                get("identifier")?,
                get("digest")?,
            )
        } else if let Ok((k, s, i)) = value.extract::<(String, String, String)>() {
            (k, s, i, "sha256".into())
        } else if let Ok(t) = value.extract::<(String, String, String, String)>() {
            t
        } else {
            return Err(invalid(usage));
        };
    let mut shared = SharedSecret::new(key, secret, identifier);
    shared.digest = Nh1Digest::parse(&digest).ok_or_else(|| {
        invalid(format!(
            "shared_secret digest must be \"sha256\", \"sha384\" or \"sha512\", got {digest:?}"
        ))
    })?;
    shared.validate().map_err(py_err)?;
    Ok(shared)
}

/// Where the running firmware's environment is read from.
enum EnvSource {
    /// `fw_printenv` output.
    Text(PathBuf),
    /// A binary U-Boot environment image.
    Image(PathBuf, usize, UbootEnvLayout),
}

pub fn layout(redundant: bool) -> UbootEnvLayout {
    if redundant {
        UbootEnvLayout::Redundant
    } else {
        UbootEnvLayout::Single
    }
}

/// The env file's keys, then the dict's (which win).
fn metadata(env: Option<EnvSource>, dict: Option<&Bound<'_, PyAny>>) -> PyResult<FirmwareMetadata> {
    let mut m = match env {
        Some(EnvSource::Text(path)) => FirmwareMetadata::from_env_file(path).map_err(py_err)?,
        Some(EnvSource::Image(path, size, layout)) => {
            FirmwareMetadata::from_uboot_env_image(path, size, layout).map_err(py_err)?
        }
        None => FirmwareMetadata::new(),
    };
    if let Some(dict) = dict.filter(|d| !d.is_none()) {
        let dict = dict
            .cast::<PyDict>()
            .map_err(|_| invalid("metadata must be a dict of str to str"))?;
        for (k, v) in dict.iter() {
            let key: String = k
                .extract()
                .map_err(|_| invalid("metadata keys must be str"))?;
            let value: String = v
                .extract()
                .map_err(|_| invalid(format!("metadata[{key:?}] must be a str")))?;
            m.set(key, value);
        }
    }
    Ok(m)
}

fn validated_fn(f: Bound<'_, PyAny>) -> PyResult<FirmwareValidatedFn> {
    if !f.is_callable() {
        return Err(invalid(
            "firmware_validated must be a callable returning True, False or None",
        ));
    }
    let f = f.unbind();
    Ok(Arc::new(move || {
        Python::attach(|py| match f.bind(py).call0() {
            Ok(v) if v.is_none() => None,
            Ok(v) => match v.extract::<bool>() {
                Ok(b) => Some(b),
                Err(_) => {
                    log::warn!("firmware_validated returned a non-bool; taken as unknown");
                    None
                }
            },
            Err(e) => {
                logging::exception(py, "firmware_validated raised an exception", &e);
                None
            }
        })
    }))
}

/// `auto_update={...}`: the keyword arguments of `apply_update`.
fn auto_update(value: &Bound<'_, PyAny>) -> PyResult<UpdateOptions> {
    let usage = "auto_update must be a dict of apply_update's keyword arguments, e.g. {\"path\": \"/data/next.fw\"}";
    let dict = value.cast::<PyDict>().map_err(|_| invalid(usage))?;
    let mut args = UpdateArgs::defaults();
    for (k, v) in dict.iter() {
        let name: String = k.extract().map_err(|_| invalid(usage))?;
        let none = v.is_none();
        let wrong = |what: &str| invalid(format!("auto_update[{name:?}] must be {what}"));
        match name.as_str() {
            "path" if !none => args.path = Some(v.extract().map_err(|_| wrong("a path"))?),
            "sink" if !none => args.sink = Some(v),
            "fwup" if !none => {
                args.fwup = Some(v.extract().map_err(|_| wrong("a list of str"))?)
            }
            "idle_timeout" => args.idle_timeout = v.extract().map_err(|_| wrong("seconds"))?,
            "max_disconnects" => {
                args.max_disconnects = v.extract().map_err(|_| wrong("an int >= 0"))?
            }
            "retry_delay" => args.retry_delay = v.extract().map_err(|_| wrong("seconds"))?,
            "max_total" => args.max_total = v.extract().map_err(|_| wrong("seconds"))?,
            "ca" if !none => args.ca = Some(v),
            "headers" if !none => {
                args.headers = Some(v.extract().map_err(|_| wrong("a dict of str to str"))?)
            }
            "path" | "sink" | "fwup" | "ca" | "headers" => {}
            other => {
                return Err(invalid(format!(
                    "auto_update has no {other:?}: use path, sink, fwup, idle_timeout, max_disconnects, retry_delay, max_total, ca, headers"
                )))
            }
        }
    }
    args.into_options()
}

/// `{"health": True | metrics callable | {...}, "geo": callable, "logging": True,
/// "local_shell": True}`.
fn extensions(value: &Bound<'_, PyAny>) -> PyResult<ExtensionsOptions> {
    let dict = value.cast::<PyDict>().map_err(|_| {
        invalid(
            "extensions must be a dict with keys \"health\", \"geo\", \"logging\", \"local_shell\"",
        )
    })?;
    let mut opts = ExtensionsOptions::default();
    for (k, v) in dict.iter() {
        let name: String = k.extract()?;
        match name.as_str() {
            "health" if v.is_callable() => {
                opts.health = Some(HealthOptions {
                    metrics: Some(metrics_fn(v.unbind())),
                    ..HealthOptions::default()
                });
            }
            "health" if v.is_instance_of::<PyDict>() => opts.health = Some(health(&v)?),
            "health" => {
                if v.is_truthy()? {
                    opts.health = Some(HealthOptions::default());
                }
            }
            "geo" if v.is_none() => {}
            "geo" if v.is_callable() => opts.geo = Some(geo_provider(v.unbind())),
            "geo" => return Err(invalid("extensions[\"geo\"] must be a callable")),
            "logging" => opts.logging = v.is_truthy()?,
            "local_shell" => {
                opts.local_shell = v.is_truthy()?.then(ShellOptions::default);
            }
            other => {
                return Err(invalid(format!(
                    "unknown extension {other:?}: the device offers \"health\", \"geo\", \"logging\" and \"local_shell\""
                )))
            }
        }
    }
    Ok(opts)
}

/// `extensions={"health": {...}}`: every field of the core's `HealthOptions`.
fn health(value: &Bound<'_, PyAny>) -> PyResult<HealthOptions> {
    let dict = value.cast::<PyDict>()?;
    let mut h = HealthOptions::default();
    for (k, v) in dict.iter() {
        let name: String = k.extract()?;
        let wrong =
            |what: &str| invalid(format!("extensions[\"health\"][{name:?}] must be {what}"));
        let callable = |v: &Bound<'_, PyAny>| -> PyResult<Option<Py<PyAny>>> {
            if v.is_none() {
                Ok(None)
            } else if v.is_callable() {
                Ok(Some(v.clone().unbind()))
            } else {
                Err(wrong("a callable"))
            }
        };
        match name.as_str() {
            "system_metrics" => h.system_metrics = v.is_truthy()?,
            "disk_path" => h.disk_path = v.extract().map_err(|_| wrong("a path"))?,
            "proc_dir" => h.proc_dir = v.extract().map_err(|_| wrong("a path"))?,
            "cpu_temp_path" => h.cpu_temp_path = v.extract().map_err(|_| wrong("a path"))?,
            "metadata" => {
                h.metadata = v.extract().map_err(|_| wrong("a dict of str to str"))?
            }
            "metrics" => h.metrics = callable(&v)?.map(metrics_fn),
            "alarms" => h.alarms = callable(&v)?.map(alarms_fn),
            "checks" => h.checks = callable(&v)?.map(checks_fn),
            other => {
                return Err(invalid(format!(
                    "extensions[\"health\"] has no {other:?}: use system_metrics, disk_path, proc_dir, cpu_temp_path, metadata, metrics, alarms, checks"
                )))
            }
        }
    }
    Ok(h)
}

/// `alarms() -> {name: description}`, read at every report.
fn alarms_fn(f: Py<PyAny>) -> AlarmsProvider {
    Arc::new(move || {
        Python::attach(|py| {
            let read = || -> PyResult<BTreeMap<String, String>> { f.bind(py).call0()?.extract() };
            read().unwrap_or_else(|e| {
                logging::exception(py, "the health alarms callable failed", &e);
                BTreeMap::new()
            })
        })
    })
}

/// `checks() -> {name: (passed, note)}` (or `{"pass": .., "note": ..}` dicts).
fn checks_fn(f: Py<PyAny>) -> ChecksProvider {
    Arc::new(move || {
        Python::attach(|py| {
            let read = || -> PyResult<BTreeMap<String, Check>> {
                let out = f.bind(py).call0()?;
                let dict = out.cast::<PyDict>()?;
                dict.iter()
                    .map(|(k, v)| {
                        let (pass, note): (bool, String) = match v.cast::<PyDict>() {
                            Ok(d) => (
                                d.get_item("pass")?
                                    .ok_or_else(|| invalid("a check needs \"pass\""))?
                                    .extract()?,
                                match d.get_item("note")? {
                                    Some(n) if !n.is_none() => n.extract()?,
                                    _ => String::new(),
                                },
                            ),
                            Err(_) => v.extract()?,
                        };
                        Ok((k.extract()?, Check { pass, note }))
                    })
                    .collect()
            };
            read().unwrap_or_else(|e| {
                logging::exception(py, "the health checks callable failed", &e);
                BTreeMap::new()
            })
        })
    })
}

type Metrics = Arc<dyn Fn() -> Vec<(String, f64)> + Send + Sync>;

fn metrics_fn(f: Py<PyAny>) -> Metrics {
    Arc::new(move || {
        Python::attach(|py| {
            let read = || -> PyResult<Vec<(String, f64)>> {
                let out = f.bind(py).call0()?;
                let dict = out.cast::<PyDict>()?;
                dict.iter()
                    .map(|(k, v)| Ok((k.extract()?, v.extract()?)))
                    .collect()
            };
            read().unwrap_or_else(|e| {
                logging::exception(py, "the health metrics callable failed", &e);
                Vec::new()
            })
        })
    })
}

struct PyGeo(Py<PyAny>);

impl GeoProvider for PyGeo {
    fn locate(&self) -> Result<Location, (String, String)> {
        Python::attach(|py| {
            let read = || -> PyResult<Location> {
                let out = self.0.bind(py).call0()?;
                let get = |k: &str| out.get_item(k);
                let accuracy = match get("accuracy") {
                    Ok(a) if !a.is_none() => Some(a.extract()?),
                    _ => None,
                };
                let source = match get("source") {
                    Ok(s) if !s.is_none() => s.extract()?,
                    _ => "manual".to_owned(),
                };
                Ok(Location {
                    latitude: get("latitude")?.extract()?,
                    longitude: get("longitude")?.extract()?,
                    source,
                    accuracy,
                })
            };
            read().map_err(|e| ("provider_error".to_owned(), e.to_string()))
        })
    }
}

fn geo_provider(f: Py<PyAny>) -> Arc<dyn GeoProvider> {
    Arc::new(PyGeo(f))
}

/// Where `apply_update` puts the image, and how it downloads.
pub struct UpdateArgs<'py> {
    pub path: Option<PathBuf>,
    pub sink: Option<Bound<'py, PyAny>>,
    pub fwup: Option<Vec<String>>,
    pub idle_timeout: f64,
    pub max_disconnects: u32,
    pub retry_delay: f64,
    pub max_total: f64,
    pub ca: Option<Bound<'py, PyAny>>,
    pub headers: Option<BTreeMap<String, String>>,
}

impl UpdateArgs<'_> {
    /// `apply_update`'s defaults, with no sink yet.
    pub fn defaults() -> Self {
        let d = DownloadOptions::default();
        UpdateArgs {
            path: None,
            sink: None,
            fwup: None,
            idle_timeout: d.idle_timeout.as_secs_f64(),
            max_disconnects: d.max_disconnects,
            retry_delay: d.retry_delay.as_secs_f64(),
            max_total: d.max_total.as_secs_f64(),
            ca: None,
            headers: None,
        }
    }

    #[allow(clippy::field_reassign_with_default)]
    pub fn into_options(self) -> PyResult<UpdateOptions> {
        let sink = match (self.path, self.sink, self.fwup) {
            (Some(path), None, None) => SinkSpec::File(path),
            (None, Some(sink), None) => SinkSpec::Custom(Arc::new(PySink::new(&sink)?)),
            (None, None, Some(mut command)) => {
                if command.is_empty() {
                    return Err(invalid("fwup must be a command and its arguments, e.g. [\"fwup\", \"--apply\", ...]"));
                }
                let program = command.remove(0);
                SinkSpec::Fwup {
                    command: program,
                    args: command,
                }
            }
            _ => {
                return Err(invalid(
                    "say where the image goes: exactly one of path=, sink= or fwup=",
                ))
            }
        };
        let mut download = DownloadOptions::default();
        download.idle_timeout = options::seconds(self.idle_timeout, "idle_timeout")?;
        download.max_disconnects = self.max_disconnects;
        download.retry_delay = Duration::try_from_secs_f64(self.retry_delay)
            .map_err(|_| invalid("retry_delay must be a finite number of seconds >= 0"))?;
        download.max_total = options::seconds(self.max_total, "max_total")?;
        if let Some(ca) = self.ca.filter(|c| !c.is_none()) {
            let mut tls = TlsOptions::default();
            tls.ca = Some(pem(&ca)?);
            download.tls = tls;
        }
        download.headers = self.headers.unwrap_or_default().into_iter().collect();
        let mut options = UpdateOptions::new(sink);
        options.download = download;
        Ok(options)
    }
}

fn pem(value: &Bound<'_, PyAny>) -> PyResult<PemSource> {
    if let Ok(bytes) = value.extract::<Vec<u8>>() {
        if !value.is_instance_of::<PyString>() {
            return Ok(PemSource::Memory(bytes));
        }
    }
    if let Ok(text) = value.cast::<PyString>() {
        let text = text.to_cow()?;
        if text.trim_start().starts_with("-----BEGIN") {
            return Ok(PemSource::Memory(text.as_bytes().to_vec()));
        }
    }
    value
        .extract::<PathBuf>()
        .map(PemSource::File)
        .map_err(|_| invalid("ca must be a path or PEM bytes"))
}
