//! Socket keyword arguments to the core's `SocketConfig`.
//!
//! Validation that the core does (URL, header syntax, positive timeouts,
//! certificates) is left to it, so that Python and C report the same errors.

use std::path::PathBuf;

use nerves_hub_channel::{PemSource, SocketConfig, TlsOptions};
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes, PyDict, PyString};

use crate::duration::{seconds, seconds_or_zero};
use crate::errors::invalid;

/// The keyword arguments of `Socket(...)`, as received.
pub struct Options<'py> {
    pub url: String,
    pub ca: Option<Bound<'py, PyAny>>,
    pub cert: Option<Bound<'py, PyAny>>,
    pub key: Option<Bound<'py, PyAny>>,
    pub server_name: Option<String>,
    pub headers: Option<Bound<'py, PyAny>>,
    pub params: Option<Bound<'py, PyAny>>,
    pub connect_timeout: f64,
    pub heartbeat_interval: f64,
    pub heartbeat_timeout: f64,
    pub timeout: f64,
    pub rejoin_after: f64,
    pub rejoin_after_close: bool,
    pub reconnect: bool,
    pub backoff_initial: f64,
    pub backoff_max: f64,
    pub backoff_jitter: f64,
    pub stable_after: f64,
    pub outbound_capacity: usize,
    pub event_capacity: usize,
    pub max_message_size: usize,
    pub read_buffer_size: usize,
    /// `"json"` (vsn 2.0.0) or `"msgpack"` (vsn 3.0.0).
    pub serializer: String,
    pub proxy: Option<String>,
    pub no_proxy: Option<String>,
    pub proxy_from_env: bool,
}

impl Options<'_> {
    // Field by field so that TLS options the core may add keep their defaults.
    #[allow(clippy::field_reassign_with_default)]
    pub fn into_config(self) -> PyResult<SocketConfig> {
        let mut c = SocketConfig::new(self.url);
        let mut tls = TlsOptions::default();
        tls.ca = pem(self.ca.as_ref(), "ca")?;
        tls.client_cert = pem(self.cert.as_ref(), "cert")?;
        if !crate::pkcs11_key::set_external(self.key.as_ref(), &mut tls)? {
            tls.client_key = pem(self.key.as_ref(), "key")?;
        }
        tls.server_name = self.server_name;
        c.tls = tls;
        c.headers = pairs(self.headers.as_ref(), "headers")?;
        c.params = pairs(self.params.as_ref(), "params")?;
        c.connect_timeout = seconds(self.connect_timeout, "connect_timeout")?;
        c.heartbeat_interval = seconds(self.heartbeat_interval, "heartbeat_interval")?;
        c.heartbeat_timeout = seconds(self.heartbeat_timeout, "heartbeat_timeout")?;
        c.default_timeout = seconds(self.timeout, "timeout")?;
        c.rejoin_after = seconds_or_zero(self.rejoin_after, "rejoin_after")?;
        c.rejoin_after_close = self.rejoin_after_close;
        c.reconnect = self.reconnect;
        c.backoff.initial = seconds(self.backoff_initial, "backoff_initial")?;
        c.backoff.max = seconds(self.backoff_max, "backoff_max")?;
        if !(0.0..=10.0).contains(&self.backoff_jitter) {
            return Err(invalid("backoff_jitter must be between 0 and 10"));
        }
        c.backoff.jitter = self.backoff_jitter;
        c.stable_after = seconds_or_zero(self.stable_after, "stable_after")?;
        c.outbound_capacity = self.outbound_capacity;
        c.event_capacity = self.event_capacity;
        c.max_message_size = self.max_message_size;
        if self.read_buffer_size < 256 {
            return Err(invalid("read_buffer_size must be at least 256"));
        }
        c.read_buffer_size = self.read_buffer_size;
        c.serializer = self.serializer.parse().map_err(invalid)?;
        c.proxy.url = self.proxy;
        c.proxy.no_proxy = self.no_proxy;
        c.proxy.from_env = self.proxy_from_env;
        Ok(c)
    }
}

/// PEM material: `bytes` hold PEM, a `str` holding PEM text is taken as is,
/// any other `str` or `os.PathLike` names a file.
fn pem(value: Option<&Bound<'_, PyAny>>, name: &str) -> PyResult<Option<PemSource>> {
    let Some(value) = value.filter(|v| !v.is_none()) else {
        return Ok(None);
    };
    if let Ok(bytes) = value.cast::<PyBytes>() {
        return Ok(Some(PemSource::Memory(bytes.as_bytes().to_vec())));
    }
    if let Ok(array) = value.cast::<PyByteArray>() {
        return Ok(Some(PemSource::Memory(array.to_vec())));
    }
    if let Ok(text) = value.cast::<PyString>() {
        let text = text.to_cow()?;
        if text.trim_start().starts_with("-----BEGIN") {
            return Ok(Some(PemSource::Memory(text.as_bytes().to_vec())));
        }
    }
    match value.extract::<PathBuf>() {
        Ok(path) => Ok(Some(PemSource::File(path))),
        Err(_) => Err(invalid(format!(
            "{name} must be a path (str or os.PathLike) or PEM bytes, got {}",
            value.get_type().name()?
        ))),
    }
}

/// Name/value pairs from a mapping or an iterable of 2-tuples.
fn pairs(value: Option<&Bound<'_, PyAny>>, name: &str) -> PyResult<Vec<(String, String)>> {
    let Some(value) = value.filter(|v| !v.is_none()) else {
        return Ok(Vec::new());
    };
    let items = if let Ok(dict) = value.cast::<PyDict>() {
        dict.items().into_any()
    } else if value.hasattr("items")? {
        value.call_method0("items")?
    } else {
        value.clone()
    };
    let mut out = Vec::new();
    for item in items.try_iter()? {
        let pair: (String, String) = item?.extract().map_err(|_| {
            invalid(format!(
                "{name} must map str to str (a dict or (name, value) pairs)"
            ))
        })?;
        out.push(pair);
    }
    Ok(out)
}

/// The core's defaults in Python units, so that a test can hold the
/// keyword defaults of `Socket` and the stubs to them.
pub fn defaults(py: Python<'_>) -> PyResult<Bound<'_, PyDict>> {
    let c = SocketConfig::new("ws://localhost/socket/websocket");
    let d = PyDict::new(py);
    d.set_item("connect_timeout", c.connect_timeout.as_secs_f64())?;
    d.set_item("heartbeat_interval", c.heartbeat_interval.as_secs_f64())?;
    d.set_item("heartbeat_timeout", c.heartbeat_timeout.as_secs_f64())?;
    d.set_item("timeout", c.default_timeout.as_secs_f64())?;
    d.set_item("rejoin_after", c.rejoin_after.as_secs_f64())?;
    d.set_item("rejoin_after_close", c.rejoin_after_close)?;
    d.set_item("reconnect", c.reconnect)?;
    d.set_item("backoff_initial", c.backoff.initial.as_secs_f64())?;
    d.set_item("backoff_max", c.backoff.max.as_secs_f64())?;
    d.set_item("backoff_jitter", c.backoff.jitter)?;
    d.set_item("stable_after", c.stable_after.as_secs_f64())?;
    d.set_item("outbound_capacity", c.outbound_capacity)?;
    d.set_item("event_capacity", c.event_capacity)?;
    d.set_item("max_message_size", c.max_message_size)?;
    d.set_item("read_buffer_size", c.read_buffer_size)?;
    d.set_item("serializer", c.serializer.name())?;
    d.set_item("proxy_from_env", c.proxy.from_env)?;
    Ok(d)
}
