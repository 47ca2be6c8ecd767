//! What `Socket` and `Device` share, written once: delivery mode, the
//! registry entry, connect/disconnect/close, the blocking `wait_connected`,
//! and polled delivery (`fileno`, `dispatch`).
//!
//! pyo3 classes cannot be generic, so each Python class holds an `Arc` of
//! a [`PyHandle`] over its core handle and router (and derefs to it) and
//! extends `_Handle` (lifecycle.rs), whose methods reach the same
//! `PyHandle` as a [`Lifecycle`]. A third handle kind adds its class, a
//! router implementing [`PyRoute`], and its event conversion.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nerves_hub_channel::config::redact_query;
use nerves_hub_channel::{runtime, ConnectionState, EventSource, Handle, Puller, Socket};
use pyo3::prelude::*;

use crate::delivery::{self, Item};
use crate::duration;
use crate::errors::{invalid, new_err, py_err};
use crate::inline;
use crate::lifecycle::{HandleBase, Lifecycle};
use crate::registry;
use crate::state::state_name;
use crate::wait;
use crate::watch::Watch;

/// The Python side of a handle kind's events.
pub trait PyRoute: Send + Sync + Sized + 'static {
    type Event: Send + 'static;
    /// What the handle is called in messages ("socket").
    const NOUN: &'static str;
    /// Where a polled handle reports its connection ("on_state").
    const REPORTS_THROUGH: &'static str;
    /// Runs as the event is queued (on the thread that queued it), without
    /// the GIL: records what waits need. Quick, never blocks.
    fn observe(&self, event: &Self::Event);
    /// Delivers one event. Never raises: failures go to logging.
    fn route(&self, py: Python<'_>, event: Self::Event);
    /// The handle's queue on its way to the delivery thread.
    fn item(router: &Arc<Self>, source: EventSource<Self::Event>) -> Item;
    /// The connection as blocking waits see it.
    fn watch(&self) -> &Watch;
}

/// Where a handle's callbacks run (`delivery=`).
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// On `nhc-py-delivery` (delivery.rs).
    Threaded,
    /// Inside `dispatch`, on the caller's thread.
    Polled,
    /// On the socket's I/O thread (inline.rs).
    Inline,
}

impl Delivery {
    /// The mode a handle of kind `H` is asked for, refused before the
    /// handle is built when the kind does not take it (inline for devices:
    /// the core's `Handle::refuses_inline` says why).
    pub fn parse_for<H: Handle>(delivery: &str) -> PyResult<Delivery> {
        let parsed = match delivery {
            "threaded" => Delivery::Threaded,
            "polled" => Delivery::Polled,
            "inline" => Delivery::Inline,
            other => {
                return Err(invalid(format!(
                    "delivery must be \"threaded\", \"polled\" or \"inline\", got {other:?}"
                )))
            }
        };
        match H::refuses_inline() {
            Some(why) if parsed == Delivery::Inline => Err(py_err(why)),
            _ => Ok(parsed),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Delivery::Threaded => "threaded",
            Delivery::Polled => "polled",
            Delivery::Inline => "inline",
        }
    }
}

/// `value` if it is a callable (None: no callback).
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

/// A threaded or inline handle's side of the core queue: see delivery.rs
/// and inline.rs.
struct Pull<R> {
    router: Arc<R>,
    inline: bool,
}

impl<R: PyRoute> Puller<R::Event> for Pull<R> {
    fn observe(&self, event: &R::Event) {
        self.router.observe(event);
    }
    fn ready(&self, source: EventSource<R::Event>) {
        let item = R::item(&self.router, source);
        if self.inline {
            inline::deliver(item);
        } else {
            delivery::schedule(item);
        }
    }
}

pub struct PyHandle<H: Handle, R: PyRoute<Event = H::Event>> {
    pub core: H,
    pub router: Arc<R>,
    pub delivery: Delivery,
    dispatching: AtomicBool,
    pub url: String,
    registered: u64,
}

impl<H: Handle, R: PyRoute<Event = H::Event>> Drop for PyHandle<H, R> {
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

impl<H: Handle, R: PyRoute<Event = H::Event>> PyHandle<H, R> {
    /// Wraps a new core handle: threaded delivery starts here, and its
    /// `socket` joins the registry (closed at `shutdown()` and exit).
    /// Returns it with the `_Handle` base its Python class extends.
    pub fn new(
        core: H,
        socket: &Socket,
        router: Arc<R>,
        delivery: Delivery,
        url: &str,
    ) -> PyResult<(Arc<Self>, PyClassInitializer<HandleBase>)> {
        if delivery == Delivery::Threaded {
            delivery::start()?;
        }
        if delivery != Delivery::Polled {
            let inline = delivery == Delivery::Inline;
            core.set_pull(Arc::new(Pull {
                router: router.clone(),
                inline,
            }))
            .map_err(py_err)?;
        }
        let registered = registry::register(socket);
        let handle = Arc::new(PyHandle {
            core,
            router,
            delivery,
            dispatching: AtomicBool::new(false),
            url: redact_query(url),
            registered,
        });
        Ok((handle.clone(), HandleBase::new(handle).into()))
    }

    /// Refuses a blocking wait where it could never end: on a polled
    /// handle, or inside a callback (the delivery thread would wait for itself).
    pub fn blocking_allowed(&self, what: &str) -> PyResult<()> {
        if self.polled() {
            return Err(invalid(format!(
                "{what} needs delivery=\"threaded\" or \"inline\"; a polled {} reports through {}",
                R::NOUN,
                R::REPORTS_THROUGH
            )));
        }
        if delivery::on_delivery_thread() || runtime::on_io_thread() {
            return Err(new_err(
                "Error",
                format!("{what} cannot be called from a callback: it would wait for itself"),
            ));
        }
        Ok(())
    }

    pub fn polled(&self) -> bool {
        self.delivery == Delivery::Polled
    }

    pub fn closed_err(&self) -> PyErr {
        py_err(nerves_hub_channel::Error::Closed(format!(
            "the {} is closed",
            R::NOUN
        )))
    }

    fn first_event(&self, py: Python<'_>, timeout: Duration) -> PyResult<Option<H::Event>> {
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
            if Instant::now() >= deadline || self.router.watch().lock().closed {
                return Ok(None);
            }
        }
    }
}

impl<H: Handle, R: PyRoute<Event = H::Event>> Lifecycle for PyHandle<H, R> {
    fn connect(&self) -> PyResult<()> {
        self.router.watch().connect_called();
        self.core.connect().map_err(py_err)
    }

    fn disconnect(&self) -> PyResult<()> {
        self.core.disconnect().map_err(py_err)
    }

    /// Closes for good and waits (at most `timeout`) until the connection
    /// task has released the TLS key (a PKCS#11 session, a signing
    /// callable); a threaded handle then waits (not from a callback) until
    /// no callback of it runs any more.
    fn close(&self, py: Python<'_>, timeout: f64) -> PyResult<()> {
        let timeout = duration::seconds(timeout, "timeout")?;
        self.core.close();
        // Without the GIL: dropping a signing callable needs it.
        py.detach(|| self.core.wait_closed(timeout));
        if self.polled() || delivery::on_delivery_thread() || runtime::on_io_thread() {
            return Ok(());
        }
        let watch = self.router.watch();
        wait::until(
            py,
            &watch.seen,
            &watch.changed,
            wait::deadline(Some(timeout)),
            |s| s.finished,
        )?;
        Ok(())
    }

    fn state(&self) -> &'static str {
        state_name(self.core.state())
    }

    fn delivery(&self) -> &'static str {
        self.delivery.name()
    }

    /// Blocks until connected; raises the error of an attempt that failed
    /// since `connect`, `ConnectError` after `timeout`, or `ClosedError`.
    fn wait_connected(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<()> {
        self.blocking_allowed("wait_connected")?;
        let timeout = timeout
            .map(|t| duration::seconds(t, "timeout"))
            .transpose()?;
        if self.core.state() == ConnectionState::Connected {
            return Ok(());
        }
        let watch = self.router.watch();
        let start = {
            let mut s = watch.lock();
            if s.closed {
                return Err(self.closed_err());
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
            return Err(self.closed_err());
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

    fn fileno(&self) -> PyResult<i32> {
        if !self.polled() {
            return Err(invalid("fileno needs delivery=\"polled\""));
        }
        self.core.event_fd().map_err(py_err)
    }

    /// Polled: runs the callbacks of pending events on this thread, at most
    /// `max_events`, waiting up to `timeout` seconds for the first.
    fn dispatch(&self, py: Python<'_>, timeout: f64, max_events: usize) -> PyResult<usize> {
        if !self.polled() {
            return Err(invalid(format!(
                "dispatch needs delivery=\"polled\"; {} {}s deliver on their own",
                self.delivery.name(),
                R::NOUN
            )));
        }
        if !timeout.is_finite() || timeout < 0.0 {
            return Err(invalid(format!(
                "timeout must be a number of seconds >= 0, got {timeout}"
            )));
        }
        if self.dispatching.swap(true, Ordering::AcqRel) {
            return Err(new_err(
                "Error",
                format!(
                    "dispatch is already running for this {} (called from one of its callbacks?)",
                    R::NOUN
                ),
            ));
        }
        let _running = Dispatching(&self.dispatching);
        let mut handled = 0;
        let mut next = self.first_event(py, Duration::from_secs_f64(timeout))?;
        while let Some(event) = next {
            self.router.observe(&event);
            self.router.route(py, event);
            handled += 1;
            if handled >= max_events {
                break;
            }
            next = self.core.try_recv();
        }
        Ok(handled)
    }

    fn repr(&self, class: &str) -> String {
        format!("<{class} {} state={}>", self.url, self.state())
    }
}
