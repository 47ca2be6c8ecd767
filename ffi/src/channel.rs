//! `nhc_channel_*`: join, leave, push and the channel's callbacks.

use std::ffi::{c_char, CString};
use std::sync::Arc;
use std::time::Duration;

use nerves_hub_channel::{Channel, ChannelState, Error, JoinParams, Payload};

use crate::args::{bytes_arg, json_arg, str_arg, timeout_arg, to_cstring};
use crate::boundary::{boundary, boundary_or, forked};
use crate::closure::{
    nhc_event_closure, nhc_join_closure, nhc_params_closure, nhc_reply_closure, Owned,
};
use crate::error::{invalid, FfiResult};
use crate::nhc_result;
use crate::params::ParamsGate;
use crate::router::Router;
use crate::socket::{nhc_socket, socket_ref};
use crate::types::nhc_channel_phase;

/// A channel on one topic of a socket. Created by `nhc_channel_new` or
/// `nhc_channel_new_with_params`, released by `nhc_channel_free`. Every
/// function taking it may be called from any thread, including from callbacks.
#[allow(non_camel_case_types)]
pub struct nhc_channel {
    channel: Channel,
    router: Arc<Router>,
    params: Option<Arc<ParamsGate>>,
    topic: CString,
    default_timeout: Duration,
}

unsafe fn channel_ref<'a>(ch: *const nhc_channel) -> FfiResult<&'a nhc_channel> {
    // SAFETY: `ch` is NULL or a live channel (the caller's contract).
    unsafe { ch.as_ref() }.ok_or_else(|| invalid("ch is NULL"))
}

/// The channel, unless its socket was freed: the connection task may still
/// accept commands for a moment, but the caller must learn at once.
unsafe fn live_channel<'a>(ch: *const nhc_channel) -> FfiResult<&'a nhc_channel> {
    // SAFETY: `ch` is NULL or a live channel (the caller's contract).
    let ch = unsafe { channel_ref(ch) }?;
    if ch.router.is_closed() {
        return Err(Error::Closed("the socket was freed".into()).into());
    }
    Ok(ch)
}

unsafe fn create(
    sock: *mut nhc_socket,
    topic: *const c_char,
    params: impl FnOnce() -> FfiResult<(JoinParams, Option<Arc<ParamsGate>>)>,
    out: *mut *mut nhc_channel,
) -> FfiResult {
    let params = params();
    // SAFETY: `sock` is NULL or a live socket (the caller's contract).
    let core = unsafe { socket_ref(sock) }?;
    // SAFETY: `topic` is NULL or a NUL-terminated string (the caller's contract).
    let topic = unsafe { str_arg(topic, "topic") }?;
    let (params, gate) = params?;
    if out.is_null() {
        return Err(invalid("out is NULL"));
    }
    let channel = core.handle.channel(topic, params)?;
    core.router.add_channel(channel.id(), topic)?;
    // SAFETY: `out` is valid for writes (the caller's contract; NULL was refused above).
    unsafe {
        *out = Box::into_raw(Box::new(nhc_channel {
            channel,
            router: core.router.clone(),
            params: gate,
            topic: to_cstring(topic),
            default_timeout: core.extra,
        }))
    };
    Ok(())
}

/// Creates a channel on `topic` with fixed join parameters: `params_json`
/// is NUL-terminated JSON text (an object), or NULL for `{}`; it is copied.
/// Nothing is sent until `nhc_channel_join`. On success `*out` receives
/// the channel; free it with `nhc_channel_free`.
///
/// Errors: `NHC_ERR_INVALID_ARGUMENT` (NULL `sock`, `topic` or `out`,
/// empty topic, invalid UTF-8 or JSON), `NHC_ERR_CLOSED` (the socket was
/// freed), `NHC_ERR_FORKED`, `NHC_ERR_PANIC`.
///
/// # Safety
/// `sock` is NULL or a live socket; strings are NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn nhc_channel_new(
    sock: *mut nhc_socket,
    topic: *const c_char,
    params_json: *const c_char,
    out: *mut *mut nhc_channel,
) -> nhc_result {
    boundary(|| {
        let params = || {
            let payload = if params_json.is_null() {
                Payload::empty()
            } else {
                // SAFETY: `params_json` is not NULL (checked above) and NUL-terminated (the
                // caller's contract).
                let text = unsafe { std::ffi::CStr::from_ptr(params_json) }.to_bytes();
                crate::args::json_payload(text, "params_json")?
            };
            Ok((JoinParams::Static(payload), None))
        };
        // SAFETY: `sock` is NULL or a live socket, `topic` NULL or NUL-terminated, `out` NULL or
        // writable (this function's contract).
        unsafe { create(sock, topic, params, out) }
    })
}

/// Creates a channel whose join parameters are computed by `params` before
/// every join and rejoin (firmware metadata changes between reconnects).
/// See `nhc_params_closure`: it runs on an I/O thread, must be quick and
/// must not call `nhc_` functions. `params` is moved into the channel,
/// also on failure (then dropped before this returns); it is dropped by
/// `nhc_channel_free`.
///
/// Errors: as `nhc_channel_new`.
///
/// # Safety
/// As `nhc_channel_new`.
#[no_mangle]
pub unsafe extern "C" fn nhc_channel_new_with_params(
    sock: *mut nhc_socket,
    topic: *const c_char,
    params: nhc_params_closure,
    out: *mut *mut nhc_channel,
) -> nhc_result {
    let params = Owned::new(params);
    boundary(move || {
        let make = move || {
            let gate = ParamsGate::new(params);
            Ok((gate.join_params(), Some(gate)))
        };
        // SAFETY: `sock` is NULL or a live socket, `topic` NULL or NUL-terminated, `out` NULL or
        // writable (this function's contract).
        unsafe { create(sock, topic, make, out) }
    })
}

/// Sets the closure that receives every join outcome (`nhc_join_event`) of
/// the channel, rejoins included, replacing (and dropping) the previous one.
/// Set it before `nhc_channel_join` to see the first outcome. `closure` is
/// moved into the channel, also on failure.
///
/// Errors: `NHC_ERR_INVALID_ARGUMENT` (NULL), `NHC_ERR_CLOSED` (the socket
/// was freed), `NHC_ERR_FORKED`, `NHC_ERR_PANIC`.
///
/// # Safety
/// `ch` is NULL or a live channel.
#[no_mangle]
pub unsafe extern "C" fn nhc_channel_on_join(
    ch: *mut nhc_channel,
    closure: nhc_join_closure,
) -> nhc_result {
    let closure = Owned::new(closure);
    boundary(move || {
        // SAFETY: `ch` is NULL or a live channel (the caller's contract).
        let ch = unsafe { channel_ref(ch) }?;
        let old = ch.router.set_join(ch.channel.id(), closure)?;
        drop(old);
        Ok(())
    })
}

/// Sets the closure that receives the channel's messages and notifications
/// (`nhc_event`: server pushes and broadcasts, channel errors and closes,
/// failed casts), replacing (and dropping) the previous one. `closure` is
/// moved into the channel, also on failure.
///
/// Errors: as `nhc_channel_on_join`.
///
/// # Safety
/// `ch` is NULL or a live channel.
#[no_mangle]
pub unsafe extern "C" fn nhc_channel_on_event(
    ch: *mut nhc_channel,
    closure: nhc_event_closure,
) -> nhc_result {
    let closure = Owned::new(closure);
    boundary(move || {
        // SAFETY: `ch` is NULL or a live channel (the caller's contract).
        let ch = unsafe { channel_ref(ch) }?;
        let old = ch.router.set_event(ch.channel.id(), closure)?;
        drop(old);
        Ok(())
    })
}

/// Joins the channel, now if connected or as soon as the socket connects.
/// The channel then stays joined: after a channel error, a refused or timed
/// out join, or a reconnect it rejoins by itself until `nhc_channel_leave`.
/// Every outcome goes to the join closure. `timeout_ms` bounds each join
/// attempt (0: the socket's `default_timeout_ms`). Joining a joined channel
/// reports OK again.
///
/// Errors: `NHC_ERR_INVALID_ARGUMENT` (NULL), `NHC_ERR_CLOSED` (the socket
/// was freed or shut down), `NHC_ERR_FORKED`, `NHC_ERR_PANIC`.
///
/// # Safety
/// `ch` is NULL or a live channel.
#[no_mangle]
pub unsafe extern "C" fn nhc_channel_join(ch: *mut nhc_channel, timeout_ms: u32) -> nhc_result {
    boundary(|| {
        // SAFETY: `ch` is NULL or a live channel (the caller's contract).
        let ch = unsafe { live_channel(ch) }?;
        let timeout = timeout_arg(timeout_ms).unwrap_or(ch.default_timeout);
        ch.router.join_requested(ch.channel.id());
        // The outcome arrives as an event; the returned future is not needed.
        drop(ch.channel.join_with_timeout(timeout)?);
        Ok(())
    })
}

/// Leaves the channel: no more rejoins. Buffered pushes end NOT_SENT; the
/// event closure receives CHANNEL_CLOSED ("left") once the server
/// confirmed or the default timeout passed. `nhc_channel_join` may join again.
///
/// Errors: as `nhc_channel_join`.
///
/// # Safety
/// `ch` is NULL or a live channel.
#[no_mangle]
pub unsafe extern "C" fn nhc_channel_leave(ch: *mut nhc_channel) -> nhc_result {
    boundary(|| {
        // SAFETY: `ch` is NULL or a live channel (the caller's contract).
        let ch = unsafe { live_channel(ch) }?;
        drop(ch.channel.leave()?);
        Ok(())
    })
}

unsafe fn push(
    ch: *mut nhc_channel,
    event: *const c_char,
    payload: impl FnOnce() -> FfiResult<Payload>,
    timeout_ms: u32,
    reply: Owned<nhc_reply_closure>,
) -> FfiResult {
    // SAFETY: `ch` is NULL or a live channel (the caller's contract).
    let ch = unsafe { channel_ref(ch) }?;
    // SAFETY: `event` is NULL or a NUL-terminated string (the caller's contract).
    let event = unsafe { str_arg(event, "event") }?;
    let payload = payload()?;
    let timeout = timeout_arg(timeout_ms).unwrap_or(ch.default_timeout);
    let channel = &ch.channel;
    ch.router.track_reply(channel.id(), reply, || {
        Ok(channel.push_tracked(event, payload, timeout)?)
    })?;
    Ok(())
}

/// Pushes `event` with a JSON payload (`json_len` bytes of UTF-8 JSON at
/// `json`, not NUL-terminated; NULL with length 0 sends `{}`); copied.
/// Before the join and while disconnected the push waits in the outbound
/// buffer, at most `timeout_ms` (0: the socket's `default_timeout_ms`),
/// which also bounds the wait for the reply.
///
/// On success `reply` is called exactly once with the outcome (OK, ERROR,
/// TIMEOUT or NOT_SENT), in order with the socket's other events, then
/// dropped; if the socket is freed first it is dropped without a call. It
/// is moved into the library, also on failure (then dropped before this
/// returns, never called). Its `call` may be NULL.
///
/// Errors: `NHC_ERR_INVALID_ARGUMENT` (NULL, empty event, invalid UTF-8 or
/// JSON), `NHC_ERR_BUFFER_FULL` (`outbound_capacity` pushes are waiting),
/// `NHC_ERR_CLOSED` (the socket was freed or shut down), `NHC_ERR_FORKED`,
/// `NHC_ERR_PANIC`.
///
/// # Safety
/// `ch` is NULL or a live channel; `json` points to `json_len` bytes.
#[no_mangle]
pub unsafe extern "C" fn nhc_channel_push(
    ch: *mut nhc_channel,
    event: *const c_char,
    json: *const c_char,
    json_len: usize,
    timeout_ms: u32,
    reply: nhc_reply_closure,
) -> nhc_result {
    let reply = Owned::new(reply);
    boundary(move || {
        // SAFETY: `ch` is NULL or a live channel, `event` NULL or NUL-terminated, `json` NULL or
        // `json_len` bytes (this function's contract).
        unsafe {
            push(
                ch,
                event,
                || json_arg(json, json_len, "json"),
                timeout_ms,
                reply,
            )
        }
    })
}

/// Like `nhc_channel_push` with a binary payload: `len` bytes at `data`,
/// sent in a binary websocket frame; copied.
///
/// Errors: as `nhc_channel_push`.
///
/// # Safety
/// `ch` is NULL or a live channel; `data` points to `len` bytes.
#[no_mangle]
pub unsafe extern "C" fn nhc_channel_push_binary(
    ch: *mut nhc_channel,
    event: *const c_char,
    data: *const u8,
    len: usize,
    timeout_ms: u32,
    reply: nhc_reply_closure,
) -> nhc_result {
    let reply = Owned::new(reply);
    boundary(move || {
        let payload = || {
            // SAFETY: `data` is NULL or points to `len` readable bytes (the caller's contract).
            let bytes = unsafe { bytes_arg(data, len, "data") }?;
            Ok(Payload::Binary(bytes.to_vec()))
        };
        // SAFETY: `ch` is NULL or a live channel, `event` NULL or NUL-terminated, the payload NULL
        // or valid for its length (this function's contract).
        unsafe { push(ch, event, payload, timeout_ms, reply) }
    })
}

/// Fire-and-forget push of a JSON payload (as `nhc_channel_push`): no reply
/// is awaited (NervesHub never replies to device events). If it cannot be
/// sent within `timeout_ms` (0: the default), the event closure receives
/// CAST_FAILED with the id written to `*push_id` (which may be NULL).
///
/// Errors: as `nhc_channel_push`.
///
/// # Safety
/// `ch` is NULL or a live channel; `json` points to `json_len` bytes;
/// `push_id` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn nhc_channel_cast(
    ch: *mut nhc_channel,
    event: *const c_char,
    json: *const c_char,
    json_len: usize,
    timeout_ms: u32,
    push_id: *mut u64,
) -> nhc_result {
    boundary(|| {
        // SAFETY: `ch` is NULL or a live channel (the caller's contract).
        let ch = unsafe { channel_ref(ch) }?;
        // SAFETY: `event` is NULL or a NUL-terminated string (the caller's contract).
        let event = unsafe { str_arg(event, "event") }?;
        // SAFETY: `json` is NULL or points to `json_len` readable bytes (the caller's contract).
        let payload = unsafe { json_arg(json, json_len, "json") }?;
        // SAFETY: `ch` is NULL or a live channel (the caller's contract).
        let ch = unsafe { live_channel(ch) }?;
        let timeout = timeout_arg(timeout_ms).unwrap_or(ch.default_timeout);
        let id = ch.channel.cast(event, payload, timeout)?;
        if !push_id.is_null() {
            // SAFETY: `push_id` is valid for writes (the caller's contract; NULL was refused
            // above).
            unsafe { *push_id = id };
        }
        Ok(())
    })
}

/// Writes the channel's current state to `*out` (it may change right after).
///
/// Errors: `NHC_ERR_INVALID_ARGUMENT` (NULL `ch` or `out`), `NHC_ERR_PANIC`.
///
/// # Safety
/// `ch` is NULL or a live channel; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn nhc_channel_state(
    ch: *const nhc_channel,
    out: *mut nhc_channel_phase,
) -> nhc_result {
    boundary(|| {
        // SAFETY: `ch` is NULL or a live channel (the caller's contract).
        let ch = unsafe { channel_ref(ch) }?;
        if out.is_null() {
            return Err(invalid("out is NULL"));
        }
        // SAFETY: `out` is valid for writes (the caller's contract; NULL was refused above).
        unsafe {
            *out = match ch.channel.state() {
                ChannelState::Closed => nhc_channel_phase::NHC_CHANNEL_CLOSED,
                ChannelState::Joining => nhc_channel_phase::NHC_CHANNEL_JOINING,
                ChannelState::Joined => nhc_channel_phase::NHC_CHANNEL_JOINED,
                ChannelState::Errored => nhc_channel_phase::NHC_CHANNEL_ERRORED,
                ChannelState::Leaving => nhc_channel_phase::NHC_CHANNEL_LEAVING,
            }
        };
        Ok(())
    })
}

/// The channel's topic, NUL-terminated; valid until `nhc_channel_free`.
/// NULL if `ch` is NULL.
///
/// # Safety
/// `ch` is NULL or a live channel.
#[no_mangle]
pub unsafe extern "C" fn nhc_channel_topic(ch: *const nhc_channel) -> *const c_char {
    boundary_or(std::ptr::null(), || {
        // SAFETY: `ch` is NULL or a live channel (the caller's contract).
        unsafe { ch.as_ref() }.map_or(std::ptr::null(), |c| c.topic.as_ptr())
    })
}

/// Leaves the channel (if joined) and releases it; NULL is ignored. Call
/// it exactly once. Its join, event and params closures are dropped before
/// this returns; when called from another thread than the one running a
/// callback of the socket, it first waits for that callback to return (so
/// afterwards none of the channel's callbacks runs). Called from inside a
/// callback of the socket it does not wait, and a running closure of this
/// channel is dropped when its call returns. Replies of pending pushes are
/// still delivered to their own closures.
///
/// # Safety
/// `ch` is NULL or a live channel, not used again afterwards.
#[no_mangle]
pub unsafe extern "C" fn nhc_channel_free(ch: *mut nhc_channel) {
    boundary_or((), || {
        if ch.is_null() {
            return;
        }
        // SAFETY: `ch` is not NULL (checked above) and came from `nhc_channel_new`, freed once (the
        // caller's contract).
        let handle = unsafe { Box::from_raw(ch) };
        if forked() {
            std::mem::forget(handle);
            return;
        }
        // Without a leave the connection task would keep rejoining it.
        let _ = handle.channel.leave();
        let removed = handle.router.remove_channel(handle.channel.id());
        if let Some(gate) = &handle.params {
            gate.close();
        }
        drop(removed);
        drop(handle);
    })
}
