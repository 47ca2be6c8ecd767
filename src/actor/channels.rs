//! The channel state machine: join, rejoin, leave, and routing of inbound messages.

use std::collections::VecDeque;
use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::time::Instant;

use super::{Actor, JoinWaiter};
use crate::channel::{ChannelState as PublicState, StateCell};
use crate::error::Error;
use crate::event::{ChannelId, Event, JoinFailure, PushId, PushOutcome};
use crate::message::{events, Message, Payload, Reply};

/// Join parameters: fixed, or computed at every (re)join because device
/// metadata changes between connections.
#[derive(Clone)]
pub enum JoinParams {
    Static(Payload),
    Dynamic(Arc<dyn Fn() -> Payload + Send + Sync>),
}

impl JoinParams {
    fn evaluate(&self) -> Payload {
        match self {
            JoinParams::Static(p) => p.clone(),
            JoinParams::Dynamic(f) => f(),
        }
    }
}

impl fmt::Debug for JoinParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JoinParams::Static(p) => f.debug_tuple("Static").field(p).finish(),
            JoinParams::Dynamic(_) => f.write_str("Dynamic(..)"),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Phase {
    /// Wants to be joined; waits for a connection or its rejoin timer.
    Errored,
    Joining,
    Joined,
    Leaving,
}

pub(super) struct ChannelState {
    pub topic: String,
    params: JoinParams,
    phase: Phase,
    /// Mirrors `phase` for the handles' `Channel::state()`.
    public: StateCell,
    pub join_ref: Option<String>,
    join_timeout: Duration,
    join_deadline: Option<Instant>,
    rejoin_at: Option<Instant>,
    /// Ref and deadline of our phx_leave.
    leave: Option<(String, Instant)>,
    leave_waiters: Vec<oneshot::Sender<()>>,
    join_waiters: Vec<JoinWaiter>,
    /// Pushes waiting for the join, in order.
    pub buffer: VecDeque<PushId>,
}

impl ChannelState {
    pub fn phase(&self) -> Phase {
        self.phase
    }

    fn set_phase(&mut self, phase: Phase) {
        self.phase = phase;
        let public = match phase {
            Phase::Errored => PublicState::Errored,
            Phase::Joining => PublicState::Joining,
            Phase::Joined => PublicState::Joined,
            Phase::Leaving => PublicState::Leaving,
        };
        self.public.store(public as u8, Ordering::Release);
    }

    pub fn mark_closed(&self) {
        self.public
            .store(PublicState::Closed as u8, Ordering::Release);
    }

    pub fn next_deadline(&self) -> Option<Instant> {
        [
            self.join_deadline,
            self.rejoin_at,
            self.leave.as_ref().map(|l| l.1),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    pub fn fail_waiters(&mut self, failure: JoinFailure) {
        for waiter in self.join_waiters.drain(..) {
            let _ = waiter.send(Err(failure.clone()));
        }
        for waiter in self.leave_waiters.drain(..) {
            let _ = waiter.send(());
        }
    }

    /// Whether an inbound message with this join_ref belongs to the current join.
    fn is_member(&self, join_ref: Option<&str>) -> bool {
        match join_ref {
            Some(r) => self.join_ref.as_deref() == Some(r),
            None => self.phase == Phase::Joined,
        }
    }
}

impl Actor {
    pub(super) async fn join(
        &mut self,
        id: ChannelId,
        topic: String,
        params: JoinParams,
        state: StateCell,
        timeout: Duration,
        waiter: Option<JoinWaiter>,
    ) {
        let ch = self.channels.entry(id).or_insert_with(|| {
            Box::new(ChannelState {
                topic,
                params: params.clone(),
                phase: Phase::Errored,
                public: state,
                join_ref: None,
                join_timeout: timeout,
                join_deadline: None,
                rejoin_at: None,
                leave: None,
                leave_waiters: Vec::new(),
                join_waiters: Vec::new(),
                buffer: VecDeque::new(),
            })
        });
        ch.params = params;
        ch.join_timeout = timeout;
        if ch.phase == Phase::Errored {
            ch.set_phase(Phase::Errored);
        }
        ch.join_waiters.extend(waiter);
        if ch.phase == Phase::Joined {
            // Already joined: answer at once with an empty response.
            for w in ch.join_waiters.drain(..) {
                let _ = w.send(Ok(Payload::empty()));
            }
            return;
        }
        if ch.phase == Phase::Errored && self.ws.is_some() {
            self.send_join(id).await;
        }
    }

    async fn send_join(&mut self, id: ChannelId) {
        let r = self.make_ref();
        let Some(ch) = self.channels.get_mut(&id) else {
            return;
        };
        ch.set_phase(Phase::Joining);
        ch.join_ref = Some(r.clone());
        ch.join_deadline = Some(Instant::now() + ch.join_timeout);
        ch.rejoin_at = None;
        let msg = Message {
            join_ref: Some(r.clone()),
            msg_ref: Some(r),
            topic: ch.topic.clone(),
            event: events::JOIN.into(),
            payload: ch.params.evaluate(),
        };
        self.send(&msg).await;
    }

    /// After a connection is made: join every channel that wants to be joined.
    /// Returns whether there was any.
    pub(super) async fn rejoin_all(&mut self) -> bool {
        let ids: Vec<ChannelId> = self
            .channels
            .iter()
            .filter(|(_, ch)| ch.phase == Phase::Errored)
            .map(|(id, _)| *id)
            .collect();
        for id in &ids {
            self.send_join(*id).await;
        }
        !ids.is_empty()
    }

    /// The connection is gone: every live channel errors and waits for the next one.
    pub(super) fn error_channels(&mut self, reason: &str) {
        let mut errored = Vec::new();
        let mut left = Vec::new();
        for (id, ch) in self.channels.iter_mut() {
            ch.join_deadline = None;
            ch.rejoin_at = None;
            match ch.phase {
                Phase::Joined | Phase::Joining => {
                    ch.set_phase(Phase::Errored);
                    errored.push(Event::ChannelError {
                        channel: *id,
                        topic: ch.topic.clone(),
                        reason: reason.to_owned(),
                    });
                }
                Phase::Leaving => left.push(*id),
                Phase::Errored => {}
            }
        }
        for event in errored {
            self.emit(event);
        }
        for id in left {
            self.close_channel(id, "left");
        }
    }

    pub(super) async fn leave(
        &mut self,
        id: ChannelId,
        timeout: Duration,
        waiter: Option<oneshot::Sender<()>>,
    ) {
        let connected = self.ws.is_some();
        let r = self.make_ref();
        let Some(ch) = self.channels.get_mut(&id) else {
            if let Some(w) = waiter {
                let _ = w.send(());
            }
            return;
        };
        ch.leave_waiters.extend(waiter);
        match ch.phase {
            Phase::Joined | Phase::Joining if connected => {
                ch.set_phase(Phase::Leaving);
                ch.join_deadline = None;
                ch.leave = Some((r.clone(), Instant::now() + timeout));
                let msg = Message {
                    join_ref: ch.join_ref.clone(),
                    msg_ref: Some(r),
                    topic: ch.topic.clone(),
                    event: events::LEAVE.into(),
                    payload: Payload::empty(),
                };
                self.send(&msg).await;
            }
            Phase::Leaving => {}
            _ => self.close_channel(id, "left"),
        }
    }

    /// Removes a channel for good: buffered pushes and waiters fail, no rejoin.
    fn close_channel(&mut self, id: ChannelId, reason: &str) {
        let Some(mut ch) = self.channels.remove(&id) else {
            return;
        };
        ch.mark_closed();
        let topic = ch.topic.clone();
        let why = || Error::Closed(format!("channel {topic} closed ({reason})"));
        ch.fail_waiters(JoinFailure::Closed(why()));
        let buffered: Vec<PushId> = ch.buffer.drain(..).collect();
        for push in buffered {
            self.finish_push(push, PushOutcome::NotSent(why()));
        }
        self.emit(Event::ChannelClosed {
            channel: id,
            topic: topic.clone(),
            reason: reason.to_owned(),
        });
    }

    fn schedule_rejoin(&mut self, id: ChannelId) -> Option<Duration> {
        let after = self.config.rejoin_after;
        let ch = self.channels.get_mut(&id)?;
        ch.set_phase(Phase::Errored);
        ch.join_deadline = None;
        ch.rejoin_at = Some(Instant::now() + after);
        Some(after)
    }

    pub(super) async fn channel_timers(&mut self, now: Instant) {
        let mut join_timeouts = Vec::new();
        let mut rejoins = Vec::new();
        let mut leaves = Vec::new();
        for (id, ch) in &self.channels {
            if ch.join_deadline.is_some_and(|at| at <= now) {
                join_timeouts.push(*id);
            }
            if ch.rejoin_at.is_some_and(|at| at <= now) {
                rejoins.push(*id);
            }
            if ch.leave.as_ref().is_some_and(|l| l.1 <= now) {
                leaves.push(*id);
            }
        }
        for id in join_timeouts {
            self.join_timed_out(id).await;
        }
        for id in rejoins {
            if let Some(ch) = self.channels.get_mut(&id) {
                ch.rejoin_at = None;
            }
            if self.ws.is_some() {
                self.send_join(id).await;
            }
        }
        for id in leaves {
            self.close_channel(id, "left");
        }
    }

    async fn join_timed_out(&mut self, id: ChannelId) {
        let Some(ch) = self.channels.get(&id) else {
            return;
        };
        // The server may still join late: tell it to forget this attempt.
        let msg = Message {
            join_ref: ch.join_ref.clone(),
            msg_ref: Some(self.next_ref.wrapping_add(1).to_string()),
            topic: ch.topic.clone(),
            event: events::LEAVE.into(),
            payload: Payload::empty(),
        };
        self.next_ref = self.next_ref.wrapping_add(1);
        self.send(&msg).await;
        self.join_failed(id, JoinFailure::Timeout);
    }

    fn join_failed(&mut self, id: ChannelId, failure: JoinFailure) {
        let rejoin_in = self.schedule_rejoin(id);
        let Some(ch) = self.channels.get_mut(&id) else {
            return;
        };
        ch.join_ref = None;
        for waiter in ch.join_waiters.drain(..) {
            let _ = waiter.send(Err(failure.clone()));
        }
        let topic = ch.topic.clone();
        self.emit(Event::JoinFailed {
            channel: id,
            topic,
            failure,
            rejoin_in,
        });
    }

    pub(super) async fn on_reply(&mut self, msg_ref: String, topic: String, reply: Reply) {
        let joining = self.channels.iter().find(|(_, ch)| {
            ch.phase == Phase::Joining && ch.join_ref.as_deref() == Some(msg_ref.as_str())
        });
        if let Some((&id, _)) = joining {
            if reply.is_ok() {
                self.joined(id, reply.response).await;
            } else {
                self.join_failed(id, JoinFailure::Refused(reply.response));
            }
            return;
        }
        let leaving = self
            .channels
            .iter()
            .find(|(_, ch)| ch.leave.as_ref().is_some_and(|(r, _)| *r == msg_ref));
        if let Some((&id, _)) = leaving {
            self.close_channel(id, "left");
            return;
        }
        if let Some(push) = self.inflight.remove(&msg_ref) {
            let outcome = if reply.is_ok() {
                PushOutcome::Ok(reply.response)
            } else {
                PushOutcome::Error {
                    status: reply.status,
                    response: reply.response,
                }
            };
            self.finish_push(push, outcome);
            return;
        }
        log::debug!("reply to unknown ref {msg_ref} on {topic} dropped");
    }

    async fn joined(&mut self, id: ChannelId, response: Payload) {
        self.session_joined();
        let Some(ch) = self.channels.get_mut(&id) else {
            return;
        };
        ch.set_phase(Phase::Joined);
        ch.join_deadline = None;
        ch.rejoin_at = None;
        for waiter in ch.join_waiters.drain(..) {
            let _ = waiter.send(Ok(response.clone()));
        }
        let topic = ch.topic.clone();
        let buffered: Vec<PushId> = ch.buffer.drain(..).collect();
        self.emit(Event::Joined {
            channel: id,
            topic,
            response,
        });
        for push in buffered {
            self.send_push(push).await;
        }
    }

    pub(super) async fn on_message(&mut self, msg: Message) {
        if msg.event != events::ERROR && msg.event != events::CLOSE {
            self.deliver(msg);
            return;
        }
        let members: Vec<ChannelId> = self
            .channels
            .iter()
            .filter(|(_, ch)| ch.topic == msg.topic && ch.is_member(msg.join_ref.as_deref()))
            .map(|(id, _)| *id)
            .collect();
        if members.is_empty() {
            log::debug!(
                "message {} on {} for no current channel dropped",
                msg.event,
                msg.topic
            );
            return;
        }
        match msg.event.as_str() {
            events::ERROR => {
                for id in members {
                    if self
                        .channels
                        .get(&id)
                        .is_some_and(|ch| ch.phase == Phase::Leaving)
                    {
                        self.close_channel(id, "left");
                        continue;
                    }
                    let reason = msg
                        .payload
                        .to_value()
                        .and_then(|v| v.get("reason").and_then(|r| r.as_str()).map(str::to_owned))
                        .unwrap_or_else(|| "phx_error".to_owned());
                    self.schedule_rejoin(id);
                    let topic = msg.topic.clone();
                    self.emit(Event::ChannelError {
                        channel: id,
                        topic,
                        reason,
                    });
                }
            }
            events::CLOSE => {
                for id in members {
                    let leaving = self
                        .channels
                        .get(&id)
                        .is_some_and(|ch| ch.phase == Phase::Leaving);
                    if !leaving && self.config.rejoin_after_close {
                        self.schedule_rejoin(id);
                        let topic = msg.topic.clone();
                        let reason = "phx_close".to_owned();
                        self.emit(Event::ChannelError {
                            channel: id,
                            topic,
                            reason,
                        });
                    } else {
                        self.close_channel(id, if leaving { "left" } else { "phx_close" });
                    }
                }
            }
            _ => {}
        }
    }

    /// Emits a server push or broadcast to every member channel (usually
    /// one, which gets the message itself rather than a copy).
    fn deliver(&self, msg: Message) {
        let Message {
            join_ref,
            topic,
            event,
            payload,
            ..
        } = msg;
        let mut members = self
            .channels
            .iter()
            .filter(|(_, ch)| ch.topic == topic && ch.is_member(join_ref.as_deref()))
            .map(|(id, _)| *id);
        let Some(mut id) = members.next() else {
            log::debug!("message {event} on {topic} for no current channel dropped");
            return;
        };
        for next in members {
            self.emit(Event::Message {
                channel: id,
                topic: topic.clone(),
                event: event.clone(),
                payload: payload.clone(),
            });
            id = next;
        }
        self.emit(Event::Message {
            channel: id,
            topic,
            event,
            payload,
        });
    }
}
