//! Core errors as the package's Python exceptions.
//!
//! The exception classes live in `nerves_hub_channel._errors` (plain Python)
//! so that they carry typed attributes (`status`, `response`...) and real
//! `__init__` signatures; this file only builds instances of them.

use nerves_hub_channel::Error;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyModule};
use pyo3::IntoPyObjectExt;

static MODULE: PyOnceLock<Py<PyModule>> = PyOnceLock::new();

fn module(py: Python<'_>) -> PyResult<&Bound<'_, PyModule>> {
    MODULE
        .get_or_try_init(py, || Ok(py.import("nerves_hub_channel._errors")?.unbind()))
        .map(|m| m.bind(py))
}

/// Instantiates `nerves_hub_channel.<class>(message, **kwargs)`.
pub(crate) fn make<'py>(
    py: Python<'py>,
    class: &str,
    message: String,
    kwargs: &[(&str, Py<PyAny>)],
) -> PyResult<Bound<'py, PyAny>> {
    let cls = module(py)?.getattr(class)?;
    let kw = PyDict::new(py);
    for (k, v) in kwargs {
        kw.set_item(k, v)?;
    }
    cls.call((message,), Some(&kw))
}

/// Turns a failed construction into something raisable all the same.
pub(crate) fn raisable(built: PyResult<Bound<'_, PyAny>>) -> PyErr {
    match built {
        Ok(exc) => PyErr::from_value(exc),
        Err(e) => e,
    }
}

pub(crate) fn opt<'py, T: IntoPyObject<'py>>(py: Python<'py>, v: T) -> Py<PyAny> {
    v.into_py_any(py).unwrap_or_else(|_| py.None())
}

/// The exception instance for a core error.
pub fn exception<'py>(py: Python<'py>, err: &Error) -> PyResult<Bound<'py, PyAny>> {
    let msg = err.to_string();
    match err {
        Error::InvalidArgument(_) => make(py, "InvalidArgument", msg, &[]),
        Error::Tls(_) => make(py, "TlsError", msg, &[]),
        Error::Auth { status, reason } => make(
            py,
            "AuthError",
            msg,
            &[
                ("status", opt(py, *status)),
                ("reason", opt(py, reason.clone())),
            ],
        ),
        Error::Http { status, reason } => make(
            py,
            "ConnectError",
            msg,
            &[
                ("status", opt(py, *status)),
                ("reason", opt(py, reason.clone())),
            ],
        ),
        Error::Proxy { status, .. } => make(py, "ProxyError", msg, &[("status", opt(py, *status))]),
        // A connect or heartbeat deadline is a failed connection for the user.
        Error::Connect(_) | Error::Timeout(_) => make(py, "ConnectError", msg, &[]),
        Error::Protocol(_) => make(py, "ProtocolError", msg, &[]),
        Error::Closed(_) => make(py, "ClosedError", msg, &[]),
        Error::BufferFull(_) => make(py, "BufferFull", msg, &[]),
        Error::Forked => make(py, "ForkedError", msg, &[]),
        // The core may grow error kinds; they still reach Python as `Error`.
        #[allow(unreachable_patterns)]
        _ => make(py, "Error", msg, &[]),
    }
}

/// A core error as a raisable `PyErr`.
pub fn py_err(err: Error) -> PyErr {
    Python::attach(|py| raisable(exception(py, &err)))
}

/// `nerves_hub_channel.Error` (or a subclass) with a message of our own.
pub fn new_err(class: &str, message: impl Into<String>) -> PyErr {
    Python::attach(|py| raisable(make(py, class, message.into(), &[])))
}

pub fn invalid(message: impl Into<String>) -> PyErr {
    new_err("InvalidArgument", message)
}

/// The join error raised when our own deadline passes first (for example
/// while the socket cannot connect); the last connection error is its cause.
pub fn join_deadline(py: Python<'_>, topic: &str, waited: f64, last: Option<&Error>) -> PyErr {
    let mut message = format!("{topic} was not joined within {waited} s");
    if let Some(err) = last {
        message.push_str(&format!(
            "; the socket is not connected (last error: {err})"
        ));
    }
    let built = make(py, "JoinError", message, &[("reason", opt(py, "timeout"))]);
    let err = raisable(built);
    if let Some(last) = last {
        err.set_cause(py, Some(raisable(exception(py, last))));
    }
    err
}
