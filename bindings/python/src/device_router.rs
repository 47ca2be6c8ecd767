//! Turns a device's ordered event stream into calls of Python handlers.
//!
//! As for sockets: one consumer at a time (the delivery thread, or
//! `Device.dispatch`), handlers looked up under the lock and called without
//! it. `watch_event` runs earlier, on the core's dispatcher thread without
//! the GIL, and records what the blocking waits need (`wait_connected`,
//! `wait_joined`, `wait_for_update`, `wait_update`).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

use nerves_hub_channel::nerves_hub::device::DEVICE_TOPIC;
use nerves_hub_channel::nerves_hub::update_info::UpdateInfo;
use nerves_hub_channel::nerves_hub::DeviceEvent;
use nerves_hub_channel::{Event, PushOutcome};
use pyo3::prelude::*;

use crate::device_convert;
use crate::logging;
use crate::router::call;
use crate::state::StateChange;
use crate::watch::Watch;

type Callback = Py<PyAny>;

#[derive(Default)]
struct Routes {
    /// `(kind, handler)` in registration order; kind "*" matches all.
    handlers: Vec<(String, Callback)>,
    on_state: Option<Callback>,
}

/// What the device-level blocking waits look at.
#[derive(Default)]
pub struct Seen {
    /// The `device` channel is joined.
    pub joined: bool,
    /// Offers seen (`UpdateAvailable`), and the latest.
    pub offers: u64,
    pub last_offer: Option<UpdateInfo>,
    /// Updates started by `apply_update`, and those of them that ended
    /// (`UpdateFinished`), with how the latest ended.
    pub applied: u64,
    pub finished: u64,
    pub outcome: Option<Result<(), String>>,
    /// The device's last event (`Closed`) has been seen.
    pub closed_seen: bool,
    /// `UpdateFinished` events still to come for updates that failed to
    /// start (`apply_update` raised): not counted as `finished`.
    pub skip: u64,
    /// `apply_update` is starting an update. Events are observed as they
    /// are queued, on the thread that queues them (the caller's own, for a
    /// start that fails at once), so the lock cannot be held across the
    /// start: an end seen meanwhile waits in `start_end` until the start's
    /// result says whose end it was.
    pub starting: bool,
    pub start_end: Option<Result<(), String>>,
}

pub struct DeviceRouter {
    routes: Mutex<Routes>,
    /// The connection, exactly as for a socket.
    pub watch: Watch,
    pub seen: Mutex<Seen>,
    pub changed: Condvar,
}

impl DeviceRouter {
    pub fn new(on_state: Option<Callback>) -> Arc<DeviceRouter> {
        Arc::new(DeviceRouter {
            routes: Mutex::new(Routes {
                on_state,
                handlers: Vec::new(),
            }),
            watch: Watch::default(),
            seen: Mutex::new(Seen::default()),
            changed: Condvar::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Routes> {
        self.routes.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn lock_seen(&self) -> MutexGuard<'_, Seen> {
        self.seen.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn on(&self, kind: String, handler: Callback) {
        self.lock().handlers.push((kind, handler));
    }

    /// Removes the handlers of `kind` (only `handler` if given, compared
    /// with `==` outside the lock). Returns how many were removed.
    pub fn off(
        &self,
        py: Python<'_>,
        kind: &str,
        handler: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<usize> {
        let candidates: Vec<Callback> = self
            .lock()
            .handlers
            .iter()
            .filter(|(k, _)| k == kind)
            .map(|(_, h)| h.clone_ref(py))
            .collect();
        let mut doomed = Vec::new();
        for h in &candidates {
            if handler.map_or(Ok(true), |wanted| h.bind(py).eq(wanted))? {
                doomed.push(h.as_ptr());
            }
        }
        let removed: Vec<(String, Callback)> = {
            let mut r = self.lock();
            let (gone, kept) = std::mem::take(&mut r.handlers)
                .into_iter()
                .partition(|(k, h)| k == kind && doomed.contains(&h.as_ptr()));
            r.handlers = kept;
            gone
        };
        let n = removed.len();
        drop(removed);
        drop(candidates);
        Ok(n)
    }

    /// Runs before delivery, without the GIL: records what waits need.
    pub fn watch_event(&self, event: &DeviceEvent) {
        {
            let mut s = self.lock_seen();
            match event {
                DeviceEvent::Socket(e) => {
                    self.watch.update(e);
                    match e {
                        Event::Joined { topic, .. } if topic == DEVICE_TOPIC => s.joined = true,
                        Event::JoinFailed { topic, .. }
                        | Event::ChannelError { topic, .. }
                        | Event::ChannelClosed { topic, .. }
                            if topic == DEVICE_TOPIC =>
                        {
                            s.joined = false
                        }
                        Event::Disconnected { .. } => s.joined = false,
                        Event::Closed => {
                            s.joined = false;
                            s.closed_seen = true;
                        }
                        _ => return,
                    }
                }
                DeviceEvent::UpdateAvailable(info) => {
                    s.offers += 1;
                    s.last_offer = Some(info.clone());
                }
                DeviceEvent::UpdateFinished { .. } if s.skip > 0 => {
                    s.skip -= 1;
                    return;
                }
                DeviceEvent::UpdateFinished { ok, reason } => {
                    let outcome = if *ok {
                        Ok(())
                    } else {
                        Err(reason.clone().unwrap_or_else(|| "update failed".into()))
                    };
                    if s.starting {
                        s.start_end = Some(outcome);
                        return;
                    }
                    s.finished += 1;
                    s.outcome = Some(outcome);
                }
                _ => return,
            }
        }
        self.changed.notify_all();
    }

    /// Delivers one event. Never raises: failures go to logging.
    pub fn route(&self, py: Python<'_>, event: DeviceEvent) {
        let outcome = catch_unwind(AssertUnwindSafe(|| self.route_inner(py, &event)));
        match outcome {
            Ok(Ok(())) => {}
            Ok(Err(e)) => logging::exception(py, "delivering a device event failed", &e),
            Err(_) => log::error!("delivering a device event panicked; the event was dropped"),
        }
    }

    fn route_inner(&self, py: Python<'_>, event: &DeviceEvent) -> PyResult<()> {
        if let DeviceEvent::Socket(e) = event {
            match e {
                Event::Reply { outcome, .. } => {
                    // Only casts the device made itself end up here.
                    match outcome {
                        PushOutcome::NotSent(err) => {
                            log::warn!("a device report could not be sent: {err}")
                        }
                        PushOutcome::Timeout => {
                            log::warn!("a device report could not be sent in time")
                        }
                        _ => {}
                    }
                    return Ok(());
                }
                _ => {
                    if let Some(change) = StateChange::from_event(py, e)? {
                        return self.state(py, change, matches!(e, Event::Closed));
                    }
                }
            }
        }
        let Some(obj) = device_convert::event(py, event)? else {
            return Ok(());
        };
        let kind: String = obj.getattr("kind")?.extract()?;
        let handlers: Vec<Callback> = self
            .lock()
            .handlers
            .iter()
            .filter(|(k, _)| *k == kind || k == "*")
            .map(|(_, h)| h.clone_ref(py))
            .collect();
        for h in &handlers {
            call(py, h, (obj.clone(),), || {
                format!("device handler of {kind:?}")
            });
        }
        Ok(())
    }

    fn state(&self, py: Python<'_>, change: StateChange, closed: bool) -> PyResult<()> {
        let handler = self.lock().on_state.as_ref().map(|h| h.clone_ref(py));
        if let Some(h) = handler {
            let change = Py::new(py, change)?;
            call(py, &h, (change,), || "device on_state callback".to_owned());
        }
        if closed {
            // The stream ended: let every callback go (they may hold the
            // device: reference cycles end here).
            let released = std::mem::take(&mut *self.lock());
            drop(released);
            self.watch.finished();
            self.changed.notify_all();
        }
        Ok(())
    }
}
