//! Core errors as the package's Python exceptions.
//!
//! The exception classes live in `nerves_hub_channel._errors` (plain Python)
//! so that they carry typed attributes (`status`, `response`...) and real
//! `__init__` signatures; this file only builds instances of them.

use nerves_hub_channel::{Error, JoinFailure, Payload, PushOutcome};
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyModule};
use pyo3::IntoPyObjectExt;

use crate::convert;

static MODULE: PyOnceLock<Py<PyModule>> = PyOnceLock::new();

fn module(py: Python<'_>) -> PyResult<&Bound<'_, PyModule>> {
    MODULE
        .get_or_try_init(py, || Ok(py.import("nerves_hub_channel._errors")?.unbind()))
        .map(|m| m.bind(py))
}

/// Instantiates `nerves_hub_channel.<class>(message, **kwargs)`.
fn make<'py>(
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
fn raisable(built: PyResult<Bound<'_, PyAny>>) -> PyErr {
    match built {
        Ok(exc) => PyErr::from_value(exc),
        Err(e) => e,
    }
}

fn opt<'py, T: IntoPyObject<'py>>(py: Python<'py>, v: T) -> Py<PyAny> {
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

/// The exception for a failed join of `topic`.
pub fn join_error<'py>(
    py: Python<'py>,
    topic: &str,
    failure: &JoinFailure,
) -> PyResult<Bound<'py, PyAny>> {
    match failure {
        JoinFailure::Refused(response) => {
            let text = describe(response);
            let response = convert::to_python(py, response)?;
            make(
                py,
                "JoinError",
                format!("the server refused to join {topic}: {text}"),
                &[("reason", opt(py, "refused")), ("response", response)],
            )
        }
        JoinFailure::Timeout => make(
            py,
            "JoinError",
            format!("no reply to the join of {topic} in time"),
            &[("reason", opt(py, "timeout"))],
        ),
        JoinFailure::Closed(err) => exception(py, err),
        #[allow(unreachable_patterns)]
        _ => make(py, "JoinError", format!("join of {topic} failed"), &[]),
    }
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

/// A push outcome: the reply's response, or the exception to raise.
pub fn push_result(
    py: Python<'_>,
    what: &str,
    outcome: PushOutcome,
) -> PyResult<Result<Py<PyAny>, PyErr>> {
    Ok(match outcome {
        PushOutcome::Ok(response) => Ok(convert::to_python(py, &response)?),
        PushOutcome::Error { status, response } => {
            let message = format!(
                "{what} was answered with {status:?}: {}",
                describe(&response)
            );
            let response = convert::to_python(py, &response)?;
            let status = opt(py, status);
            Err(raisable(make(
                py,
                "PushError",
                message,
                &[("status", status), ("response", response)],
            )))
        }
        PushOutcome::Timeout => Err(raisable(make(
            py,
            "PushTimeout",
            format!("no reply to {what} in time"),
            &[],
        ))),
        PushOutcome::NotSent(err) => Err(raisable(exception(py, &err))),
        #[allow(unreachable_patterns)]
        _ => Err(PyRuntimeError::new_err(format!("{what}: unknown outcome"))),
    })
}

/// Short text of a payload for messages: JSON as is (cut), binary as a size.
fn describe(payload: &Payload) -> String {
    match payload.json_text() {
        Some(text) if text.len() > 200 => format!("{}...", &text[..floor_char(text, 200)]),
        Some(text) => text.to_owned(),
        None => format!("<{} bytes>", payload.binary().map_or(0, <[u8]>::len)),
    }
}

fn floor_char(text: &str, mut at: usize) -> usize {
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}
