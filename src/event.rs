//! What a socket reports, as one ordered stream per socket.

use std::time::Duration;

use crate::error::Error;
use crate::message::Payload;

/// Identifies a channel within its socket.
pub type ChannelId = u64;
/// Identifies a push within its socket.
pub type PushId = u64;

/// How a push ended.
#[derive(Debug, Clone, PartialEq)]
pub enum PushOutcome {
    /// The server replied `{"status": "ok"}`.
    Ok(Payload),
    /// The server replied with another status (usually "error").
    Error { status: String, response: Payload },
    /// No reply within the push's timeout.
    Timeout,
    /// The push never reached the wire (left channel, closed socket...).
    NotSent(Error),
}

/// Why a join failed.
#[derive(Debug, Clone, PartialEq)]
pub enum JoinFailure {
    /// The server replied with an error; the payload is its response.
    Refused(Payload),
    Timeout,
    /// The channel was left or the socket closed before the join completed.
    Closed(Error),
}

/// Connection and channel events, delivered in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A connection attempt starts (`attempt` counts from 1 since the last success).
    Connecting {
        attempt: u32,
    },
    Connected,
    /// The connection ended or could not be made. `reconnect_in` is `None`
    /// when no reconnect will happen (closed by the user or reconnect disabled).
    Disconnected {
        reason: Error,
        reconnect_in: Option<Duration>,
    },
    /// The server refused our credentials (HTTP 401); the socket keeps retrying slowly.
    AuthError {
        error: Error,
        reconnect_in: Option<Duration>,
    },
    /// The server closed the last `sessions` connections soon after they
    /// joined (before `stable_after`). On NervesHub this is what another
    /// device connecting with the same certificate or NH1 identifier does:
    /// the server closes the older socket whenever one authenticates.
    /// Reported once per run of such sessions; the socket keeps
    /// reconnecting with an escalating backoff.
    IdentityInUse {
        sessions: u32,
    },
    Joined {
        channel: ChannelId,
        topic: String,
        response: Payload,
    },
    JoinFailed {
        channel: ChannelId,
        topic: String,
        failure: JoinFailure,
        rejoin_in: Option<Duration>,
    },
    /// The channel errored (server `phx_error`, or the connection dropped); it rejoins.
    ChannelError {
        channel: ChannelId,
        topic: String,
        reason: String,
    },
    /// The channel is closed (server `phx_close`, or left); it does not rejoin.
    ChannelClosed {
        channel: ChannelId,
        topic: String,
        reason: String,
    },
    /// A server push or broadcast on a channel.
    Message {
        channel: ChannelId,
        topic: String,
        event: String,
        payload: Payload,
    },
    /// The end of a push made with `push_tracked`.
    Reply {
        channel: ChannelId,
        push: PushId,
        outcome: PushOutcome,
    },
    /// The server sent a frame that could not be decoded; it was dropped.
    ProtocolError {
        detail: String,
    },
    /// The socket was closed by the user; no event follows.
    Closed,
}

/// The text for people that goes with [`Event::IdentityInUse`] (the log
/// line, C's `reason`, Python's `reason`).
pub fn identity_in_use_reason(sessions: u32) -> String {
    format!(
        "the server closed the last {sessions} connections soon after they joined: this \
         device's identity (certificate or NH1 identifier) seems to be in use by another device"
    )
}
