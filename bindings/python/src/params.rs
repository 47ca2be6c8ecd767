//! Join parameters: a fixed payload, or a Python callable evaluated at
//! every (re)join because device metadata changes between connections.

use std::sync::Arc;

use nerves_hub_channel::{JoinParams, Payload};
use pyo3::prelude::*;

use crate::convert;

pub fn join_params(topic: &str, params: Option<&Bound<'_, PyAny>>) -> PyResult<JoinParams> {
    let Some(params) = params.filter(|p| !p.is_none()) else {
        return Ok(JoinParams::Static(Payload::empty()));
    };
    if !params.is_callable() {
        return Ok(JoinParams::Static(convert::to_payload(params)?));
    }
    let callable = params.clone().unbind();
    let topic = topic.to_owned();
    Ok(JoinParams::Dynamic(Arc::new(move || {
        evaluate(&topic, &callable)
    })))
}

/// Runs on an I/O thread, so it holds the GIL only for the call and
/// never lets an exception escape: a failing callable joins with `{}`.
fn evaluate(topic: &str, callable: &Py<PyAny>) -> Payload {
    // Declines while the interpreter shuts down instead of blocking there.
    let evaluated = Python::try_attach(|py| {
        callable
            .call0(py)
            .and_then(|value| convert::to_payload(value.bind(py)))
            .map_err(|e| describe(py, &e))
    });
    match evaluated {
        Some(Ok(payload)) => payload,
        Some(Err(err)) => {
            // Logged through the queue: no Python logging on an I/O thread.
            log::error!("the join params callable of {topic} failed; joining with {{}}: {err}");
            Payload::empty()
        }
        None => Payload::empty(),
    }
}

/// The exception with its traceback, as text.
fn describe(py: Python<'_>, err: &PyErr) -> String {
    let formatted = py
        .import("traceback")
        // The three-argument form: Python 3.9 has no other.
        .and_then(|tb| {
            tb.call_method1(
                "format_exception",
                (err.get_type(py), err.value(py), err.traceback(py)),
            )
        })
        .and_then(|lines| Ok(lines.extract::<Vec<String>>()?.concat()));
    formatted.unwrap_or_else(|_| err.to_string())
}
