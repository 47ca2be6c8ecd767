//! Routing: one event of the socket's stream to the Python callbacks it
//! concerns. Every function takes what it needs out of the lock, releases
//! it, then calls Python.

use std::panic::{catch_unwind, AssertUnwindSafe};

use nerves_hub_channel::{ChannelId, Event, JoinFailure, Payload, PushId, PushOutcome};
use pyo3::prelude::*;

use super::{call, Callback, ChannelRoutes, Router};
use crate::convert;
use crate::errors;
use crate::logging;
use crate::outcomes;
use crate::state::StateChange;

impl Router {
    /// Delivers one event. Never raises: failures go to logging.
    pub fn route(&self, py: Python<'_>, event: Event) {
        let outcome = catch_unwind(AssertUnwindSafe(|| self.route_inner(py, event)));
        match outcome {
            Ok(Ok(())) => {}
            Ok(Err(e)) => logging::exception(py, "delivering an event failed", &e),
            Err(_) => log::error!("delivering an event panicked; the event was dropped"),
        }
    }

    fn route_inner(&self, py: Python<'_>, event: Event) -> PyResult<()> {
        match event {
            Event::Message {
                channel,
                event,
                payload,
                ..
            } => self.message(py, channel, &event, &payload),
            Event::Joined {
                channel, response, ..
            } => self.joined(py, channel, response),
            Event::JoinFailed {
                channel, failure, ..
            } => self.join_failed(py, channel, &failure),
            Event::ChannelError {
                channel, reason, ..
            } => {
                let handler = self.with_channel(py, channel, |ch| ch.joined = false);
                if let Some((topic, h)) = handler {
                    call(py, &h, ("errored", reason), || {
                        format!("on_state handler of {topic}")
                    });
                }
                Ok(())
            }
            Event::ChannelClosed {
                channel, reason, ..
            } => self.channel_closed(py, channel, &reason),
            Event::Reply {
                channel,
                push,
                outcome,
            } => self.reply(py, channel, push, outcome),
            other => self.socket_state(py, &other),
        }
    }

    /// Applies `f` to the channel and returns its topic and state handler.
    fn with_channel(
        &self,
        py: Python<'_>,
        id: ChannelId,
        f: impl FnOnce(&mut ChannelRoutes),
    ) -> Option<(String, Callback)> {
        let mut r = self.lock();
        let ch = r.channels.get_mut(&id)?;
        f(ch);
        let h = ch.on_state.as_ref()?.clone_ref(py);
        Some((ch.topic.clone(), h))
    }

    fn message(
        &self,
        py: Python<'_>,
        id: ChannelId,
        event: &str,
        payload: &Payload,
    ) -> PyResult<()> {
        let handlers: Vec<(bool, Callback)> = {
            let r = self.lock();
            let Some(ch) = r.channels.get(&id) else {
                return Ok(());
            };
            ch.handlers
                .iter()
                .filter(|(e, _)| e == event || e == "*")
                .map(|(e, h)| (e == "*", h.clone_ref(py)))
                .collect()
        };
        if handlers.is_empty() {
            return Ok(());
        }
        let value = convert::to_python(py, payload)?;
        for (wildcard, h) in &handlers {
            // The topic only for a handler that raised: not copied per message.
            let what = || format!("handler of {event:?} on {}", self.topic(id));
            if *wildcard {
                call(py, h, (event, value.clone_ref(py)), what);
            } else {
                call(py, h, (value.clone_ref(py),), what);
            }
        }
        Ok(())
    }

    /// The channel's topic, for messages ("?" once it is gone).
    fn topic(&self, id: ChannelId) -> String {
        self.lock()
            .channels
            .get(&id)
            .map_or_else(|| "?".to_owned(), |ch| ch.topic.clone())
    }

    fn joined(&self, py: Python<'_>, id: ChannelId, response: Payload) -> PyResult<()> {
        let (topic, waiters, handler) = {
            let mut r = self.lock();
            let Some(ch) = r.channels.get_mut(&id) else {
                return Ok(());
            };
            ch.joined = true;
            ch.last_response = Some(response.clone());
            let h = ch.on_state.as_ref().map(|h| h.clone_ref(py));
            (ch.topic.clone(), std::mem::take(&mut ch.join_waiters), h)
        };
        let value = convert::to_python(py, &response)?;
        for w in &waiters {
            call(py, w, (true, value.clone_ref(py)), || {
                format!("join waiter of {topic}")
            });
        }
        if let Some(h) = handler {
            call(py, &h, ("joined", value), || {
                format!("on_state handler of {topic}")
            });
        }
        Ok(())
    }

    fn join_failed(&self, py: Python<'_>, id: ChannelId, failure: &JoinFailure) -> PyResult<()> {
        let (topic, waiters, handler) = {
            let mut r = self.lock();
            let Some(ch) = r.channels.get_mut(&id) else {
                return Ok(());
            };
            ch.joined = false;
            let h = ch.on_state.as_ref().map(|h| h.clone_ref(py));
            (ch.topic.clone(), std::mem::take(&mut ch.join_waiters), h)
        };
        let exc = outcomes::join_error(py, &topic, failure)?.unbind();
        for w in &waiters {
            call(py, w, (false, exc.clone_ref(py)), || {
                format!("join waiter of {topic}")
            });
        }
        if let Some(h) = handler {
            call(py, &h, ("join_failed", exc), || {
                format!("on_state handler of {topic}")
            });
        }
        Ok(())
    }

    fn channel_closed(&self, py: Python<'_>, id: ChannelId, reason: &str) -> PyResult<()> {
        let (topic, joins, leaves, handler, removed) = {
            let mut r = self.lock();
            let Some(ch) = r.channels.get_mut(&id) else {
                return Ok(());
            };
            ch.live = false;
            ch.joined = false;
            let h = ch.on_state.as_ref().map(|h| h.clone_ref(py));
            let out = (
                ch.topic.clone(),
                std::mem::take(&mut ch.join_waiters),
                std::mem::take(&mut ch.leave_waiters),
                h,
            );
            let removed = if ch.orphan {
                r.channels.remove(&id)
            } else {
                None
            };
            (out.0, out.1, out.2, out.3, removed)
        };
        if !joins.is_empty() {
            let err =
                nerves_hub_channel::Error::Closed(format!("channel {topic} closed ({reason})"));
            let exc = errors::exception(py, &err)?.unbind();
            for w in &joins {
                call(py, w, (false, exc.clone_ref(py)), || {
                    format!("join waiter of {topic}")
                });
            }
        }
        for w in &leaves {
            call(py, w, (true, py.None()), || {
                format!("leave waiter of {topic}")
            });
        }
        if let Some(h) = handler {
            call(py, &h, ("closed", reason), || {
                format!("on_state handler of {topic}")
            });
        }
        drop(removed);
        Ok(())
    }

    fn reply(
        &self,
        py: Python<'_>,
        channel: ChannelId,
        push: PushId,
        outcome: PushOutcome,
    ) -> PyResult<()> {
        let (waiter, topic) = {
            let mut r = self.lock();
            let topic = r.channels.get(&channel).map(|ch| ch.topic.clone());
            (r.replies.remove(&push), topic)
        };
        let Some((what, callback)) = waiter else {
            // A cast that could not be sent: nobody waits for it.
            let topic = topic.unwrap_or_default();
            match &outcome {
                PushOutcome::NotSent(err) => {
                    log::warn!("a cast on {topic} could not be sent: {err}")
                }
                PushOutcome::Timeout => log::warn!("a cast on {topic} could not be sent in time"),
                _ => {}
            }
            return Ok(());
        };
        let args = match outcomes::push_result(py, &what, outcome)? {
            Ok(value) => (true, value),
            Err(err) => (false, err.into_value(py).into_any()),
        };
        call(py, &callback, args, || format!("reply callback of {what}"));
        Ok(())
    }

    fn socket_state(&self, py: Python<'_>, event: &Event) -> PyResult<()> {
        let Some(change) = StateChange::from_event(py, event)? else {
            return Ok(());
        };
        let closed = matches!(event, Event::Closed);
        let handler = self.lock().on_state.as_ref().map(|h| h.clone_ref(py));
        if let Some(h) = handler {
            let change = Py::new(py, change)?;
            call(py, &h, (change,), || "on_state callback".to_owned());
        }
        if closed {
            self.close(py);
            self.watch.finished();
        }
        Ok(())
    }

    /// The socket's stream ended: fail whatever still waits and let every
    /// callback go (they may hold the socket: reference cycles end here).
    fn close(&self, py: Python<'_>) {
        let (channels, replies, on_state) = {
            let mut r = self.lock();
            r.closed = true;
            (
                std::mem::take(&mut r.channels),
                std::mem::take(&mut r.replies),
                r.on_state.take(),
            )
        };
        let err = nerves_hub_channel::Error::Closed("the socket is closed".into());
        let exc = match errors::exception(py, &err) {
            Ok(e) => e.unbind(),
            Err(e) => e.into_value(py).into_any(),
        };
        for ch in channels.values() {
            for w in &ch.join_waiters {
                call(py, w, (false, exc.clone_ref(py)), || {
                    format!("join waiter of {}", ch.topic)
                });
            }
            for w in &ch.leave_waiters {
                call(py, w, (true, py.None()), || {
                    format!("leave waiter of {}", ch.topic)
                });
            }
        }
        for (what, callback) in replies.values() {
            call(py, callback, (false, exc.clone_ref(py)), || {
                format!("reply callback of {what}")
            });
        }
        drop(channels);
        drop(replies);
        drop(on_state);
    }
}
