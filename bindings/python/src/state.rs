//! `StateChange`: what a socket's `on_state` callback receives.

use nerves_hub_channel::{ConnectionState, Event};
use pyo3::prelude::*;

use crate::errors;

/// A change of a socket's connection, handed to its ``on_state`` callback.
///
/// ``state`` is one of ``"connecting"``, ``"connected"``, ``"disconnected"``,
/// ``"closed"``, and two that report without changing the state:
/// ``"auth_error"`` (the server refused the credentials; the socket keeps
/// retrying slowly) and ``"protocol_error"`` (a frame from the server could
/// not be decoded and was dropped).
#[pyclass(frozen, get_all, module = "nerves_hub_channel._native")]
pub struct StateChange {
    /// What happened (see the class documentation).
    pub state: String,
    /// Why, for ``"disconnected"``, ``"auth_error"`` and ``"protocol_error"``:
    /// an instance of :class:`nerves_hub_channel.Error`; ``None`` otherwise.
    pub error: Option<Py<PyAny>>,
    /// Seconds until the next connection attempt, or ``None`` if none is planned.
    pub reconnect_in: Option<f64>,
    /// For ``"connecting"``: the attempt number, from 1 since the last success; 0 otherwise.
    pub attempt: u32,
}

#[pymethods]
impl StateChange {
    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let mut s = format!("StateChange(state={:?}", self.state);
        if let Some(error) = &self.error {
            s.push_str(&format!(", error={}", error.bind(py).repr()?));
        }
        if let Some(r) = self.reconnect_in {
            s.push_str(&format!(", reconnect_in={r:.3}"));
        }
        if self.attempt > 0 {
            s.push_str(&format!(", attempt={}", self.attempt));
        }
        s.push(')');
        Ok(s)
    }
}

impl StateChange {
    /// The change an event reports, or `None` for channel events.
    pub fn from_event(py: Python<'_>, event: &Event) -> PyResult<Option<StateChange>> {
        let change = |state: &str, error: Option<Py<PyAny>>, reconnect_in: Option<f64>, attempt| {
            StateChange {
                state: state.to_owned(),
                error,
                reconnect_in,
                attempt,
            }
        };
        Ok(Some(match event {
            Event::Connecting { attempt } => change("connecting", None, None, *attempt),
            Event::Connected => change("connected", None, None, 0),
            Event::Disconnected {
                reason,
                reconnect_in,
            } => change(
                "disconnected",
                Some(errors::exception(py, reason)?.unbind()),
                reconnect_in.map(|d| d.as_secs_f64()),
                0,
            ),
            Event::AuthError {
                error,
                reconnect_in,
            } => change(
                "auth_error",
                Some(errors::exception(py, error)?.unbind()),
                reconnect_in.map(|d| d.as_secs_f64()),
                0,
            ),
            Event::ProtocolError { detail } => change(
                "protocol_error",
                Some(
                    errors::exception(py, &nerves_hub_channel::Error::Protocol(detail.clone()))?
                        .unbind(),
                ),
                None,
                0,
            ),
            Event::Closed => change("closed", None, None, 0),
            _ => return Ok(None),
        }))
    }
}

pub fn state_name(state: ConnectionState) -> &'static str {
    match state {
        ConnectionState::Disconnected => "disconnected",
        ConnectionState::Connecting => "connecting",
        ConnectionState::Connected => "connected",
        ConnectionState::Closed => "closed",
    }
}
