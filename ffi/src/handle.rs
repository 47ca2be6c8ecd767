//! The lifecycle of every C handle kind, written once: creation with its
//! delivery mode, the list of live handles for `nhc_shutdown`, connect,
//! disconnect, state, the pollable descriptor, `_dispatch` and the
//! deferred free.
//!
//! A handle kind is its opaque C struct (`nhc_socket`, `nhc_device`)
//! implementing [`Kind`]: which core handle it wraps, which router turns its
//! events into C calls, and the names its errors use. The `extern "C"`
//! functions of the kind stay in its own file (their names and docs are the
//! header) and call the generic functions here. A third kind adds a struct,
//! a `Kind` impl, a router and its event conversion, and nothing here.

use std::ffi::c_int;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use nerves_hub_channel::{ConnectionState, Error, Handle, Handler};

use crate::boundary::forked;
use crate::error::{invalid, Failure, FfiResult};
use crate::options::nhc_delivery;
use crate::types::nhc_state;

/// Turns one handle's ordered events into calls of its C closures (see
/// `router.rs`): one consumer at a time, closures called without a lock,
/// `close` waiting for a callback running on another thread.
pub(crate) trait Route<E>: Send + Sync + 'static {
    /// The closures taken out by `close`, dropped by the caller afterwards.
    type Removed;
    fn route(&self, event: E);
    /// The handle's last event has been routed.
    fn ended(&self) -> bool;
    /// The handle was freed: nothing is called any more.
    fn is_closed(&self) -> bool;
    fn close(&self) -> Self::Removed;
}

/// An opaque C handle struct and what it wraps.
pub(crate) trait Kind: Sized + Send + Sync + 'static {
    type Handle: Handle;
    type Router: Route<<Self::Handle as Handle>::Event>;
    /// What else the kind keeps per handle.
    type Extra: Send + Sync + 'static;
    /// The name of the handle argument in the C functions ("sock").
    const ARG: &'static str;
    /// What the handle is called in messages ("socket").
    const NOUN: &'static str;
    /// The prefix of the kind's C functions ("nhc_socket").
    const PREFIX: &'static str;

    fn core(&self) -> &Arc<HandleCore<Self>>;
    fn wrap(core: Arc<HandleCore<Self>>) -> Self;
    /// Runs at free, before the handle is closed.
    fn before_close(_handle: &Self::Handle) {}
}

pub(crate) struct HandleCore<K: Kind> {
    pub handle: K::Handle,
    pub router: Arc<K::Router>,
    pub extra: K::Extra,
    polled: bool,
    dispatching: AtomicBool,
}

/// What `nhc_shutdown` needs of a live handle, whatever its kind.
trait Live: Send + Sync {
    fn close(&self);
    fn is_closed(&self) -> bool;
}

impl<K: Kind> Live for HandleCore<K> {
    fn close(&self) {
        self.handle.close();
    }
    fn is_closed(&self) -> bool {
        self.handle.state() == ConnectionState::Closed
    }
}

/// Every handle made through the C API, for `nhc_shutdown`.
/// cbindgen:ignore
static LIVE: Mutex<Vec<Weak<dyn Live>>> = Mutex::new(Vec::new());

fn live() -> std::sync::MutexGuard<'static, Vec<Weak<dyn Live>>> {
    LIVE.lock().unwrap_or_else(|p| p.into_inner())
}

/// Closes every live handle and waits (up to `limit`) until each connection
/// task has finished closing, so that its CLOSED event is queued before the
/// runtime stops. Without the wait, stopping the runtime could cancel a task
/// before it handled the close, and a polled handle would then never see
/// the end of its stream. (This belongs in the core's `runtime::shutdown`;
/// it is here until the core does it.)
pub(crate) fn close_all(limit: Duration) {
    let handles: Vec<Arc<dyn Live>> = live().drain(..).filter_map(|w| w.upgrade()).collect();
    for h in &handles {
        h.close();
    }
    let deadline = std::time::Instant::now() + limit;
    for h in &handles {
        while !h.is_closed() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

/// Events handed to callbacks per `_dispatch` at most, so that a busy
/// handle cannot starve the rest of a main loop.
/// cbindgen:ignore
const DISPATCH_BATCH: usize = 64;

/// How long a free waits for the connection task to end.
const FREE_WAITS_FOR_TASK: Duration = Duration::from_secs(3);

/// Wraps a new core handle: threaded or inline delivery starts here, and
/// the handle joins the live list. Returns what `_new` writes to `*out`;
/// fails if the kind refuses the delivery (inline for a device).
pub(crate) fn create<K: Kind>(
    handle: K::Handle,
    router: Arc<K::Router>,
    extra: K::Extra,
    delivery: nhc_delivery,
) -> FfiResult<*mut K> {
    let r = router.clone();
    let route: Handler<<K::Handle as Handle>::Event> = Box::new(move |event| r.route(event));
    match delivery {
        nhc_delivery::NHC_DELIVERY_THREADED => handle.set_handler(Some(route)),
        nhc_delivery::NHC_DELIVERY_INLINE => handle.set_inline_handler(route)?,
        nhc_delivery::NHC_DELIVERY_POLLED => drop(route),
    }
    let polled = delivery == nhc_delivery::NHC_DELIVERY_POLLED;
    let core = Arc::new(HandleCore::<K> {
        handle,
        router,
        extra,
        polled,
        dispatching: AtomicBool::new(false),
    });
    {
        let mut live = live();
        live.retain(|w| w.strong_count() > 0);
        let weak: Weak<HandleCore<K>> = Arc::downgrade(&core);
        live.push(weak);
    }
    Ok(Box::into_raw(Box::new(K::wrap(core))))
}

/// The handle behind `ptr`; a freed one is refused.
///
/// # Safety
/// `ptr` is NULL or a live handle of kind `K`.
pub(crate) unsafe fn get<'a, K: Kind>(ptr: *const K) -> FfiResult<&'a HandleCore<K>> {
    // SAFETY: `ptr` is NULL or a live handle (the caller's contract).
    let core = unsafe { ptr.as_ref() }
        .map(|h| &**h.core())
        .ok_or_else(|| invalid(format!("{} is NULL", K::ARG)))?;
    if core.router.is_closed() {
        return Err(Error::Closed(format!("the {} was freed", K::NOUN)).into());
    }
    Ok(core)
}

/// # Safety
/// `ptr` is NULL or a live handle of kind `K`.
pub(crate) unsafe fn connect<K: Kind>(ptr: *const K) -> FfiResult {
    // SAFETY: the caller's contract.
    Ok(unsafe { get(ptr) }?.handle.connect()?)
}

/// # Safety
/// `ptr` is NULL or a live handle of kind `K`.
pub(crate) unsafe fn disconnect<K: Kind>(ptr: *const K) -> FfiResult {
    // SAFETY: the caller's contract.
    Ok(unsafe { get(ptr) }?.handle.disconnect()?)
}

/// # Safety
/// `ptr` is NULL or a live handle of kind `K`; `out` is NULL or writable.
pub(crate) unsafe fn state<K: Kind>(ptr: *const K, out: *mut nhc_state) -> FfiResult {
    // SAFETY: `ptr` is NULL or a live handle (the caller's contract).
    let core = unsafe { get(ptr) }?;
    if out.is_null() {
        return Err(invalid("out is NULL"));
    }
    // SAFETY: `out` is valid for writes (the caller's contract; NULL was refused above).
    unsafe {
        *out = match core.handle.state() {
            ConnectionState::Disconnected => nhc_state::NHC_STATE_DISCONNECTED,
            ConnectionState::Connecting => nhc_state::NHC_STATE_CONNECTING,
            ConnectionState::Connected => nhc_state::NHC_STATE_CONNECTED,
            ConnectionState::Closed => nhc_state::NHC_STATE_CLOSED,
        }
    };
    Ok(())
}

fn not_polled<K: Kind>(function: &str) -> Failure {
    Failure::InvalidState(format!(
        "{}_{function} needs a {} with NHC_DELIVERY_POLLED",
        K::PREFIX,
        K::NOUN
    ))
}

/// # Safety
/// `ptr` is NULL or a live handle of kind `K`; `fd` is NULL or writable.
pub(crate) unsafe fn fd<K: Kind>(ptr: *const K, fd: *mut c_int) -> FfiResult {
    // SAFETY: `ptr` is NULL or a live handle (the caller's contract).
    let core = unsafe { get(ptr) }?;
    if fd.is_null() {
        return Err(invalid("fd is NULL"));
    }
    if !core.polled {
        return Err(not_polled::<K>("fd"));
    }
    // SAFETY: `fd` is valid for writes (the caller's contract; NULL was refused above).
    unsafe { *fd = core.handle.event_fd()? };
    Ok(())
}

/// # Safety
/// `ptr` is NULL or a live handle of kind `K`.
pub(crate) unsafe fn dispatch<K: Kind>(ptr: *const K, timeout_ms: i32) -> FfiResult {
    // Our own reference: a callback may free the handle while we run.
    // SAFETY: `ptr` is NULL or a live handle (the caller's contract).
    let core = unsafe { ptr.as_ref() }
        .ok_or_else(|| invalid(format!("{} is NULL", K::ARG)))?
        .core()
        .clone();
    if !core.polled {
        return Err(not_polled::<K>("dispatch"));
    }
    if core.dispatching.swap(true, Ordering::AcqRel) {
        return Err(Failure::InvalidState(format!(
            "{}_dispatch is already running for this {}",
            K::PREFIX,
            K::NOUN
        )));
    }
    let _running = ResetOnDrop(&core.dispatching);
    run_dispatch(&core, timeout_ms)
}

struct ResetOnDrop<'a>(&'a AtomicBool);

impl Drop for ResetOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

fn run_dispatch<K: Kind>(core: &HandleCore<K>, timeout_ms: i32) -> FfiResult {
    let done = || core.router.ended() || core.router.is_closed();
    if done() {
        return Err(Failure::Core(Error::Closed(format!(
            "the {} is closed and its last event was handled",
            K::NOUN
        ))));
    }
    let first = if timeout_ms < 0 {
        loop {
            if let Some(e) = core.handle.recv_timeout(Duration::from_secs(3600)) {
                break Some(e);
            }
            if done() {
                break None;
            }
        }
    } else {
        core.handle
            .recv_timeout(Duration::from_millis(timeout_ms as u64))
    };
    let Some(first) = first else {
        if done() {
            return Err(Failure::Core(Error::Closed(format!(
                "the {} is closed",
                K::NOUN
            ))));
        }
        return Err(Failure::Core(Error::Timeout(format!(
            "no event within {timeout_ms} ms"
        ))));
    };
    core.router.route(first);
    for _ in 1..DISPATCH_BATCH {
        if core.router.is_closed() {
            break;
        }
        match core.handle.try_recv() {
            Some(event) => core.router.route(event),
            None => break,
        }
    }
    Ok(())
}

/// Closes the handle and releases it; see `nhc_socket_free` for what the
/// caller is promised. In a forked child it releases nothing.
///
/// # Safety
/// `ptr` is NULL or a live handle of kind `K`, not used again afterwards.
pub(crate) unsafe fn free<K: Kind>(ptr: *mut K) {
    if ptr.is_null() {
        return;
    }
    // SAFETY: `ptr` is not NULL (checked above) and came from `create`, freed once (the
    // caller's contract).
    let boxed = unsafe { Box::from_raw(ptr) };
    if forked() {
        std::mem::forget(boxed);
        return;
    }
    let core = boxed.core();
    let removed = core.router.close();
    core.handle.set_handler(None);
    K::before_close(&core.handle);
    core.handle.close();
    // The connection task holds the TLS key, whose release may be the
    // application's `drop` or a PKCS#11 call: neither may happen after
    // free returns (the promise above; and a process exiting right after
    // would race the module's own exit handlers). Bounded, since the task
    // gives a stuck peer at most a second to take the close frame.
    core.handle.wait_closed(FREE_WAITS_FOR_TASK);
    drop(removed);
    drop(boxed);
}
