//! Result codes and the per-thread error detail. The C functions that read
//! them are in `result_text.rs` (they run behind the boundary, which uses
//! this file).

use std::cell::RefCell;
use std::ffi::{c_char, CString};

use nerves_hub_channel::Error;

use crate::cstring::to_cstring;

/// The outcome of every fallible `nhc_` function: `NHC_OK` (0) or a
/// negative error code. Codes are never renumbered; new ones may be added.
/// `nhc_result_str()` describes a code, `nhc_last_error_message()` gives the
/// detail of the last failure on the calling thread.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum nhc_result {
    /// Success.
    NHC_OK = 0,
    /// A NULL pointer, invalid UTF-8 or JSON, an empty topic or event, or an
    /// option out of range. Nothing was done.
    NHC_ERR_INVALID_ARGUMENT = -1,
    /// Certificates, keys or the TLS handshake.
    NHC_ERR_TLS = -2,
    /// The server refused the credentials (HTTP 401).
    NHC_ERR_AUTH = -3,
    /// The server answered the websocket upgrade with another HTTP status.
    NHC_ERR_HTTP = -4,
    /// DNS, TCP connect, a broken connection, or a resource of the system.
    NHC_ERR_CONNECT = -5,
    /// The server broke the Phoenix protocol.
    NHC_ERR_PROTOCOL = -6,
    /// A deadline passed.
    NHC_ERR_TIMEOUT = -7,
    /// The socket or channel is closed (freed, shut down, or left).
    NHC_ERR_CLOSED = -8,
    /// The outbound buffer is full (`outbound_capacity`); nothing was queued.
    NHC_ERR_BUFFER_FULL = -9,
    /// A bug in the library: a Rust panic was caught at the C boundary.
    NHC_ERR_PANIC = -10,
    /// Called in a child process after fork(): the library's threads do not
    /// survive fork. Use the library in the parent, or exec a new program.
    NHC_ERR_FORKED = -11,
    /// The call does not fit the object's mode or state (for example
    /// `nhc_socket_dispatch` on a threaded socket, or a second concurrent
    /// dispatch of the same socket).
    NHC_ERR_INVALID_STATE = -12,
    /// The HTTP proxy could not be reached, refused the tunnel (403, 407:
    /// authentication required or credentials refused), or broke it. The
    /// message names the proxy but never its credentials.
    NHC_ERR_PROXY = -13,
}

use nhc_result::*;

/// A failure on its way to C: a core error or one of the boundary's own.
#[derive(Debug)]
pub(crate) enum Failure {
    Core(Error),
    InvalidState(String),
    Panic(String),
}

impl From<Error> for Failure {
    fn from(e: Error) -> Failure {
        Failure::Core(e)
    }
}

impl Failure {
    pub fn code(&self) -> nhc_result {
        match self {
            Failure::Core(e) => code_of(e),
            Failure::InvalidState(_) => NHC_ERR_INVALID_STATE,
            Failure::Panic(_) => NHC_ERR_PANIC,
        }
    }

    pub fn message(&self) -> String {
        match self {
            Failure::Core(e) => e.to_string(),
            Failure::InvalidState(m) => format!("invalid state: {m}"),
            Failure::Panic(m) => format!("internal error (panic caught at the C boundary): {m}"),
        }
    }
}

pub(crate) type FfiResult<T = ()> = Result<T, Failure>;

pub(crate) fn invalid(message: impl Into<String>) -> Failure {
    Failure::Core(Error::InvalidArgument(message.into()))
}

/// Exhaustive on purpose: a new core error kind must get its own code here.
pub(crate) fn code_of(e: &Error) -> nhc_result {
    match e {
        Error::InvalidArgument(_) => NHC_ERR_INVALID_ARGUMENT,
        Error::Tls(_) => NHC_ERR_TLS,
        Error::Auth { .. } => NHC_ERR_AUTH,
        Error::Http { .. } => NHC_ERR_HTTP,
        Error::Connect(_) => NHC_ERR_CONNECT,
        Error::Proxy { .. } => NHC_ERR_PROXY,
        Error::Protocol(_) => NHC_ERR_PROTOCOL,
        Error::Timeout(_) => NHC_ERR_TIMEOUT,
        Error::Closed(_) => NHC_ERR_CLOSED,
        Error::BufferFull(_) => NHC_ERR_BUFFER_FULL,
        Error::Forked => NHC_ERR_FORKED,
    }
}

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

pub(crate) fn clear_last_error() {
    // try_with: a call during thread teardown must not panic.
    let _ = LAST_ERROR.try_with(|l| {
        if !l.borrow().as_bytes().is_empty() {
            *l.borrow_mut() = CString::default();
        }
    });
}

pub(crate) fn set_last_error(message: &str) {
    let c = to_cstring(message);
    let _ = LAST_ERROR.try_with(|l| *l.borrow_mut() = c);
}

/// The detail of the last failure on this thread (see `nhc_last_error_message`).
pub(crate) fn last_error_ptr() -> *const c_char {
    LAST_ERROR
        .try_with(|l| l.borrow().as_ptr())
        .unwrap_or(c"".as_ptr())
}
