//! Callback closures `{context, call, drop}` and their owned Rust side.
//!
//! A closure is moved into the library by the function that receives it,
//! whatever that function returns: `drop` runs exactly once, after the last
//! `call` has returned, even when the function failed (then before it returns).

use std::ffi::{c_char, c_void};

use crate::boundary::guard_callback;
use crate::types::{nhc_event, nhc_join_event, nhc_reply, nhc_state_event};

/// Receives socket state changes (`nhc_state_event`). See "Callbacks" at
/// the top of this header for when and where `call` and `drop` run.
/// `call` may be NULL (nothing is called); `drop` may be NULL.
#[allow(non_camel_case_types)]
#[repr(C)]
pub struct nhc_state_closure {
    /// Handed back to `call` and `drop` untouched.
    pub context: *mut c_void,
    /// `event` and everything it points to are valid during the call only.
    pub call: Option<unsafe extern "C" fn(event: *const nhc_state_event, context: *mut c_void)>,
    /// Releases `context`; called exactly once.
    pub drop: Option<unsafe extern "C" fn(context: *mut c_void)>,
}

/// Receives every join outcome of a channel (`nhc_join_event`), rejoins included.
#[allow(non_camel_case_types)]
#[repr(C)]
pub struct nhc_join_closure {
    /// Handed back to `call` and `drop` untouched.
    pub context: *mut c_void,
    /// `event` and everything it points to are valid during the call only.
    pub call: Option<unsafe extern "C" fn(event: *const nhc_join_event, context: *mut c_void)>,
    /// Releases `context`; called exactly once.
    pub drop: Option<unsafe extern "C" fn(context: *mut c_void)>,
}

/// Receives a channel's inbound messages and notifications (`nhc_event`).
#[allow(non_camel_case_types)]
#[repr(C)]
pub struct nhc_event_closure {
    /// Handed back to `call` and `drop` untouched.
    pub context: *mut c_void,
    /// `event` and everything it points to are valid during the call only
    /// (`nhc_event_clone` makes a copy that lives longer).
    pub call: Option<unsafe extern "C" fn(event: *const nhc_event, context: *mut c_void)>,
    /// Releases `context`; called exactly once.
    pub drop: Option<unsafe extern "C" fn(context: *mut c_void)>,
}

/// Receives the end of one push (`nhc_reply`): called at most once, then dropped.
#[allow(non_camel_case_types)]
#[repr(C)]
pub struct nhc_reply_closure {
    /// Handed back to `call` and `drop` untouched.
    pub context: *mut c_void,
    /// `reply` and everything it points to are valid during the call only.
    pub call: Option<unsafe extern "C" fn(reply: *const nhc_reply, context: *mut c_void)>,
    /// Releases `context`; called exactly once.
    pub drop: Option<unsafe extern "C" fn(context: *mut c_void)>,
}

/// Computes a channel's join parameters before each join and rejoin.
///
/// `call` runs on a library I/O thread: it must be quick, must not block
/// and must not call any `nhc_` function. It returns NUL-terminated JSON
/// text (an object) that stays valid until the next call or the drop of
/// this closure; the library copies it at once. NULL or invalid JSON sends
/// `{}` instead. Calls never overlap. `drop` runs inside `nhc_channel_free`
/// (after any running call returned), or in a failing
/// `nhc_channel_new_with_params`.
#[allow(non_camel_case_types)]
#[repr(C)]
pub struct nhc_params_closure {
    /// Handed back to `call` and `drop` untouched.
    pub context: *mut c_void,
    /// Returns the parameters as JSON text.
    pub call: Option<unsafe extern "C" fn(context: *mut c_void) -> *const c_char>,
    /// Releases `context`; called exactly once.
    pub drop: Option<unsafe extern "C" fn(context: *mut c_void)>,
}

/// A closure the library owns: its `drop` runs when this value is dropped.
pub(crate) struct Owned<C: Closure> {
    raw: C,
}

// SAFETY: the header makes the caller promise that a closure's context may
// be used from the library's threads; the library never calls one closure
// from two threads at once (calls for one socket never overlap).
unsafe impl<C: Closure> Send for Owned<C> {}
// SAFETY: see Send; shared references only lead to serialised calls.
unsafe impl<C: Closure> Sync for Owned<C> {}

pub(crate) trait Closure {
    const NAME: &'static str;
    fn context(&self) -> *mut c_void;
    fn drop_fn(&self) -> Option<unsafe extern "C" fn(*mut c_void)>;
}

/// The Rust side of a `{context, call, drop}` struct, written once for the
/// closures of every handle kind: `Closure` (how `Owned` drops it); with
/// `none`, the empty closure that options start with; with `event: T`,
/// `Owned::call(&T)` for a closure that receives one event pointer.
macro_rules! closure_kind {
    ($ty:ident, $name:literal) => {
        impl $crate::closure::Closure for $ty {
            const NAME: &'static str = $name;
            fn context(&self) -> *mut ::std::ffi::c_void {
                self.context
            }
            fn drop_fn(&self) -> Option<unsafe extern "C" fn(*mut ::std::ffi::c_void)> {
                self.drop
            }
        }
    };
    ($ty:ident, $name:literal, none $(, event: $event:ty)?) => {
        $crate::closure::closure_kind!($ty, $name $(, event: $event)?);
        impl $ty {
            pub(crate) fn none() -> $ty {
                $ty {
                    context: ::std::ptr::null_mut(),
                    call: None,
                    drop: None,
                }
            }
        }
    };
    ($ty:ident, $name:literal, event: $event:ty) => {
        $crate::closure::closure_kind!($ty, $name);
        impl $crate::closure::Owned<$ty> {
            pub fn call(&self, event: &$event) {
                if let Some(f) = self.raw().call {
                    // SAFETY: the pointer is valid for the call; the context is the caller's.
                    $crate::boundary::guard_callback($name, || unsafe {
                        f(event, self.raw().context)
                    });
                }
            }
        }
    };
}
pub(crate) use closure_kind;

closure_kind!(nhc_state_closure, "state", none, event: nhc_state_event);
closure_kind!(nhc_join_closure, "join", event: nhc_join_event);
closure_kind!(nhc_event_closure, "event", event: nhc_event);
closure_kind!(nhc_reply_closure, "reply", event: nhc_reply);
closure_kind!(nhc_params_closure, "params");

impl<C: Closure> Owned<C> {
    pub fn new(raw: C) -> Owned<C> {
        Owned { raw }
    }

    /// The closure as the caller gave it, for the calls of other modules.
    pub fn raw(&self) -> &C {
        &self.raw
    }
}

impl<C: Closure> Drop for Owned<C> {
    fn drop(&mut self) {
        if let Some(drop_fn) = self.raw.drop_fn() {
            let context = self.raw.context();
            // SAFETY: the caller gave us this function and context to call once.
            guard_callback(C::NAME, || unsafe { drop_fn(context) });
        }
    }
}

impl Owned<nhc_params_closure> {
    /// The JSON text returned by the callback, copied; `None` if it gave NULL.
    pub fn call(&self) -> Option<Vec<u8>> {
        let f = self.raw.call?;
        let mut out = None;
        guard_callback("params", || {
            // SAFETY: the callback returns NULL or a NUL-terminated string
            // valid until its next call; it is copied before that.
            let ptr = unsafe { f(self.raw.context) };
            if !ptr.is_null() {
                // SAFETY: as above: not NULL, NUL-terminated, still valid.
                out = Some(unsafe { std::ffi::CStr::from_ptr(ptr) }.to_bytes().to_vec());
            }
        });
        out
    }
}
