//! `nhc_socket_*`: creating, connecting, dispatching and freeing a socket.

use std::ffi::c_int;
use std::sync::Arc;
use std::time::Duration;

use nerves_hub_channel::Socket;

use crate::boundary::{boundary, boundary_or};
use crate::closure::{nhc_state_closure, Owned};
use crate::error::{invalid, FfiResult};
use crate::handle::{self, HandleCore, Kind};
use crate::nhc_result;
use crate::options::{self, nhc_socket_options};
use crate::router::Router;
use crate::types::nhc_state;

/// A Phoenix socket: one websocket connection, re-made as needed, carrying
/// channels. Created by `nhc_socket_new`, released by `nhc_socket_free`.
/// Every function taking it may be called from any thread, including from
/// the socket's own callbacks.
#[allow(non_camel_case_types)]
pub struct nhc_socket {
    core: Arc<HandleCore<nhc_socket>>,
}

impl Kind for nhc_socket {
    type Handle = Socket;
    type Router = Router;
    /// The socket's `default_timeout`, for its channels.
    type Extra = Duration;
    const ARG: &'static str = "sock";
    const NOUN: &'static str = "socket";
    const PREFIX: &'static str = "nhc_socket";

    fn core(&self) -> &Arc<HandleCore<Self>> {
        &self.core
    }
    fn wrap(core: Arc<HandleCore<Self>>) -> Self {
        nhc_socket { core }
    }
}

/// # Safety
/// `sock` is NULL or a live socket from `nhc_socket_new`.
pub(crate) unsafe fn socket_ref<'a>(
    sock: *const nhc_socket,
) -> FfiResult<&'a HandleCore<nhc_socket>> {
    // SAFETY: `sock` is NULL or a live socket (the caller's contract).
    unsafe { handle::get(sock) }
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
        let created = handle::create::<nhc_socket>(socket, router, default_timeout, delivery)?;
        // SAFETY: `out` is valid for writes (the caller's contract; NULL was refused above).
        unsafe { *out = created };
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
    boundary(|| unsafe { handle::connect(sock) })
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
    boundary(|| unsafe { handle::disconnect(sock) })
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
    // SAFETY: `sock` is NULL or a live socket, `out` NULL or writable (the caller's contract).
    boundary(|| unsafe { handle::state(sock, out) })
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
    // SAFETY: `sock` is NULL or a live socket, `fd` NULL or writable (the caller's contract).
    boundary(|| unsafe { handle::fd(sock, fd) })
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
    // SAFETY: `sock` is NULL or a live socket (the caller's contract).
    boundary(|| unsafe { handle::dispatch(sock, timeout_ms) })
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
/// It also waits until the connection task has let go of the client key:
/// a `key.sign` closure is dropped and a PKCS#11 session closed before it
/// returns, so the program may exit (or unload the PKCS#11 module) right
/// after. A connection whose peer stopped reading delays this by at most a
/// few seconds.
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
    // SAFETY: `sock` is NULL or a live socket, not used again (the caller's contract).
    boundary_or((), || unsafe { handle::free(sock) })
}
