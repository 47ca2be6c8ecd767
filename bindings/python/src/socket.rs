//! `Socket`: one websocket connection (re-made as needed) carrying channels.

use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;

use nerves_hub_channel::{Event, EventSource, Socket as CoreSocket};
use pyo3::prelude::*;

use crate::channel::Channel;
use crate::delivery::Item;
use crate::errors::py_err;
use crate::handle::{callable, Delivery, PyHandle, PyRoute};
use crate::lifecycle::HandleBase;
use crate::options::Options;
use crate::params;
use crate::router::Router;
use crate::watch::Watch;

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
/// built on this); with ``delivery="inline"`` they run on the socket's I/O
/// thread as each message is read (one thread wake-up per message instead
/// of two), and must not block: see the guide.
///
/// Every method may be called from any thread, including from callbacks.
/// Use the socket as a context manager, or call :meth:`close`.
#[pyclass(frozen, extends = HandleBase, module = "nerves_hub_channel._native")]
pub struct Socket {
    handle: Arc<PyHandle<CoreSocket, Router>>,
    default_timeout: Duration,
}

impl Deref for Socket {
    type Target = PyHandle<CoreSocket, Router>;
    fn deref(&self) -> &Self::Target {
        &self.handle
    }
}

impl PyRoute for Router {
    type Event = Event;
    const REPORTS_THROUGH: &'static str = "on_state";
    const NOUN: &'static str = "socket";
    fn observe(&self, event: &Event) {
        self.watch.update(event);
    }
    fn route(&self, py: Python<'_>, event: Event) {
        Router::route(self, py, event)
    }
    fn item(router: &Arc<Self>, source: EventSource<Event>) -> Item {
        Item::Socket(source, router.clone())
    }
    fn watch(&self) -> &Watch {
        &self.watch
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
        max_message_size=8388608, read_buffer_size=4096, on_state=None, delivery="threaded",
        serializer="json", proxy=None, no_proxy=None, proxy_from_env=true
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
        serializer: &str,
        proxy: Option<String>,
        no_proxy: Option<String>,
        proxy_from_env: bool,
    ) -> PyResult<PyClassInitializer<Socket>> {
        let delivery = Delivery::parse_for::<CoreSocket>(delivery)?;
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
            serializer: serializer.to_owned(),
            proxy,
            no_proxy,
            proxy_from_env,
        }
        .into_config()?;
        let default_timeout = config.default_timeout;
        let core = CoreSocket::new(config).map_err(py_err)?;
        let router = Router::new(on_state);
        let socket = core.clone();
        let (handle, base) = PyHandle::new(core, &socket, router, delivery, &url)?;
        Ok(base.add_subclass(Socket {
            handle,
            default_timeout,
        }))
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
}
