//! `Control`: the in-process handle tests use to drive the server. The HTTP
//! control API is a 1:1 skin over it.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use nerves_hub_channel::codec::Frame;
use nerves_hub_channel::message::{events, Message, Payload, Reply};
use serde_json::json;

use crate::channels::lifecycle;
use crate::flood::Flood;
use crate::state::{deadline_after, ConnectionInfo, Received, Shared, State};

/// Cheap to clone; every clone drives the same server.
#[derive(Clone)]
pub struct Control {
    shared: Arc<Shared>,
}

/// Which join_ref a server push carries.
enum JoinRef<'a> {
    /// The channel's current one, as a channel `push/3` does.
    Current,
    /// A given one, e.g. a stale one.
    Given(&'a str),
    /// None: a fastlane broadcast.
    Broadcast,
}

impl Control {
    pub(crate) fn new(shared: Arc<Shared>) -> Control {
        Control { shared }
    }

    fn deliver(&self, topic: &str, event: &str, payload: Payload, join_ref: JoinRef<'_>) -> usize {
        self.shared.update(|state| {
            let mut delivered = 0;
            for conn in state.conns.values() {
                let Some(current) = conn.channels.get(topic) else {
                    continue;
                };
                let join_ref = match join_ref {
                    JoinRef::Current => current.clone(),
                    JoinRef::Given(given) => Some(given.to_owned()),
                    JoinRef::Broadcast => None,
                };
                let msg = Message {
                    join_ref,
                    msg_ref: None,
                    topic: topic.to_owned(),
                    event: event.to_owned(),
                    payload: payload.clone(),
                };
                if conn.send_message(&msg) {
                    delivered += 1;
                }
            }
            delivered
        })
    }

    /// Pushes `[join_ref, null, topic, event, payload]` to every channel joined on `topic`.
    pub async fn push(&self, topic: &str, event: &str, payload: Payload) -> usize {
        self.deliver(topic, event, payload, JoinRef::Current)
    }

    /// Like `push` but with this join_ref, for stale-join_ref tests.
    pub async fn push_with_join_ref(
        &self,
        topic: &str,
        event: &str,
        payload: Payload,
        join_ref: &str,
    ) -> usize {
        self.deliver(topic, event, payload, JoinRef::Given(join_ref))
    }

    /// Sends `[null, null, topic, event, payload]` to every channel joined on `topic`.
    pub async fn broadcast(&self, topic: &str, event: &str, payload: Payload) -> usize {
        self.deliver(topic, event, payload, JoinRef::Broadcast)
    }

    /// Starts `flood.count` messages to every channel joined on `flood.topic`
    /// and returns how many channels that is; they are sent in the background,
    /// as fast as each client reads them.
    pub async fn flood(&self, flood: Flood) -> usize {
        crate::flood::start(&self.shared, flood)
    }

    /// Everything clients sent on channels, in arrival order (heartbeats excluded).
    pub async fn received(&self) -> Vec<Received> {
        self.shared.lock().received.clone()
    }

    /// Waits until the state satisfies `check`, re-checking on every change.
    async fn wait_until<T>(
        &self,
        timeout: Duration,
        mut check: impl FnMut(&State) -> Option<T>,
    ) -> Option<T> {
        // Subscribing before the first check means no change can slip between them.
        let mut changes = self.shared.subscribe();
        let deadline = deadline_after(timeout);
        loop {
            if let Some(found) = check(&self.shared.lock()) {
                return Some(found);
            }
            match tokio::time::timeout_at(deadline, changes.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) | Err(_) => return None,
            }
        }
    }

    /// Resolves once `count` messages with this topic and event were received
    /// in total since start or reset, returning all of them.
    pub async fn wait_for(
        &self,
        topic: &str,
        event: &str,
        count: usize,
        timeout: Duration,
    ) -> Result<Vec<Received>, String> {
        // Only messages that arrived since the last check are scanned, so a
        // waiter costs little during a flood.
        let (mut found, mut scanned, mut generation) = (Vec::new(), 0, None);
        let matching = |state: &State| {
            if generation != Some(state.generation) {
                generation = Some(state.generation);
                found.clear();
                scanned = 0;
            }
            let new = state.received.get(scanned..).unwrap_or_default();
            found.extend(
                new.iter()
                    .filter(|r| r.message.topic == topic && r.message.event == event)
                    .cloned(),
            );
            scanned = state.received.len();
            (found.len() >= count).then(|| found.clone())
        };
        match self.wait_until(timeout, matching).await {
            Some(found) => Ok(found),
            None => {
                let state = self.shared.lock();
                let seen: Vec<String> = state
                    .received
                    .iter()
                    .map(|r| format!("{} {}", r.message.topic, r.message.event))
                    .collect();
                Err(format!(
                    "timed out after {timeout:?} waiting for {count} x {topic:?} {event:?}; received {} message(s): [{}]",
                    seen.len(),
                    seen.join(", ")
                ))
            }
        }
    }

    /// Resolves once `count` successful joins on `topic` happened since start or reset.
    pub async fn wait_joined(
        &self,
        topic: &str,
        count: usize,
        timeout: Duration,
    ) -> Result<(), String> {
        let joined =
            |state: &State| (state.joins.get(topic).copied().unwrap_or(0) >= count).then_some(());
        match self.wait_until(timeout, joined).await {
            Some(()) => Ok(()),
            None => {
                let state = self.shared.lock();
                let got = state.joins.get(topic).copied().unwrap_or(0);
                let mut all: Vec<String> = state
                    .joins
                    .iter()
                    .map(|(t, n)| format!("{t}: {n}"))
                    .collect();
                all.sort();
                Err(format!(
                    "timed out after {timeout:?} waiting for {count} join(s) on {topic:?}; got {got} (all joins: {{{}}})",
                    all.join(", ")
                ))
            }
        }
    }

    /// Ends every channel on `topic` with a lifecycle message and forgets it.
    fn end_channels(&self, topic: &str, event: &str, payload: Payload) -> usize {
        self.shared.update(|state| {
            let mut ended = 0;
            for conn in state.conns.values_mut() {
                if let Some(join_ref) = conn.channels.remove(topic) {
                    conn.send_message(&lifecycle(topic, &join_ref, event, payload.clone()));
                    ended += 1;
                }
            }
            ended
        })
    }

    /// `phx_error {"reason":"channel_crash"}` to every channel on `topic`, which is removed.
    pub async fn crash_channel(&self, topic: &str) -> usize {
        let payload = Payload::json(&json!({"reason": "channel_crash"}));
        self.end_channels(topic, events::ERROR, payload)
    }

    /// `phx_close {}` to every channel on `topic`, which is removed.
    pub async fn close_channel(&self, topic: &str) -> usize {
        self.end_channels(topic, events::CLOSE, Payload::empty())
    }

    /// Closes every client socket without a close frame.
    pub async fn drop_connections(&self) -> usize {
        self.shared.update(|state| {
            let conns = std::mem::take(&mut state.conns);
            for conn in conns.values() {
                conn.abort.notify_one();
            }
            conns.len()
        })
    }

    /// Sends every client a close frame with `code`; their channels are gone at once.
    pub async fn close_connections(&self, code: u16) -> usize {
        self.shared.update(|state| {
            let conns = std::mem::take(&mut state.conns);
            for conn in conns.values() {
                conn.close(code, "");
            }
            conns.len()
        })
    }

    /// `false`: heartbeats are still read but never answered.
    pub async fn set_heartbeat_replies(&self, answer: bool) {
        self.shared.update(|state| state.answer_heartbeats = answer);
    }

    fn send_raw(&self, frame: Frame) -> usize {
        self.shared.update(|state| {
            for conn in state.conns.values() {
                conn.send_frame(frame.clone());
            }
            state.conns.len()
        })
    }

    /// A raw text frame to every client, for malformed-frame tests.
    pub async fn send_raw_text(&self, text: &str) -> usize {
        self.send_raw(Frame::Text(text.to_owned()))
    }

    /// A raw binary frame to every client.
    pub async fn send_raw_binary(&self, bytes: Vec<u8>) -> usize {
        self.send_raw(Frame::Binary(bytes))
    }

    /// `Some`: joins on `topic` get this reply (joined only if its status is
    /// "ok"); `None`: back to the default ok.
    pub async fn set_join_reply(&self, topic: &str, reply: Option<Reply>) {
        self.shared.update(|state| match reply {
            Some(reply) => state.join_replies.insert(topic.to_owned(), reply),
            None => state.join_replies.remove(topic),
        });
    }

    /// The live connections, in connection order.
    pub async fn connections(&self) -> Vec<ConnectionInfo> {
        let state = self.shared.lock();
        state
            .conns
            .iter()
            .map(|(id, conn)| conn.info(*id))
            .collect()
    }

    /// The extensions the "product" has enabled (default health, geo,
    /// logging): an `extensions` join is answered with the offered ones among them.
    pub async fn set_enabled_extensions(&self, names: Vec<String>) {
        self.shared.update(|state| state.hub.extensions = names);
    }

    /// The keys sent after a `device` join that asked for them with
    /// `fwup_public_keys` / `archive_public_keys: "on_connect"`; `None` keeps the current list.
    pub async fn set_public_keys(&self, fwup: Option<Vec<String>>, archive: Option<Vec<String>>) {
        self.shared.update(|state| {
            if let Some(keys) = fwup {
                state.hub.fwup_public_keys = keys;
            }
            if let Some(keys) = archive {
                state.hub.archive_public_keys = keys;
            }
        });
    }

    /// Until when updates are blocked for this device identity (`None`:
    /// anonymous) by its last `rescheduled {delay_for}` (milliseconds, as
    /// nerves_hub_web reads it); `None` if it never rescheduled.
    pub async fn updates_blocked_until(&self, identity: Option<&str>) -> Option<SystemTime> {
        let key = identity.map(str::to_owned);
        self.shared.lock().updates_blocked_until.get(&key).copied()
    }

    /// Every identity's `updates_blocked_until` (`None`: anonymous).
    pub async fn blocked_updates(&self) -> Vec<(Option<String>, SystemTime)> {
        let state = self.shared.lock();
        let mut all: Vec<_> = state
            .updates_blocked_until
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect();
        all.sort();
        all
    }

    /// Connections closed because another one authenticated with the same
    /// identity (as NervesHub does), since start or reset.
    pub async fn kicks(&self) -> u64 {
        self.shared.lock().kicks
    }

    /// Resolves once at least `count` kicks happened since start or reset.
    pub async fn wait_kicks(&self, count: u64, timeout: Duration) -> Result<u64, String> {
        let kicked = |state: &State| (state.kicks >= count).then_some(state.kicks);
        match self.wait_until(timeout, kicked).await {
            Some(n) => Ok(n),
            None => Err(format!(
                "timed out after {timeout:?} waiting for {count} kick(s); got {}",
                self.shared.lock().kicks
            )),
        }
    }

    /// Forgets received messages and join counters, and clears every override.
    pub async fn reset(&self) {
        self.shared.update(State::reset);
    }

    /// Resolves once `done` holds for the messages received since start or
    /// reset, returning them: for waits on what messages say, not only how
    /// many came (e.g. one final `status_update` per device of a fleet).
    pub async fn wait_received(
        &self,
        timeout: Duration,
        mut done: impl FnMut(&[Received]) -> bool,
    ) -> Result<Vec<Received>, String> {
        let found = self
            .wait_until(timeout, |state| {
                done(&state.received).then(|| state.received.clone())
            })
            .await;
        found.ok_or_else(|| {
            format!(
                "timed out after {timeout:?}; received {} message(s)",
                self.shared.lock().received.len()
            )
        })
    }
}
