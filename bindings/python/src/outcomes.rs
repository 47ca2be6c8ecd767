//! The Python value or exception of a join failure and of a push outcome
//! (their server responses converted with `convert`).

use nerves_hub_channel::{JoinFailure, Payload, PushOutcome};
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;

use crate::convert;
use crate::errors::{exception, make, opt, raisable};

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
