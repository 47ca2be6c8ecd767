//! `_Handle`: the Python base class of `Socket` and `Device`. It holds the
//! methods every handle kind has (connect, disconnect, close, state,
//! delivery, wait_connected, fileno, dispatch, the context manager and
//! repr) once, so the kinds' own classes hold only their own calls.
//!
//! pyo3 classes cannot be generic: the base reaches its handle through the
//! [`Lifecycle`] trait, which every `PyHandle` provides (handle.rs). A
//! kind's class `extends` this one and its `#[new]` returns both halves
//! over one shared `PyHandle`: `(Kind { handle: h.clone() }, HandleBase::new(h))`.

use std::sync::Arc;

use pyo3::prelude::*;

/// What the base class needs of a handle, whatever its kind.
pub trait Lifecycle: Send + Sync {
    fn connect(&self) -> PyResult<()>;
    fn disconnect(&self) -> PyResult<()>;
    fn close(&self, py: Python<'_>, timeout: f64) -> PyResult<()>;
    fn state(&self) -> &'static str;
    fn delivery(&self) -> &'static str;
    fn wait_connected(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<()>;
    fn fileno(&self) -> PyResult<i32>;
    fn dispatch(&self, py: Python<'_>, timeout: f64, max_events: usize) -> PyResult<usize>;
    /// `<{class} {url} state={state}>`.
    fn repr(&self, class: &str) -> String;
}

/// What :class:`Socket` and :class:`Device` share: the connection's
/// lifecycle, delivery and the context manager. Not made directly.
#[pyclass(
    frozen,
    subclass,
    name = "_Handle",
    module = "nerves_hub_channel._native"
)]
pub struct HandleBase {
    handle: Arc<dyn Lifecycle>,
}

impl HandleBase {
    pub fn new(handle: Arc<dyn Lifecycle>) -> Self {
        HandleBase { handle }
    }
}

#[pymethods]
impl HandleBase {
    /// Starts connecting in the background (a :class:`Device` also joins
    /// ``device``, and ``console`` with ``console=True``); it then
    /// reconnects (and rejoins) after failures until :meth:`disconnect` or
    /// :meth:`close`. Returns at once: see :meth:`wait_connected`,
    /// :meth:`Device.wait_joined` and ``on_state``.
    fn connect(&self) -> PyResult<()> {
        self.handle.connect()
    }

    /// Closes the connection; :meth:`connect` resumes (a socket's channels
    /// stay and rejoin then).
    fn disconnect(&self) -> PyResult<()> {
        self.handle.disconnect()
    }

    /// Closes the socket or device for good: pending joins and pushes fail
    /// with :class:`ClosedError`, ``on_state`` gets ``"closed"`` and every
    /// callback and handler is released. A threaded one waits (at most
    /// ``timeout`` seconds, and not when called from a callback) until that
    /// is done: none of its callbacks runs after ``close`` returns. Calling
    /// it again does nothing.
    #[pyo3(signature = (timeout=5.0))]
    fn close(&self, py: Python<'_>, timeout: f64) -> PyResult<()> {
        self.handle.close(py, timeout)
    }

    /// The connection state: ``"disconnected"``, ``"connecting"``,
    /// ``"connected"`` or ``"closed"``.
    #[getter]
    fn state(&self) -> &'static str {
        self.handle.state()
    }

    /// ``"threaded"``, ``"polled"`` or ``"inline"``: where callbacks run.
    #[getter]
    fn delivery(&self) -> &'static str {
        self.handle.delivery()
    }

    /// Blocks until connected. Raises the error of a connection attempt
    /// that failed since :meth:`connect` was called (:class:`TlsError`,
    /// :class:`AuthError`, :class:`ConnectError`...), :class:`ConnectError`
    /// if ``timeout`` seconds pass first, or :class:`ClosedError`. The
    /// connection keeps retrying in the background either way. Threaded
    /// delivery only, and not from a callback.
    #[pyo3(signature = (timeout=None))]
    fn wait_connected(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<()> {
        self.handle.wait_connected(py, timeout)
    }

    /// Polled delivery: a file descriptor that is readable while events are
    /// pending, for ``select``/``poll`` loops and ``loop.add_reader``. Owned
    /// by the socket or device; do not close it.
    fn fileno(&self) -> PyResult<i32> {
        self.handle.fileno()
    }

    /// Polled delivery: runs the callbacks (a device's handlers) of pending
    /// events on this thread, at most ``max_events`` of them, waiting up to
    /// ``timeout`` seconds for the first one. Returns how many events were
    /// handled.
    #[pyo3(signature = (timeout=0.0, max_events=64))]
    fn dispatch(&self, py: Python<'_>, timeout: f64, max_events: usize) -> PyResult<usize> {
        self.handle.dispatch(py, timeout, max_events)
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

    fn __repr__(slf: &Bound<'_, Self>) -> PyResult<String> {
        let class = slf.get_type().name()?;
        Ok(slf.get().handle.repr(&class.to_string()))
    }
}
