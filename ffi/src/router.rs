//! Turns a socket's ordered event stream into calls of the C closures.
//!
//! One router per socket. It is fed by exactly one consumer at a time (the
//! dispatcher thread, or `nhc_socket_dispatch`), so calls never overlap.
//! Closures are looked up under the lock and called without it, so a
//! callback may call any `nhc_` function. Removing a closure from another
//! thread waits for a running callback of the socket to return, which is
//! what lets `_free` promise that no callback runs once it has returned.

use std::collections::HashMap;
use std::ffi::{CStr, CString};
use std::sync::{Arc, MutexGuard};

use nerves_hub_channel::{ChannelId, Error, Event, JoinFailure, PushId, PushOutcome};

use crate::closure::{
    nhc_event_closure, nhc_join_closure, nhc_reply_closure, nhc_state_closure, Owned,
};
use crate::cstring::to_cstring;
use crate::ctext::CText;
use crate::error::{code_of, Failure, FfiResult};
use crate::gate::{Gate, Gated};
use crate::handle::Route;
use crate::nhc_result::{self, NHC_OK};
use crate::types::*;

type Shared<C> = Arc<Owned<C>>;

/// Event names shorter than this reach callbacks from the stack.
const EVENT_NAME_INLINE: usize = 128;

/// Topics are shared, not copied, with each event: one per message adds up.
type Topic = Arc<CStr>;

struct ChannelRoutes {
    topic: Topic,
    join: Option<Shared<nhc_join_closure>>,
    event: Option<Shared<nhc_event_closure>>,
    /// A join was asked for and the channel has not closed since.
    wanted: bool,
    joined: bool,
}

struct PendingReply {
    topic: Topic,
    closure: Owned<nhc_reply_closure>,
}

/// The socket's closures, behind the router's gate.
#[derive(Default)]
struct Inner {
    state: Option<Shared<nhc_state_closure>>,
    channels: HashMap<ChannelId, ChannelRoutes>,
    replies: HashMap<PushId, PendingReply>,
}

/// Closures taken out of the router; dropped (their `drop` called) by the
/// caller after the lock is released.
#[derive(Default)]
pub(crate) struct Removed {
    _state: Option<Shared<nhc_state_closure>>,
    _channels: Vec<ChannelRoutes>,
    _replies: Vec<PendingReply>,
    _join: Option<Shared<nhc_join_closure>>,
    _event: Option<Shared<nhc_event_closure>>,
}

pub(crate) struct Router {
    gate: Gate<Inner>,
}

enum Slot {
    Join,
    Event,
}

impl Router {
    pub fn new(state: Option<Owned<nhc_state_closure>>) -> Arc<Router> {
        Arc::new(Router {
            gate: Gate::new(Inner {
                state: state.map(Arc::new),
                ..Inner::default()
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Gated<Inner>> {
        self.gate.lock()
    }

    fn wait_idle<'a>(&'a self, g: MutexGuard<'a, Gated<Inner>>) -> MutexGuard<'a, Gated<Inner>> {
        self.gate.wait_idle(g)
    }

    pub fn ended(&self) -> bool {
        self.gate.ended()
    }

    pub fn is_closed(&self) -> bool {
        self.gate.is_closed()
    }

    /// Stops every callback and takes every closure out, for the socket's free.
    pub fn close(&self) -> Removed {
        self.gate.close(|g| Removed {
            _state: g.state.take(),
            _channels: g.channels.drain().map(|(_, c)| c).collect(),
            _replies: g.replies.drain().map(|(_, r)| r).collect(),
            ..Removed::default()
        })
    }

    fn closed_error() -> Failure {
        Failure::Core(Error::Closed("the socket was freed".into()))
    }

    pub fn add_channel(&self, id: ChannelId, topic: &str) -> FfiResult {
        let mut g = self.lock();
        if g.closed {
            return Err(Self::closed_error());
        }
        g.channels.insert(
            id,
            ChannelRoutes {
                topic: Topic::from(to_cstring(topic)),
                join: None,
                event: None,
                wanted: false,
                joined: false,
            },
        );
        Ok(())
    }

    pub fn remove_channel(&self, id: ChannelId) -> Removed {
        let g = self.lock();
        let mut g = self.wait_idle(g);
        Removed {
            _channels: g.channels.remove(&id).into_iter().collect(),
            ..Removed::default()
        }
    }

    pub fn set_join(&self, id: ChannelId, closure: Owned<nhc_join_closure>) -> FfiResult<Removed> {
        self.replace(id, Slot::Join, Some(Arc::new(closure)), None)
    }

    pub fn set_event(
        &self,
        id: ChannelId,
        closure: Owned<nhc_event_closure>,
    ) -> FfiResult<Removed> {
        self.replace(id, Slot::Event, None, Some(Arc::new(closure)))
    }

    fn replace(
        &self,
        id: ChannelId,
        slot: Slot,
        join: Option<Shared<nhc_join_closure>>,
        event: Option<Shared<nhc_event_closure>>,
    ) -> FfiResult<Removed> {
        let g = self.lock();
        let mut g = self.wait_idle(g);
        let closed = g.closed;
        let Some(routes) = g.channels.get_mut(&id).filter(|_| !closed) else {
            drop(g);
            drop((join, event));
            return Err(Self::closed_error());
        };
        let mut removed = Removed::default();
        match slot {
            Slot::Join => removed._join = std::mem::replace(&mut routes.join, join),
            Slot::Event => removed._event = std::mem::replace(&mut routes.event, event),
        }
        Ok(removed)
    }

    pub fn join_requested(&self, id: ChannelId) {
        if let Some(ch) = self.lock().channels.get_mut(&id) {
            ch.wanted = true;
        }
    }

    /// Runs `push` (which hands a tracked push to the core) under the lock,
    /// so its reply cannot be routed before the closure is registered.
    pub fn track_reply(
        &self,
        id: ChannelId,
        closure: Owned<nhc_reply_closure>,
        push: impl FnOnce() -> FfiResult<PushId>,
    ) -> FfiResult<PushId> {
        let mut g = self.lock();
        let outcome = if g.closed {
            Err(Self::closed_error())
        } else {
            push()
        };
        match outcome {
            Ok(push_id) => {
                let topic = g
                    .channels
                    .get(&id)
                    .map(|c| c.topic.clone())
                    .unwrap_or_else(|| Topic::from(c""));
                g.replies.insert(push_id, PendingReply { topic, closure });
                Ok(push_id)
            }
            Err(e) => {
                // The closure's drop is user code: never under our lock.
                drop(g);
                drop(closure);
                Err(e)
            }
        }
    }

    /// Delivers one event. Called by the socket's single consumer.
    pub fn route(&self, event: Event) {
        let last = matches!(event, Event::Closed);
        let Some((_in_call, ())) = self.gate.enter(last, |_| ()) else {
            return;
        };
        self.deliver(event);
    }

    fn deliver(&self, event: Event) {
        match event {
            Event::Connecting { attempt } => {
                self.state(nhc_state::NHC_STATE_CONNECTING, None, None, attempt)
            }
            Event::Connected => self.state(nhc_state::NHC_STATE_CONNECTED, None, None, 0),
            Event::Disconnected {
                reason,
                reconnect_in,
            } => self.state(
                nhc_state::NHC_STATE_DISCONNECTED,
                Some(&reason),
                reconnect_in,
                0,
            ),
            Event::AuthError {
                error,
                reconnect_in,
            } => self.state(
                nhc_state::NHC_STATE_AUTH_ERROR,
                Some(&error),
                reconnect_in,
                0,
            ),
            // A NervesHub notion with no place in the plain socket's state
            // callback: the socket has logged it (and device handles get it
            // as NHC_DEVICE_EVENT_IDENTITY_IN_USE).
            Event::IdentityInUse { .. } => {}
            Event::ProtocolError { detail } => {
                let error = Error::Protocol(detail);
                self.state(nhc_state::NHC_STATE_PROTOCOL_ERROR, Some(&error), None, 0)
            }
            Event::Joined {
                channel, response, ..
            } => {
                self.flags(channel, |c| c.joined = true);
                let buf = PayloadBuf::new(Some(&response));
                self.join(channel, nhc_join_status::NHC_JOIN_OK, buf, "", None);
            }
            Event::JoinFailed {
                channel,
                failure,
                rejoin_in,
                ..
            } => {
                self.flags(channel, |c| c.joined = false);
                match &failure {
                    JoinFailure::Refused(response) => {
                        let buf = PayloadBuf::new(Some(response));
                        let reason = "the server refused the join";
                        self.join(
                            channel,
                            nhc_join_status::NHC_JOIN_REFUSED,
                            buf,
                            reason,
                            rejoin_in,
                        );
                    }
                    JoinFailure::Timeout => {
                        let buf = PayloadBuf::new(None);
                        let reason = "no reply to the join within its timeout";
                        self.join(
                            channel,
                            nhc_join_status::NHC_JOIN_TIMEOUT,
                            buf,
                            reason,
                            rejoin_in,
                        );
                    }
                    JoinFailure::Closed(e) => {
                        let buf = PayloadBuf::new(None);
                        let reason = e.to_string();
                        self.join(
                            channel,
                            nhc_join_status::NHC_JOIN_CLOSED,
                            buf,
                            &reason,
                            rejoin_in,
                        );
                    }
                }
            }
            Event::ChannelError {
                channel, reason, ..
            } => {
                self.flags(channel, |c| c.joined = false);
                self.notify(
                    channel,
                    nhc_event_kind::NHC_EVENT_CHANNEL_ERROR,
                    &reason,
                    NHC_OK,
                    0,
                );
            }
            Event::ChannelClosed {
                channel, reason, ..
            } => self.channel_closed(channel, &reason),
            Event::Message {
                channel,
                event,
                payload,
                ..
            } => self.message(channel, &event, &payload),
            Event::Reply {
                channel,
                push,
                outcome,
            } => self.reply(channel, push, outcome),
            Event::Closed => {
                let open: Vec<ChannelId> = {
                    let g = self.lock();
                    g.channels
                        .iter()
                        .filter(|(_, c)| c.wanted)
                        .map(|(id, _)| *id)
                        .collect()
                };
                for id in open {
                    self.channel_closed(id, "socket closed");
                }
                self.state(nhc_state::NHC_STATE_CLOSED, None, None, 0);
                self.gate.set_ended();
            }
        }
    }

    fn flags(&self, id: ChannelId, f: impl FnOnce(&mut ChannelRoutes)) {
        if let Some(ch) = self.lock().channels.get_mut(&id) {
            f(ch);
        }
    }

    fn state(
        &self,
        state: nhc_state,
        error: Option<&Error>,
        reconnect_in: Option<std::time::Duration>,
        attempt: u32,
    ) {
        let Some(closure) = self.resolve(|g| g.state.clone()) else {
            return;
        };
        let reason = to_cstring(&error.map(Error::to_string).unwrap_or_default());
        let event = nhc_state_event {
            state,
            error: error.map_or(NHC_OK, code_of),
            reason: reason.as_ptr(),
            reconnect_in_ms: if error.is_some() {
                ms_or_minus_one(reconnect_in)
            } else {
                -1
            },
            attempt,
        };
        closure.call(&event);
    }

    /// Clones a closure out under the lock, unless the socket was freed
    /// (possibly by the callback that just returned).
    fn resolve<T>(&self, f: impl FnOnce(&mut Inner) -> Option<T>) -> Option<T> {
        let mut g = self.lock();
        if g.closed {
            return None;
        }
        f(&mut g)
    }

    fn join(
        &self,
        id: ChannelId,
        status: nhc_join_status,
        response: PayloadBuf<'_>,
        reason: &str,
        rejoin_in: Option<std::time::Duration>,
    ) {
        let Some((closure, topic)) = self.resolve(|g| {
            let ch = g.channels.get(&id)?;
            Some((ch.join.clone()?, ch.topic.clone()))
        }) else {
            return;
        };
        let reason = to_cstring(reason);
        let event = nhc_join_event {
            status,
            topic: topic.as_ptr(),
            response: response.view(),
            reason: reason.as_ptr(),
            rejoin_in_ms: ms_or_minus_one(rejoin_in),
        };
        closure.call(&event);
    }

    fn event_closure(&self, id: ChannelId) -> Option<(Shared<nhc_event_closure>, Topic)> {
        self.resolve(|g| {
            let ch = g.channels.get(&id)?;
            Some((ch.event.clone()?, ch.topic.clone()))
        })
    }

    fn message(&self, id: ChannelId, name: &str, payload: &nerves_hub_channel::Payload) {
        let Some((closure, topic)) = self.event_closure(id) else {
            return;
        };
        let name = CText::<EVENT_NAME_INLINE>::new(name);
        let buf = PayloadBuf::new(Some(payload));
        let event = nhc_event {
            kind: nhc_event_kind::NHC_EVENT_MESSAGE,
            topic: topic.as_ptr(),
            event: name.as_ptr(),
            payload: buf.view(),
            reason: c"".as_ptr(),
            error: NHC_OK,
            push_id: 0,
        };
        closure.call(&event);
    }

    fn notify(
        &self,
        id: ChannelId,
        kind: nhc_event_kind,
        reason: &str,
        error: nhc_result,
        push_id: u64,
    ) {
        let Some((closure, topic)) = self.event_closure(id) else {
            return;
        };
        let reason = to_cstring(reason);
        let empty = CString::default();
        let buf = PayloadBuf::new(None);
        let event = nhc_event {
            kind,
            topic: topic.as_ptr(),
            event: empty.as_ptr(),
            payload: buf.view(),
            reason: reason.as_ptr(),
            error,
            push_id,
        };
        closure.call(&event);
    }

    fn channel_closed(&self, id: ChannelId, reason: &str) {
        let pending_join = {
            let mut g = self.lock();
            match g.channels.get_mut(&id) {
                Some(ch) => {
                    let pending = ch.wanted && !ch.joined;
                    ch.wanted = false;
                    ch.joined = false;
                    pending
                }
                None => false,
            }
        };
        if pending_join {
            let buf = PayloadBuf::new(None);
            let why = format!("channel closed before the join completed ({reason})");
            self.join(id, nhc_join_status::NHC_JOIN_CLOSED, buf, &why, None);
        }
        self.notify(
            id,
            nhc_event_kind::NHC_EVENT_CHANNEL_CLOSED,
            reason,
            NHC_OK,
            0,
        );
    }

    fn reply(&self, channel: ChannelId, push: PushId, outcome: PushOutcome) {
        let Some(pending) = self.resolve(|g| Some(g.replies.remove(&push))) else {
            return;
        };
        let Some(pending) = pending else {
            // No reply closure: a cast. Only its failures arrive here.
            let (error, reason) = match &outcome {
                PushOutcome::Ok(_) | PushOutcome::Error { .. } => return,
                PushOutcome::Timeout => (
                    nhc_result::NHC_ERR_TIMEOUT,
                    "the cast could not be sent before its timeout".to_owned(),
                ),
                PushOutcome::NotSent(e) => (code_of(e), e.to_string()),
            };
            self.notify(
                channel,
                nhc_event_kind::NHC_EVENT_CAST_FAILED,
                &reason,
                error,
                push,
            );
            return;
        };
        let empty = String::new();
        let (status, status_text, response, error, reason) = match &outcome {
            PushOutcome::Ok(p) => (nhc_reply_status::NHC_REPLY_OK, "ok", Some(p), NHC_OK, empty),
            PushOutcome::Error { status, response } => (
                nhc_reply_status::NHC_REPLY_ERROR,
                status.as_str(),
                Some(response),
                NHC_OK,
                empty,
            ),
            PushOutcome::Timeout => (
                nhc_reply_status::NHC_REPLY_TIMEOUT,
                "",
                None,
                nhc_result::NHC_ERR_TIMEOUT,
                "no reply within the push's timeout".to_owned(),
            ),
            PushOutcome::NotSent(e) => (
                nhc_reply_status::NHC_REPLY_NOT_SENT,
                "",
                None,
                code_of(e),
                e.to_string(),
            ),
        };
        let status_text = to_cstring(status_text);
        let reason = to_cstring(&reason);
        let buf = PayloadBuf::new(response);
        let reply = nhc_reply {
            status,
            push_id: push,
            topic: pending.topic.as_ptr(),
            status_text: status_text.as_ptr(),
            response: buf.view(),
            error,
            reason: reason.as_ptr(),
        };
        pending.closure.call(&reply);
        // `pending` (and the closure's drop) goes before the router is idle again.
        drop(pending);
    }
}

impl Route<Event> for Router {
    type Removed = Removed;
    fn route(&self, event: Event) {
        Router::route(self, event)
    }
    fn ended(&self) -> bool {
        Router::ended(self)
    }
    fn is_closed(&self) -> bool {
        Router::is_closed(self)
    }
    fn close(&self) -> Removed {
        Router::close(self)
    }
}
