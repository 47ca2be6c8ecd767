//! `Socket`: one websocket connection (re-made as needed) carrying channels.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nerves_hub_channel::config::redact_query;
use nerves_hub_channel::{ConnectionState, Event, Socket as CoreSocket};
use pyo3::prelude::*;

use crate::channel::Channel;
use crate::delivery;
use crate::errors::{self, invalid, new_err, py_err};
use crate::options::{self, Options};
use crate::params;
use crate::registry;
use crate::router::Router;
use crate::state::state_name;
use crate::wait;

/// A Phoenix socket: one websocket connection to ``url`` (re-made after
/// failures, with exponential back-off) carrying any number of channels.
///
/// Nothing is sent until :meth:`connect`. TLS material (``ca``, ``cert``,
/// ``key``) is a path (``str`` or ``os.PathLike``) or PEM data (``bytes``,
/// or a ``str`` starting with ``-----BEGIN``); without ``ca`` the system's
/// trust store is used. Durations are in seconds. ``headers`` and
/// ``params`` (extra HTTP headers and URL query parameters) are dicts or
/// ``(name, value)`` pairs. ``timeout`` is the default of joins, leaves and
/// pushes.
///
/// ``on_state(change: StateChange)`` is called for every connection change.
/// With ``delivery="threaded"`` (the default) callbacks run on one
/// library-owned thread shared by all sockets; with ``delivery="polled"``
/// they run only inside :meth:`dispatch`, on the thread that calls it, and
/// :meth:`fileno` is readable while events are pending (the asyncio API is
/// built on this).
///
/// Every method may be called from any thread, including from callbacks.
/// Use the socket as a context manager, or call :meth:`close`.
#[pyclass(frozen, module = "nerves_hub_channel._native")]
pub struct Socket {
    core: CoreSocket,
    router: Arc<Router>,
    polled: bool,
    default_timeout: Duration,
    dispatching: AtomicBool,
    url: String,
    registered: u64,
}

impl Drop for Socket {
    fn drop(&mut self) {
        registry::unregister(self.registered);
    }
}

/// Resets the "dispatching" flag however `dispatch` ends.
struct Dispatching<'a>(&'a AtomicBool);

impl Drop for Dispatching<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

#[pymethods]
impl Socket {
    #[new]
    #[pyo3(signature = (
        url, *, ca=None, cert=None, key=None, server_name=None, headers=None, params=None,
        connect_timeout=15.0, heartbeat_interval=30.0, heartbeat_timeout=30.0, timeout=10.0,
        rejoin_after=5.0, rejoin_after_close=false, reconnect=true, backoff_initial=1.0,
        backoff_max=60.0, backoff_jitter=0.5, stable_after=120.0, outbound_capacity=1024, event_capacity=1024,
        max_message_size=8388608, read_buffer_size=4096, on_state=None, delivery="threaded"
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new<'py>(
        url: String,
        ca: Option<Bound<'py, PyAny>>,
        cert: Option<Bound<'py, PyAny>>,
        key: Option<Bound<'py, PyAny>>,
        server_name: Option<String>,
        headers: Option<Bound<'py, PyAny>>,
        params: Option<Bound<'py, PyAny>>,
        connect_timeout: f64,
        heartbeat_interval: f64,
        heartbeat_timeout: f64,
        timeout: f64,
        rejoin_after: f64,
        rejoin_after_close: bool,
        reconnect: bool,
        backoff_initial: f64,
        backoff_max: f64,
        backoff_jitter: f64,
        stable_after: f64,
        outbound_capacity: usize,
        event_capacity: usize,
        max_message_size: usize,
        read_buffer_size: usize,
        on_state: Option<Bound<'py, PyAny>>,
        delivery: &str,
    ) -> PyResult<Socket> {
        let polled = match delivery {
            "threaded" => false,
            "polled" => true,
            other => {
                return Err(invalid(format!(
                    "delivery must be \"threaded\" or \"polled\", got {other:?}"
                )))
            }
        };
        let on_state = callable(on_state, "on_state")?;
        let config = Options {
            url: url.clone(),
            ca,
            cert,
            key,
            server_name,
            headers,
            params,
            connect_timeout,
            heartbeat_interval,
            heartbeat_timeout,
            timeout,
            rejoin_after,
            rejoin_after_close,
            reconnect,
            backoff_initial,
            backoff_max,
            backoff_jitter,
            stable_after,
            outbound_capacity,
            event_capacity,
            max_message_size,
            read_buffer_size,
        }
        .into_config()?;
        let default_timeout = config.default_timeout;
        let core = CoreSocket::new(config).map_err(py_err)?;
        let router = Router::new(on_state);
        if !polled {
            delivery::attach(&core, router.clone())?;
        }
        let registered = registry::register(&core);
        Ok(Socket {
            registered,
            core,
            router,
            polled,
            default_timeout,
            dispatching: AtomicBool::new(false),
            url: redact_query(&url),
        })
    }

    /// Starts connecting in the background; the socket then reconnects
    /// after failures until :meth:`disconnect` or :meth:`close`. Returns at
    /// once: see :meth:`wait_connected` and ``on_state``.
    fn connect(&self) -> PyResult<()> {
        self.router.watch.connect_called();
        self.core.connect().map_err(py_err)
    }

    /// Closes the connection; channels stay and rejoin on the next :meth:`connect`.
    fn disconnect(&self) -> PyResult<()> {
        self.core.disconnect().map_err(py_err)
    }

    /// Closes the socket for good: pending joins and pushes fail with
    /// :class:`ClosedError`, ``on_state`` gets ``"closed"`` and every
    /// callback is released. A threaded socket waits (at most ``timeout``
    /// seconds, and not when called from a callback) until that is done:
    /// no callback of the socket runs after ``close`` returns. Calling it
    /// again does nothing.
    #[pyo3(signature = (timeout=5.0))]
    fn close(&self, py: Python<'_>, timeout: f64) -> PyResult<()> {
        let timeout = options::seconds(timeout, "timeout")?;
        self.core.close();
        if self.polled || delivery::on_delivery_thread() {
            return Ok(());
        }
        let deadline = wait::deadline(Some(timeout));
        let watch = &self.router.watch;
        wait::until(py, &watch.seen, &watch.changed, deadline, |s| s.finished)?;
        Ok(())
    }

    /// The connection state: ``"disconnected"``, ``"connecting"``,
    /// ``"connected"`` or ``"closed"``.
    #[getter]
    fn state(&self) -> &'static str {
        state_name(self.core.state())
    }

    /// ``"threaded"`` or ``"polled"``: where callbacks run.
    #[getter]
    fn delivery(&self) -> &'static str {
        if self.polled {
            "polled"
        } else {
            "threaded"
        }
    }

    /// A channel on ``topic``; nothing is sent until :meth:`Channel.join`.
    /// ``params`` is the join payload: a JSON-serialisable value, or a
    /// callable returning one, called again before every rejoin (on a
    /// library thread; if it raises, the error is logged and ``{}`` is sent).
    #[pyo3(signature = (topic, params=None))]
    fn channel(&self, topic: &str, params: Option<Bound<'_, PyAny>>) -> PyResult<Channel> {
        let join_params = params::join_params(topic, params.as_ref())?;
        let core = self.core.channel(topic, join_params).map_err(py_err)?;
        self.router.add_channel(core.id(), topic);
        Ok(Channel::new(
            core,
            self.router.clone(),
            self.default_timeout,
        ))
    }

    /// Blocks until the socket is connected. Raises the error of a
    /// connection attempt that failed since :meth:`connect` was called
    /// (:class:`TlsError`, :class:`AuthError`, :class:`ConnectError`...),
    /// :class:`ConnectError` if ``timeout`` seconds pass first, or
    /// :class:`ClosedError`. The socket keeps retrying in the background
    /// either way. Threaded sockets only, and not from a callback.
    #[pyo3(signature = (timeout=None))]
    fn wait_connected(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<()> {
        if self.polled {
            return Err(invalid("wait_connected needs delivery=\"threaded\"; a polled socket reports through on_state"));
        }
        if delivery::on_delivery_thread() {
            return Err(new_err(
                "Error",
                "wait_connected cannot be called from a callback: it would wait for itself",
            ));
        }
        let timeout = timeout
            .map(|t| options::seconds(t, "timeout"))
            .transpose()?;
        if self.core.state() == ConnectionState::Connected {
            return Ok(());
        }
        let watch = &self.router.watch;
        let start = {
            let mut s = watch.lock();
            if s.closed {
                return Err(closed());
            }
            // An attempt that failed between connect() and this call.
            if s.generation > s.connect_generation.max(s.reported_generation) {
                match s.outcome.clone() {
                    Some(Some(err)) => {
                        s.reported_generation = s.generation;
                        return Err(py_err(err));
                    }
                    Some(None) if self.core.state() == ConnectionState::Connected => return Ok(()),
                    _ => {}
                }
            }
            s.generation
        };
        let met = wait::until(
            py,
            &watch.seen,
            &watch.changed,
            wait::deadline(timeout),
            |s| s.generation != start || s.closed,
        )?;
        let mut s = watch.lock();
        if s.closed {
            return Err(closed());
        }
        if met {
            return match s.outcome.clone() {
                Some(Some(err)) => {
                    s.reported_generation = s.generation;
                    Err(py_err(err))
                }
                _ => Ok(()),
            };
        }
        let waited = timeout.map_or(0.0, |t| t.as_secs_f64());
        let mut message = format!("not connected within {waited} s");
        if let Some(last) = &s.last_error {
            message.push_str(&format!(" (last error: {last})"));
        }
        let err = new_err("ConnectError", message);
        if let Some(last) = s.last_error.clone() {
            err.set_cause(py, Some(py_err(last)));
        }
        Err(err)
    }

    /// Polled sockets: a file descriptor that is readable while events are
    /// pending, for ``select``/``poll`` loops and ``loop.add_reader``. Owned
    /// by the socket; do not close it.
    fn fileno(&self) -> PyResult<i32> {
        if !self.polled {
            return Err(invalid("fileno needs delivery=\"polled\""));
        }
        self.core.event_fd().map_err(py_err)
    }

    /// Polled sockets: runs the callbacks of pending events on this thread,
    /// at most ``max_events`` of them, waiting up to ``timeout`` seconds for
    /// the first one. Returns how many events were handled.
    #[pyo3(signature = (timeout=0.0, max_events=64))]
    fn dispatch(&self, py: Python<'_>, timeout: f64, max_events: usize) -> PyResult<usize> {
        if !self.polled {
            return Err(invalid(
                "dispatch needs delivery=\"polled\"; threaded sockets deliver on their own",
            ));
        }
        if !timeout.is_finite() || timeout < 0.0 {
            return Err(invalid(format!(
                "timeout must be a number of seconds >= 0, got {timeout}"
            )));
        }
        if self.dispatching.swap(true, Ordering::AcqRel) {
            return Err(new_err(
                "Error",
                "dispatch is already running for this socket (called from one of its callbacks?)",
            ));
        }
        let _running = Dispatching(&self.dispatching);
        let mut handled = 0;
        let mut next = self.first_event(py, Duration::from_secs_f64(timeout))?;
        while let Some(event) = next {
            self.router.watch.update(&event);
            self.router.route(py, event);
            handled += 1;
            if handled >= max_events {
                break;
            }
            next = self.core.try_recv();
        }
        Ok(handled)
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (exc_type=None, exc=None, tb=None))]
    fn __exit__(
        &self,
        py: Python<'_>,
        exc_type: Option<Bound<'_, PyAny>>,
        exc: Option<Bound<'_, PyAny>>,
        tb: Option<Bound<'_, PyAny>>,
    ) -> PyResult<()> {
        let _ = (exc_type, exc, tb);
        self.close(py, 5.0)
    }

    fn __repr__(&self) -> String {
        format!("<Socket {} state={}>", self.url, self.state())
    }
}

impl Socket {
    fn first_event(&self, py: Python<'_>, timeout: Duration) -> PyResult<Option<Event>> {
        if timeout.is_zero() {
            return Ok(self.core.try_recv());
        }
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let slice = left.min(wait::SLICE);
            let core = &self.core;
            if let Some(event) = py.detach(|| core.recv_timeout(slice)) {
                return Ok(Some(event));
            }
            py.check_signals()?;
            if Instant::now() >= deadline || self.router.watch.lock().closed {
                return Ok(None);
            }
        }
    }
}

fn closed() -> PyErr {
    errors::py_err(nerves_hub_channel::Error::Closed(
        "the socket is closed".into(),
    ))
}

pub fn callable(value: Option<Bound<'_, PyAny>>, name: &str) -> PyResult<Option<Py<PyAny>>> {
    match value {
        None => Ok(None),
        Some(v) if v.is_none() => Ok(None),
        Some(v) if v.is_callable() => Ok(Some(v.unbind())),
        Some(v) => Err(invalid(format!(
            "{name} must be callable, got {}",
            v.get_type().name()?
        ))),
    }
}
