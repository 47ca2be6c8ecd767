//! `Channel`: join, leave, push and handlers of one topic on a socket.

use std::sync::Arc;
use std::time::Duration;

use nerves_hub_channel::{Channel as CoreChannel, Error};
use pyo3::prelude::*;

use crate::convert;
use crate::duration;
use crate::errors::{self, invalid, py_err};
use crate::handle::callable;
use crate::outcomes;
use crate::router::{self, JoinStart, Router};
use crate::wait;

/// A channel on one topic of a :class:`Socket`, made by :meth:`Socket.channel`.
///
/// Once joined, the channel stays joined: it rejoins after errors and
/// reconnects (re-evaluating its params) until :meth:`leave`. Blocking
/// methods release the GIL and can be interrupted with Ctrl-C; they may be
/// called from callbacks (a push from a handler does not deadlock: replies
/// are resolved by the library's I/O thread, not by the callback thread).
#[pyclass(frozen, module = "nerves_hub_channel._native")]
pub struct Channel {
    core: CoreChannel,
    router: Arc<Router>,
    default_timeout: Duration,
}

impl Channel {
    pub fn new(core: CoreChannel, router: Arc<Router>, default_timeout: Duration) -> Channel {
        Channel {
            core,
            router,
            default_timeout,
        }
    }

    fn timeout(&self, timeout: Option<f64>) -> PyResult<Duration> {
        duration::timeout_or(timeout, self.default_timeout, "timeout")
    }

    fn describe_push(&self, event: &str) -> String {
        format!("push {event:?} on {}", self.core.topic())
    }
}

impl Drop for Channel {
    fn drop(&mut self) {
        self.router.channel_dropped(self.core.id());
    }
}

#[pymethods]
impl Channel {
    /// The channel's topic.
    #[getter]
    fn topic(&self) -> &str {
        self.core.topic()
    }

    /// The connection task's view of the channel: ``"closed"``,
    /// ``"joining"``, ``"joined"``, ``"errored"`` or ``"leaving"``.
    #[getter]
    fn state(&self) -> &'static str {
        match self.core.state() {
            nerves_hub_channel::ChannelState::Closed => "closed",
            nerves_hub_channel::ChannelState::Joining => "joining",
            nerves_hub_channel::ChannelState::Joined => "joined",
            nerves_hub_channel::ChannelState::Errored => "errored",
            nerves_hub_channel::ChannelState::Leaving => "leaving",
        }
    }

    /// Whether the channel is joined, as far as delivered events tell.
    #[getter]
    fn joined(&self) -> bool {
        self.router.is_joined(self.core.id())
    }

    /// Joins and blocks until the server answers; returns its response.
    /// Raises :class:`JoinError` if the server refuses (``reason ==
    /// "refused"``, ``response`` holds its answer) or if ``timeout`` seconds
    /// (default: the socket's ``timeout``) pass first (``reason ==
    /// "timeout"``; when the socket is not connected the last connection
    /// error is the ``__cause__``), :class:`ClosedError` if the socket or
    /// channel closes first. After a failure the channel keeps trying to
    /// join in the background until :meth:`leave`.
    #[pyo3(signature = (timeout=None))]
    fn join(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<Py<PyAny>> {
        let timeout = self.timeout(timeout)?;
        self.router.mark_live(self.core.id());
        let reply = self.core.join_with_timeout(timeout).map_err(py_err)?;
        let topic = self.core.topic();
        // The core's timer starts when the join is sent; this deadline also
        // covers the time spent waiting for a connection.
        match wait::future(py, reply, wait::deadline(Some(timeout)))? {
            Some(Ok(Ok(response))) => {
                self.router.mark_joined(self.core.id(), &response);
                convert::to_python(py, &response)
            }
            Some(Ok(Err(failure))) => Err(PyErr::from_value(outcomes::join_error(
                py, topic, &failure,
            )?)),
            Some(Err(err)) => Err(py_err(err)),
            None => {
                let last = self.router.watch.lock().last_error.clone();
                let last = last.filter(|_| {
                    self.core.socket().state() != nerves_hub_channel::ConnectionState::Connected
                });
                Err(errors::join_deadline(
                    py,
                    topic,
                    timeout.as_secs_f64(),
                    last.as_ref(),
                ))
            }
        }
    }

    /// Leaves the channel and blocks until the server confirms or the
    /// socket's ``timeout`` passes. Leaving a channel that is not joined
    /// returns at once.
    fn leave(&self, py: Python<'_>) -> PyResult<()> {
        let reply = self.core.leave().map_err(py_err)?;
        match wait::future(py, reply, None)? {
            Some(Err(Error::Closed(_))) | Some(Ok(())) | None => {
                self.router.mark_left(self.core.id());
                Ok(())
            }
            Some(Err(err)) => Err(py_err(err)),
        }
    }

    /// Pushes ``event`` with ``payload`` and blocks until the reply; returns
    /// the reply's response. ``payload`` is a JSON-serialisable value, or
    /// ``bytes`` (sent as a binary frame). Raises :class:`PushError` for an
    /// error reply (``status``, ``response``), :class:`PushTimeout` without
    /// a reply within ``timeout`` seconds (default: the socket's
    /// ``timeout``; pushes wait in a bounded buffer while not joined),
    /// :class:`BufferFull`, :class:`ClosedError`, :class:`InvalidArgument`.
    #[pyo3(signature = (event, payload=None, timeout=None))]
    fn push(
        &self,
        py: Python<'_>,
        event: &str,
        payload: Option<Bound<'_, PyAny>>,
        timeout: Option<f64>,
    ) -> PyResult<Py<PyAny>> {
        let timeout = self.timeout(timeout)?;
        let payload = payload_of(payload.as_ref())?;
        let reply = self
            .core
            .push_with_timeout(event, payload, timeout)
            .map_err(py_err)?;
        // The core resolves every push (reply, timeout or not sent), so
        // this wait needs no deadline of its own.
        let outcome = match wait::future(py, reply, None)? {
            Some(Ok(outcome)) => outcome,
            Some(Err(err)) => return Err(py_err(err)),
            None => {
                return Err(py_err(Error::Closed(
                    "the socket closed before answering".into(),
                )))
            }
        };
        outcomes::push_result(py, &self.describe_push(event), outcome)?
    }

    /// Sends ``event`` without waiting for a reply (NervesHub never replies
    /// to device events). A push that cannot be sent within ``timeout``
    /// seconds is reported in the log.
    #[pyo3(signature = (event, payload=None, timeout=None))]
    fn cast(
        &self,
        event: &str,
        payload: Option<Bound<'_, PyAny>>,
        timeout: Option<f64>,
    ) -> PyResult<()> {
        let timeout = self.timeout(timeout)?;
        let payload = payload_of(payload.as_ref())?;
        self.core.cast(event, payload, timeout).map_err(py_err)?;
        Ok(())
    }

    /// Calls ``handler(payload)`` for every server message ``event`` on
    /// this channel; with ``event == "*"``, ``handler(event, payload)`` for
    /// every message. Handlers run in order of registration; an exception
    /// is logged (logger ``nerves_hub_channel``) and delivery goes on.
    fn on(&self, event: String, handler: Bound<'_, PyAny>) -> PyResult<()> {
        if event.is_empty() {
            return Err(invalid("event must not be empty"));
        }
        let handler = callable(Some(handler), "handler")?
            .ok_or_else(|| invalid("handler must not be None"))?;
        self.router.on(self.core.id(), event, handler);
        Ok(())
    }

    /// Removes the handlers of ``event`` (only those equal to ``handler``
    /// if given). Returns how many were removed.
    #[pyo3(signature = (event, handler=None))]
    fn off(
        &self,
        py: Python<'_>,
        event: &str,
        handler: Option<Bound<'_, PyAny>>,
    ) -> PyResult<usize> {
        self.router.off(py, self.core.id(), event, handler.as_ref())
    }

    /// Sets (or with ``None`` removes) ``handler(state, detail)``, called as
    /// the channel's state changes: ``("joined", response)``,
    /// ``("join_failed", JoinError)`` (it retries after ``rejoin_after``),
    /// ``("errored", reason)`` (server crash or lost connection; it
    /// rejoins), ``("closed", reason)`` (left or closed by the server).
    #[pyo3(signature = (handler))]
    fn on_state(&self, handler: Option<Bound<'_, PyAny>>) -> PyResult<()> {
        let handler = callable(handler, "handler")?;
        self.router
            .set_channel_state_handler(self.core.id(), handler);
        Ok(())
    }

    /// Event-loop integration: starts a join and returns at once;
    /// ``callback(ok, value)`` gets the outcome (the response, or the
    /// exception) from the socket's callback thread (``dispatch`` for
    /// polled sockets). If the channel is already joined the callback runs
    /// before this returns.
    #[pyo3(signature = (callback, timeout=None))]
    fn join_nowait(
        &self,
        py: Python<'_>,
        callback: Bound<'_, PyAny>,
        timeout: Option<f64>,
    ) -> PyResult<()> {
        let timeout = self.timeout(timeout)?;
        let callback = callable(Some(callback), "callback")?
            .ok_or_else(|| invalid("callback must not be None"))?;
        let topic = self.core.topic().to_owned();
        match self
            .router
            .join_waiter(self.core.id(), callback.clone_ref(py))
        {
            JoinStart::Joined(response) => {
                let value = convert::to_python(py, &response)?;
                router::call(py, &callback, (true, value), || {
                    format!("join waiter of {topic}")
                });
                Ok(())
            }
            // Registered before the join is sent: the GIL (threaded) or
            // this thread (polled) keeps the outcome from being routed first.
            JoinStart::Wait => self
                .core
                .join_with_timeout(timeout)
                .map(drop)
                .map_err(py_err),
        }
    }

    /// Event-loop integration: starts a leave and returns at once;
    /// ``callback(True, None)`` runs once the channel is closed (at once
    /// if it is not joined).
    fn leave_nowait(&self, py: Python<'_>, callback: Bound<'_, PyAny>) -> PyResult<()> {
        let callback = callable(Some(callback), "callback")?
            .ok_or_else(|| invalid("callback must not be None"))?;
        match self.router.leave_waiter(self.core.id(), callback) {
            Ok(()) => self.core.leave().map(drop).map_err(py_err),
            Err(callback) => {
                let topic = self.core.topic().to_owned();
                router::call(py, &callback, (true, py.None()), || {
                    format!("leave waiter of {topic}")
                });
                Ok(())
            }
        }
    }

    /// Event-loop integration: pushes and returns the push's id at once;
    /// ``callback(ok, value)`` gets the outcome (the reply's response, or
    /// the exception :meth:`push` would raise) on the socket's callback thread.
    #[pyo3(signature = (event, payload, callback, timeout=None))]
    fn push_nowait(
        &self,
        event: &str,
        payload: Option<Bound<'_, PyAny>>,
        callback: Bound<'_, PyAny>,
        timeout: Option<f64>,
    ) -> PyResult<u64> {
        let timeout = self.timeout(timeout)?;
        let payload = payload_of(payload.as_ref())?;
        let callback = callable(Some(callback), "callback")?
            .ok_or_else(|| invalid("callback must not be None"))?;
        let push = self
            .core
            .push_tracked(event, payload, timeout)
            .map_err(py_err)?;
        // Nothing here releases the GIL, and polled sockets route on this
        // very thread: the reply cannot be routed before it is expected.
        self.router
            .expect_reply(push, self.describe_push(event), callback);
        Ok(push)
    }

    fn __repr__(&self) -> String {
        format!("<Channel {} joined={}>", self.core.topic(), self.joined())
    }
}

fn payload_of(payload: Option<&Bound<'_, PyAny>>) -> PyResult<nerves_hub_channel::Payload> {
    match payload {
        Some(p) if !p.is_none() => convert::to_payload(p),
        _ => Ok(nerves_hub_channel::Payload::empty()),
    }
}
