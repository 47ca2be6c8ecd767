//! The plain structs handed to callbacks. Every pointer in them is borrowed
//! for the duration of the call and never NULL: absent text is "".

use std::ffi::c_char;

use nerves_hub_channel::Payload;

use crate::ctext::CText;
use crate::nhc_result;

/// A channel's state, as `nhc_channel_state` reports it.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum nhc_channel_phase {
    /// Not joined: before `nhc_channel_join`, after a leave, or closed by the server.
    NHC_CHANNEL_CLOSED = 0,
    /// The join was sent; waiting for the reply.
    NHC_CHANNEL_JOINING = 1,
    NHC_CHANNEL_JOINED = 2,
    /// Wants to be joined: waits for a connection or its rejoin timer.
    NHC_CHANNEL_ERRORED = 3,
    /// The leave was sent; waiting for the reply.
    NHC_CHANNEL_LEAVING = 4,
}

/// A socket's connection state, and the kinds of `nhc_state_event`.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum nhc_state {
    /// Not connected, not trying (before `nhc_socket_connect`, after
    /// `nhc_socket_disconnect`), or waiting for the next reconnect attempt.
    NHC_STATE_DISCONNECTED = 0,
    /// A connection attempt is under way.
    NHC_STATE_CONNECTING = 1,
    /// Connected: channels (re)join now.
    NHC_STATE_CONNECTED = 2,
    /// Closed for good (freed or `nhc_shutdown`); the last event of a socket.
    NHC_STATE_CLOSED = 3,
    /// Event only: the server refused the credentials (HTTP 401). The socket
    /// keeps retrying slowly, since a clock or a server may recover.
    NHC_STATE_AUTH_ERROR = 4,
    /// Event only, no state change: a frame from the server could not be
    /// decoded and was dropped (`reason` says why).
    NHC_STATE_PROTOCOL_ERROR = 5,
}

/// A state change of a socket, handed to its `nhc_state_closure`.
#[allow(non_camel_case_types)]
#[repr(C)]
pub struct nhc_state_event {
    /// What happened.
    pub state: nhc_state,
    /// Why, as a code: `NHC_OK` for CONNECTING, CONNECTED and CLOSED; for
    /// DISCONNECTED the cause (`NHC_ERR_CLOSED` after `nhc_socket_disconnect`,
    /// `NHC_ERR_CONNECT`, `NHC_ERR_TLS`, `NHC_ERR_HTTP`, `NHC_ERR_TIMEOUT`...);
    /// `NHC_ERR_AUTH` for AUTH_ERROR; `NHC_ERR_PROTOCOL` for PROTOCOL_ERROR.
    pub error: nhc_result,
    /// Why, as text for people (NUL-terminated UTF-8, "" if none).
    pub reason: *const c_char,
    /// Milliseconds until the next connection attempt, or -1 if none is
    /// planned (DISCONNECTED and AUTH_ERROR only; -1 otherwise).
    pub reconnect_in_ms: i64,
    /// CONNECTING: the attempt number, from 1 since the last success. 0 otherwise.
    pub attempt: u32,
}

/// A payload: JSON text or binary bytes.
#[allow(non_camel_case_types)]
#[repr(C)]
pub struct nhc_payload {
    /// True for a binary payload (`binary`), false for JSON (`json`).
    pub is_binary: bool,
    /// JSON text, NUL-terminated (`json[json_len] == '\0'`); "" when the
    /// payload is binary or absent.
    pub json: *const c_char,
    /// Length of `json` in bytes, without the NUL.
    pub json_len: usize,
    /// The bytes of a binary payload; points to "" (length 0) otherwise.
    pub binary: *const u8,
    /// Length of `binary`.
    pub binary_len: usize,
}

/// How a join ended.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum nhc_join_status {
    /// Joined; `response` is the server's reply.
    NHC_JOIN_OK = 0,
    /// The server refused; `response` is its error reply (for example
    /// `{"reason":"unmatched topic"}`). A rejoin follows (`rejoin_in_ms`).
    NHC_JOIN_REFUSED = 1,
    /// No reply within the join timeout. A rejoin follows.
    NHC_JOIN_TIMEOUT = 2,
    /// The channel was left, freed, or its socket closed before the join
    /// completed. No rejoin.
    NHC_JOIN_CLOSED = 3,
}

/// A join outcome, handed to the channel's `nhc_join_closure`.
#[allow(non_camel_case_types)]
#[repr(C)]
pub struct nhc_join_event {
    /// How the join ended.
    pub status: nhc_join_status,
    /// The channel's topic.
    pub topic: *const c_char,
    /// The server's response (OK, REFUSED); an empty JSON payload otherwise.
    pub response: nhc_payload,
    /// Text for people: why the join failed; "" for OK.
    pub reason: *const c_char,
    /// Milliseconds until the library rejoins by itself, or -1 if it will not.
    pub rejoin_in_ms: i64,
}

/// The kinds of `nhc_event`.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum nhc_event_kind {
    /// A push or broadcast from the server: `event` and `payload` are set.
    NHC_EVENT_MESSAGE = 0,
    /// The channel errored (server `phx_error`, or the connection dropped):
    /// it rejoins by itself. `reason` says why.
    NHC_EVENT_CHANNEL_ERROR = 1,
    /// The channel closed (server `phx_close`, left, or its socket closed):
    /// it does not rejoin unless `nhc_channel_join` is called again.
    NHC_EVENT_CHANNEL_CLOSED = 2,
    /// A `nhc_channel_cast` could not be sent: `push_id`, `error`, `reason`.
    NHC_EVENT_CAST_FAILED = 3,
}

/// An inbound message or a notification of a channel, handed to its
/// `nhc_event_closure`.
#[allow(non_camel_case_types)]
#[repr(C)]
pub struct nhc_event {
    /// What this is; the fields below say which of them are set.
    pub kind: nhc_event_kind,
    /// The channel's topic.
    pub topic: *const c_char,
    /// MESSAGE: the event name; "" otherwise.
    pub event: *const c_char,
    /// MESSAGE: the payload; an empty JSON payload otherwise.
    pub payload: nhc_payload,
    /// CHANNEL_ERROR, CHANNEL_CLOSED, CAST_FAILED: why, as text; "" otherwise.
    pub reason: *const c_char,
    /// CAST_FAILED: the code of the failure (`NHC_ERR_TIMEOUT`,
    /// `NHC_ERR_CLOSED`...); `NHC_OK` otherwise.
    pub error: nhc_result,
    /// CAST_FAILED: the id `nhc_channel_cast` returned; 0 otherwise.
    pub push_id: u64,
}

/// How a push ended.
#[allow(non_camel_case_types)]
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum nhc_reply_status {
    /// The server replied `{"status":"ok"}`; `response` is its response.
    NHC_REPLY_OK = 0,
    /// The server replied with another status (`status_text`, usually
    /// "error"); `response` is its response.
    NHC_REPLY_ERROR = 1,
    /// No reply within the push's timeout. The push may have reached the server.
    NHC_REPLY_TIMEOUT = 2,
    /// The push never reached the wire (channel left or closed, socket
    /// closed, or not joined in time): `error` and `reason` say why.
    NHC_REPLY_NOT_SENT = 3,
}

/// The end of a push, handed to its `nhc_reply_closure`.
#[allow(non_camel_case_types)]
#[repr(C)]
pub struct nhc_reply {
    /// How the push ended.
    pub status: nhc_reply_status,
    /// Identifies the push within its socket (increasing from 1).
    pub push_id: u64,
    /// The channel's topic.
    pub topic: *const c_char,
    /// OK and ERROR: the status string of the server's reply; "" otherwise.
    pub status_text: *const c_char,
    /// OK and ERROR: the server's response; an empty JSON payload otherwise.
    pub response: nhc_payload,
    /// `NHC_OK` for OK and ERROR, `NHC_ERR_TIMEOUT` for TIMEOUT, the cause
    /// (`NHC_ERR_CLOSED`...) for NOT_SENT.
    pub error: nhc_result,
    /// NOT_SENT and TIMEOUT: text for people; "" otherwise.
    pub reason: *const c_char,
}

/// Owns the C form of a payload while a callback borrows it.
pub(crate) struct PayloadBuf<'a> {
    json: CText<PAYLOAD_INLINE>,
    binary: Option<&'a [u8]>,
}

/// JSON payloads shorter than this are handed to callbacks from the stack.
const PAYLOAD_INLINE: usize = 1024;

impl<'a> PayloadBuf<'a> {
    pub fn new(payload: Option<&'a Payload>) -> PayloadBuf<'a> {
        match payload {
            Some(Payload::Binary(bytes)) => PayloadBuf {
                json: CText::new(""),
                binary: Some(bytes),
            },
            Some(p) => PayloadBuf {
                json: CText::json(p.json_text().unwrap_or("")),
                binary: None,
            },
            None => PayloadBuf {
                json: CText::new(""),
                binary: None,
            },
        }
    }

    pub fn view(&self) -> nhc_payload {
        let empty: &[u8] = b"";
        let bytes = self.binary.unwrap_or(empty);
        nhc_payload {
            is_binary: self.binary.is_some(),
            json: self.json.as_ptr(),
            json_len: self.json.len(),
            binary: if bytes.is_empty() {
                empty.as_ptr()
            } else {
                bytes.as_ptr()
            },
            binary_len: bytes.len(),
        }
    }
}

pub(crate) fn ms_or_minus_one(d: Option<std::time::Duration>) -> i64 {
    d.map_or(-1, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}
