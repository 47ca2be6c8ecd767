//! `nhc_socket_*`: creating, connecting, dispatching and freeing a socket.

use std::ffi::c_int;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use nerves_hub_channel::{ConnectionState, Error, Socket};

use crate::boundary::{boundary, boundary_or, forked};
use crate::closure::{nhc_state_closure, Owned};
use crate::error::{invalid, Failure, FfiResult};
use crate::nhc_result;
use crate::options::{self, nhc_delivery, nhc_socket_options};
use crate::router::Router;
use crate::types::nhc_state;

/// A Phoenix socket: one websocket connection, re-made as needed, carrying
/// channels. Created by `nhc_socket_new`, released by `nhc_socket_free`.
/// Every function taking it may be called from any thread, including from
/// the socket's own callbacks.
#[allow(non_camel_case_types)]
pub struct nhc_socket {
    pub(crate) core: Arc<SocketCore>,
}

pub(crate) struct SocketCore {
    pub socket: Socket,
    pub router: Arc<Router>,
    pub default_timeout: Duration,
    polled: bool,
    dispatching: AtomicBool,
}

/// Every socket made through the C API, for `nhc_shutdown`.
/// cbindgen:ignore
static LIVE: Mutex<Vec<Weak<SocketCore>>> = Mutex::new(Vec::new());

fn live() -> std::sync::MutexGuard<'static, Vec<Weak<SocketCore>>> {
    LIVE.lock().unwrap_or_else(|p| p.into_inner())
}

/// Closes every live socket and waits (up to `limit`) until each connection
/// task has finished closing, so that its CLOSED event is queued before the
/// runtime stops. Without the wait, stopping the runtime could cancel a task
/// before it handled the close, and a polled socket would then never see
/// the end of its stream. (This belongs in the core's `runtime::shutdown`;
/// it is here until the core does it.)
pub(crate) fn close_all(limit: Duration) {
    let sockets: Vec<Arc<SocketCore>> = live().drain(..).filter_map(|w| w.upgrade()).collect();
    for s in &sockets {
        s.socket.close();
    }
    let deadline = std::time::Instant::now() + limit;
    for s in &sockets {
        while s.socket.state() != ConnectionState::Closed && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

/// Events handed to callbacks per `nhc_socket_dispatch` at most, so that a
/// busy socket cannot starve the rest of a main loop.
/// cbindgen:ignore
const DISPATCH_BATCH: usize = 64;

/// # Safety
/// `sock` is NULL or a live socket from `nhc_socket_new`.
pub(crate) unsafe fn socket_ref<'a>(sock: *const nhc_socket) -> FfiResult<&'a SocketCore> {
    // SAFETY: `sock` is NULL or a live socket (the caller's contract).
    unsafe { sock.as_ref() }
        .map(|s| &*s.core)
        .ok_or_else(|| invalid("sock is NULL"))
}

/// Creates a socket from `opts` (copied; see `nhc_socket_options`). Nothing
/// is sent until `nhc_socket_connect`. `opts->on_state` is moved into the
/// socket, also on failure (then dropped before this returns).
///
/// On success `*out` receives the socket; free it with `nhc_socket_free`.
///
/// Errors: `NHC_ERR_INVALID_ARGUMENT` (NULL `opts` or `out`, options not
/// from `nhc_socket_options_default`, a bad URL, header, option value or
/// non-UTF-8 string), `NHC_ERR_TLS` (unreadable or invalid certificate,
/// key or CA), `NHC_ERR_CONNECT` (the I/O runtime could not start),
/// `NHC_ERR_FORKED`, `NHC_ERR_PANIC`.
///
/// # Safety
/// `opts` is NULL or an initialised options struct whose pointers are valid.
#[no_mangle]
pub unsafe extern "C" fn nhc_socket_new(
    opts: *const nhc_socket_options,
    out: *mut *mut nhc_socket,
) -> nhc_result {
    boundary(|| {
        if opts.is_null() {
            return Err(invalid("opts is NULL"));
        }
        // SAFETY: `opts` is NULL or initialised with valid pointers (this function's contract).
        let mut o = unsafe { options::read(opts) }?;
        let on_state = Owned::new(std::mem::replace(
            &mut o.on_state,
            nhc_state_closure::none(),
        ));
        if out.is_null() {
            return Err(invalid("out is NULL"));
        }
        // SAFETY: the pointers in `o` are NULL or valid (this function's contract).
        let (config, delivery) = unsafe { options::to_config(&o) }?;
        let default_timeout = config.default_timeout;
        let socket = Socket::new(config)?;
        let router = Router::new(Some(on_state));
        let polled = delivery == nhc_delivery::NHC_DELIVERY_POLLED;
        if !polled {
            let r = router.clone();
            socket.set_handler(Some(Box::new(move |event| r.route(event))));
        }
        let core = Arc::new(SocketCore {
            socket,
            router,
            default_timeout,
            polled,
            dispatching: AtomicBool::new(false),
        });
        {
            let mut live = live();
            live.retain(|w| w.strong_count() > 0);
            live.push(Arc::downgrade(&core));
        }
        // SAFETY: `out` is valid for writes (the caller's contract; NULL was refused above).
        unsafe { *out = Box::into_raw(Box::new(nhc_socket { core })) };
        Ok(())
    })
}

/// Starts connecting in the background; the state callback reports
/// progress. After a failure or a lost connection the socket reconnects by
/// itself (unless `reconnect` is false) until `nhc_socket_disconnect`.
/// Calling it while connected or connecting does nothing.
///
/// Errors: `NHC_ERR_INVALID_ARGUMENT` (NULL), `NHC_ERR_CLOSED` (the socket
/// was shut down), `NHC_ERR_FORKED`, `NHC_ERR_PANIC`.
///
/// # Safety
/// `sock` is NULL or a live socket.
#[no_mangle]
pub unsafe extern "C" fn nhc_socket_connect(sock: *mut nhc_socket) -> nhc_result {
    // SAFETY: `sock` is NULL or a live socket (the caller's contract).
    boundary(|| Ok(unsafe { socket_ref(sock) }?.socket.connect()?))
}

/// Closes the connection and stops reconnecting. Channels stay: they rejoin
/// after the next `nhc_socket_connect`. Pending pushes wait in the buffer
/// until their timeout.
///
/// Errors: as `nhc_socket_connect`.
///
/// # Safety
/// `sock` is NULL or a live socket.
#[no_mangle]
pub unsafe extern "C" fn nhc_socket_disconnect(sock: *mut nhc_socket) -> nhc_result {
    // SAFETY: `sock` is NULL or a live socket (the caller's contract).
    boundary(|| Ok(unsafe { socket_ref(sock) }?.socket.disconnect()?))
}

/// Writes the current connection state to `*out`: DISCONNECTED,
/// CONNECTING, CONNECTED or CLOSED (never an event-only value).
///
/// Errors: `NHC_ERR_INVALID_ARGUMENT` (NULL), `NHC_ERR_FORKED`, `NHC_ERR_PANIC`.
///
/// # Safety
/// `sock` is NULL or a live socket; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn nhc_socket_state(
    sock: *const nhc_socket,
    out: *mut nhc_state,
) -> nhc_result {
    boundary(|| {
        // SAFETY: `sock` is NULL or a live socket (the caller's contract).
        let core = unsafe { socket_ref(sock) }?;
        if out.is_null() {
            return Err(invalid("out is NULL"));
        }
        // SAFETY: `out` is valid for writes (the caller's contract; NULL was refused above).
        unsafe {
            *out = match core.socket.state() {
                ConnectionState::Disconnected => nhc_state::NHC_STATE_DISCONNECTED,
                ConnectionState::Connecting => nhc_state::NHC_STATE_CONNECTING,
                ConnectionState::Connected => nhc_state::NHC_STATE_CONNECTED,
                ConnectionState::Closed => nhc_state::NHC_STATE_CLOSED,
            }
        };
        Ok(())
    })
}

/// Polled sockets: writes to `*fd` a file descriptor that is readable while
/// events are waiting for `nhc_socket_dispatch`, for poll/select/epoll.
/// Level-triggered; owned by the socket (do not read, write or close it);
/// valid until `nhc_socket_free`.
///
/// Errors: `NHC_ERR_INVALID_ARGUMENT` (NULL), `NHC_ERR_INVALID_STATE` (a
/// threaded socket), `NHC_ERR_CONNECT` (no descriptor could be created),
/// `NHC_ERR_FORKED`, `NHC_ERR_PANIC`.
///
/// # Safety
/// `sock` is NULL or a live socket; `fd` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn nhc_socket_fd(sock: *const nhc_socket, fd: *mut c_int) -> nhc_result {
    boundary(|| {
        // SAFETY: `sock` is NULL or a live socket (the caller's contract).
        let core = unsafe { socket_ref(sock) }?;
        if fd.is_null() {
            return Err(invalid("fd is NULL"));
        }
        if !core.polled {
            return Err(Failure::InvalidState(
                "nhc_socket_fd needs a socket with NHC_DELIVERY_POLLED".into(),
            ));
        }
        // SAFETY: `fd` is valid for writes (the caller's contract; NULL was refused above).
        unsafe { *fd = core.socket.event_fd()? };
        Ok(())
    })
}

/// Polled sockets: runs the callbacks of the waiting events, in order, on
/// the calling thread. Waits up to `timeout_ms` for the first event (0: do
/// not wait; negative: wait without limit), then handles what is waiting,
/// at most 64 events, and returns. Callbacks may call any `nhc_` function,
/// including `nhc_socket_free` on this socket (the free completes when the
/// callback returns, and this function then returns `NHC_OK`).
///
/// Returns `NHC_OK` when at least one event was handled.
///
/// Errors: `NHC_ERR_TIMEOUT` (no event within `timeout_ms`),
/// `NHC_ERR_CLOSED` (the socket's last event, CLOSED, was already
/// handled), `NHC_ERR_INVALID_ARGUMENT` (NULL), `NHC_ERR_INVALID_STATE` (a
/// threaded socket, or a dispatch of this socket already running: on
/// another thread or from one of its callbacks), `NHC_ERR_FORKED`, `NHC_ERR_PANIC`.
///
/// # Safety
/// `sock` is NULL or a live socket.
#[no_mangle]
pub unsafe extern "C" fn nhc_socket_dispatch(sock: *mut nhc_socket, timeout_ms: i32) -> nhc_result {
    boundary(|| {
        // Our own reference: a callback may free `sock` while we run.
        // SAFETY: `sock` is NULL or a live socket (this function's contract).
        let core = unsafe { sock.as_ref() }
            .ok_or_else(|| invalid("sock is NULL"))?
            .core
            .clone();
        if !core.polled {
            return Err(Failure::InvalidState(
                "nhc_socket_dispatch needs a socket with NHC_DELIVERY_POLLED".into(),
            ));
        }
        if core.dispatching.swap(true, Ordering::AcqRel) {
            return Err(Failure::InvalidState(
                "nhc_socket_dispatch is already running for this socket".into(),
            ));
        }
        let _running = ResetOnDrop(&core.dispatching);
        dispatch(&core, timeout_ms)
    })
}

struct ResetOnDrop<'a>(&'a AtomicBool);

impl Drop for ResetOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

fn dispatch(core: &SocketCore, timeout_ms: i32) -> FfiResult {
    let done = || core.router.ended() || core.router.is_closed();
    if done() {
        return Err(Failure::Core(Error::Closed(
            "the socket is closed and its last event was handled".into(),
        )));
    }
    let first = if timeout_ms < 0 {
        loop {
            if let Some(e) = core.socket.recv_timeout(Duration::from_secs(3600)) {
                break Some(e);
            }
            if done() {
                break None;
            }
        }
    } else {
        core.socket
            .recv_timeout(Duration::from_millis(timeout_ms as u64))
    };
    let Some(first) = first else {
        if done() {
            return Err(Failure::Core(Error::Closed("the socket is closed".into())));
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
        match core.socket.try_recv() {
            Some(event) => core.router.route(event),
            None => break,
        }
    }
    Ok(())
}

/// Closes the socket and releases it; NULL is ignored. Call it exactly once.
///
/// Every closure of the socket and of its channels is dropped, pending
/// replies without being called. When called from outside the socket's
/// callbacks it waits for a callback running on another thread to return:
/// once it returns no callback of this socket runs any more and every
/// `drop` has run. Called from inside one of this socket's callbacks it
/// does not wait, and the running callback's own closure is dropped right
/// after that callback returns. Do not hold a lock that the callbacks take
/// while calling it from another thread.
///
/// Channels of the socket stay valid handles until `nhc_channel_free`;
/// their functions then fail with `NHC_ERR_CLOSED`.
///
/// In a child process after fork() it releases nothing (the library's
/// threads did not survive the fork).
///
/// # Safety
/// `sock` is NULL or a live socket, not used again afterwards.
#[no_mangle]
pub unsafe extern "C" fn nhc_socket_free(sock: *mut nhc_socket) {
    boundary_or((), || {
        if sock.is_null() {
            return;
        }
        // SAFETY: `sock` is not NULL (checked above) and came from `nhc_socket_new`, freed once
        // (the caller's contract).
        let handle = unsafe { Box::from_raw(sock) };
        if forked() {
            std::mem::forget(handle);
            return;
        }
        let removed = handle.core.router.close();
        handle.core.socket.set_handler(None);
        handle.core.socket.close();
        drop(removed);
        drop(handle);
    })
}
