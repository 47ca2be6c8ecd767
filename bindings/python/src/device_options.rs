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
use nerves_hub_channel::nerves_hub::extensions::{
    ExtensionsOptions, GeoProvider, HealthOptions, Location,
};
use nerves_hub_channel::nerves_hub::nh1::{Nh1Auth, Nh1Digest, SharedSecret};
use nerves_hub_channel::nerves_hub::update::{DownloadOptions, SinkSpec, UpdateOptions};
use nerves_hub_channel::nerves_hub::{DeviceConfig, FirmwareMetadata, FirmwareValidatedFn};
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
    pub extensions: Option<Bound<'py, PyAny>>,
    pub report_timeout: f64,
}

impl DeviceOptions<'_> {
    pub fn into_config(self, socket: Options<'_>) -> PyResult<DeviceConfig> {
        let mut c = DeviceConfig::new(socket.into_config()?);
        if let Some(secret) = self.shared_secret.filter(|s| !s.is_none()) {
            let auth = Nh1Auth::new(shared_secret(&secret)?).map_err(py_err)?;
            c.auth = Some(Arc::new(auth));
        }
        c.device_api_version = self.device_api_version;
        c.metadata = metadata(self.fwup_env_path, self.metadata.as_ref())?;
        c.fwup_version = self.fwup_version;
        c.update_tool = self.update_tool;
        c.request_fwup_public_keys = self.request_fwup_public_keys;
        c.request_archive_public_keys = self.request_archive_public_keys;
        c.firmware_validated = self
            .firmware_validated
            .filter(|f| !f.is_none())
            .map(validated_fn)
            .transpose()?;
        c.validation_poll_interval =
            options::seconds(self.validation_poll_interval, "validation_poll_interval")?;
        c.scripts = self.scripts;
        if self.console || self.console_shell.is_some() {
            let mut console = ConsoleOptions::default();
            if let Some(command) = self.console_shell {
                console.shell = Some(ShellOptions {
                    command,
                    ..ShellOptions::default()
                });
            }
            c.console = Some(console);
        }
        c.extensions = self
            .extensions
            .filter(|e| !e.is_none())
            .map(|e| extensions(&e))
            .transpose()?;
        c.report_timeout = options::seconds(self.report_timeout, "report_timeout")?;
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

/// The env file's keys, then the dict's (which win).
fn metadata(env: Option<PathBuf>, dict: Option<&Bound<'_, PyAny>>) -> PyResult<FirmwareMetadata> {
    let mut m = match env {
        Some(path) => FirmwareMetadata::from_env_file(path).map_err(py_err)?,
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

/// `{"health": True | metrics callable, "geo": callable, "logging": True}`.
fn extensions(value: &Bound<'_, PyAny>) -> PyResult<ExtensionsOptions> {
    let dict = value.cast::<PyDict>().map_err(|_| {
        invalid("extensions must be a dict with keys \"health\", \"geo\", \"logging\"")
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
            "health" => {
                if v.is_truthy()? {
                    opts.health = Some(HealthOptions::default());
                }
            }
            "geo" if v.is_none() => {}
            "geo" if v.is_callable() => opts.geo = Some(geo_provider(v.unbind())),
            "geo" => return Err(invalid("extensions[\"geo\"] must be a callable")),
            "logging" => opts.logging = v.is_truthy()?,
            other => {
                return Err(invalid(format!(
                    "unknown extension {other:?}: the device offers \"health\", \"geo\" and \"logging\""
                )))
            }
        }
    }
    Ok(opts)
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
