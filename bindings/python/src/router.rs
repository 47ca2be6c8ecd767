//! Turns a socket's ordered event stream into calls of Python callbacks.
//!
//! One router per socket, fed by one consumer at a time (the delivery
//! thread, or `Socket.dispatch` in polled mode), always with the GIL held.
//! Callbacks are looked up under the lock and called without it, and Python
//! objects taken out of the lock are dropped after it is released (a
//! `__del__` may run then), so a callback may call any method of the module.

mod route;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use nerves_hub_channel::{ChannelId, Payload, PushId};
use pyo3::call::PyCallArgs;
use pyo3::prelude::*;

use crate::logging;
use crate::watch::Watch;

type Callback = Py<PyAny>;

struct ChannelRoutes {
    topic: String,
    /// `(event, handler)` in registration order; event "*" matches all.
    handlers: Vec<(String, Callback)>,
    on_state: Option<Callback>,
    /// A join was asked for and the channel has not closed since.
    live: bool,
    joined: bool,
    last_response: Option<Payload>,
    /// `callback(ok, value)` for the next join outcome (loop integration).
    join_waiters: Vec<Callback>,
    leave_waiters: Vec<Callback>,
    /// The Python `Channel` is gone: forget the routes once the channel closes.
    orphan: bool,
}

#[derive(Default)]
struct Routes {
    on_state: Option<Callback>,
    channels: HashMap<ChannelId, ChannelRoutes>,
    /// `callback(ok, value)` of pushes made with `push_nowait`.
    replies: HashMap<PushId, (String, Callback)>,
    closed: bool,
}

pub struct Router {
    routes: Mutex<Routes>,
    pub watch: Watch,
}

/// What `join_waiter` decided.
pub enum JoinStart {
    /// Already joined: answer at once with this response.
    Joined(Payload),
    /// The waiter is registered; the caller sends the join.
    Wait,
}

impl Router {
    pub fn new(on_state: Option<Callback>) -> Arc<Router> {
        Arc::new(Router {
            routes: Mutex::new(Routes {
                on_state,
                ..Routes::default()
            }),
            watch: Watch::default(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Routes> {
        // Nothing runs user code under this lock, so poisoning means a bug
        // here; the maps stay usable.
        self.routes.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn add_channel(&self, id: ChannelId, topic: &str) {
        self.lock().channels.insert(
            id,
            ChannelRoutes {
                topic: topic.to_owned(),
                handlers: Vec::new(),
                on_state: None,
                live: false,
                joined: false,
                last_response: None,
                join_waiters: Vec::new(),
                leave_waiters: Vec::new(),
                orphan: false,
            },
        );
    }

    /// The Python `Channel` object was released.
    pub fn channel_dropped(&self, id: ChannelId) {
        let removed = {
            let mut r = self.lock();
            let socket_closed = r.closed;
            match r.channels.get_mut(&id) {
                // A joined channel keeps delivering to its handlers until it closes.
                Some(ch) if ch.live && !socket_closed => {
                    ch.orphan = true;
                    None
                }
                _ => r.channels.remove(&id),
            }
        };
        drop(removed);
    }

    pub fn on(&self, id: ChannelId, event: String, handler: Callback) {
        if let Some(ch) = self.lock().channels.get_mut(&id) {
            ch.handlers.push((event, handler));
        }
    }

    /// Removes the handlers of `event` (only `handler` if given, compared
    /// with `==`). Returns how many were removed.
    pub fn off(
        &self,
        py: Python<'_>,
        id: ChannelId,
        event: &str,
        handler: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<usize> {
        // `==` may run Python code: compare copies outside the lock, then
        // remove by identity.
        let candidates: Vec<Callback> = {
            let r = self.lock();
            let Some(ch) = r.channels.get(&id) else {
                return Ok(0);
            };
            ch.handlers
                .iter()
                .filter(|(e, _)| e == event)
                .map(|(_, h)| h.clone_ref(py))
                .collect()
        };
        let mut doomed = Vec::new();
        for h in &candidates {
            let matches = match handler {
                None => true,
                Some(wanted) => h.bind(py).eq(wanted)?,
            };
            if matches {
                doomed.push(h.as_ptr());
            }
        }
        let removed: Vec<(String, Callback)> = {
            let mut r = self.lock();
            let Some(ch) = r.channels.get_mut(&id) else {
                return Ok(0);
            };
            let (gone, kept) = std::mem::take(&mut ch.handlers)
                .into_iter()
                .partition(|(e, h)| e == event && doomed.contains(&h.as_ptr()));
            ch.handlers = kept;
            gone
        };
        let n = removed.len();
        drop(removed);
        drop(candidates);
        Ok(n)
    }

    pub fn set_channel_state_handler(&self, id: ChannelId, handler: Option<Callback>) {
        let old = self
            .lock()
            .channels
            .get_mut(&id)
            .and_then(|ch| std::mem::replace(&mut ch.on_state, handler));
        drop(old);
    }

    pub fn mark_live(&self, id: ChannelId) {
        if let Some(ch) = self.lock().channels.get_mut(&id) {
            ch.live = true;
        }
    }

    /// A blocking join succeeded: `joined` holds from its return on, not
    /// only once the delivery thread has routed the `Joined` event.
    pub fn mark_joined(&self, id: ChannelId, response: &Payload) {
        if let Some(ch) = self.lock().channels.get_mut(&id) {
            ch.joined = true;
            ch.last_response = Some(response.clone());
        }
    }

    /// A blocking leave returned: the channel is gone from the core.
    pub fn mark_left(&self, id: ChannelId) {
        if let Some(ch) = self.lock().channels.get_mut(&id) {
            ch.joined = false;
            ch.live = false;
        }
    }

    pub fn is_joined(&self, id: ChannelId) -> bool {
        self.lock().channels.get(&id).is_some_and(|ch| ch.joined)
    }

    /// Registers `callback` for the next join outcome of channel `id`.
    pub fn join_waiter(&self, id: ChannelId, callback: Callback) -> JoinStart {
        let mut r = self.lock();
        let Some(ch) = r.channels.get_mut(&id) else {
            return JoinStart::Wait;
        };
        // The core answers a join of a joined channel without an event, so
        // the answer comes from here.
        if ch.joined {
            return JoinStart::Joined(ch.last_response.clone().unwrap_or_else(Payload::empty));
        }
        ch.live = true;
        ch.join_waiters.push(callback);
        JoinStart::Wait
    }

    /// Registers `callback` for the end of a leave; `false` if the channel
    /// is not live (the core then answers without an event).
    pub fn leave_waiter(&self, id: ChannelId, callback: Callback) -> Result<(), Callback> {
        let mut r = self.lock();
        match r.channels.get_mut(&id) {
            Some(ch) if ch.live => {
                ch.leave_waiters.push(callback);
                Ok(())
            }
            _ => Err(callback),
        }
    }

    pub fn expect_reply(&self, push: PushId, what: String, callback: Callback) {
        self.lock().replies.insert(push, (what, callback));
    }
}

/// Calls a user callback; an exception goes to logging, never further.
pub fn call<'py, A: PyCallArgs<'py>>(
    py: Python<'py>,
    f: &Callback,
    args: A,
    what: impl FnOnce() -> String,
) {
    if let Err(e) = f.bind(py).call1(args) {
        logging::exception(py, &format!("{} raised an exception", what()), &e);
    }
}
