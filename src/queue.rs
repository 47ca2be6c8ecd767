//! The per-socket event queue between the connection task and the consumer.
//!
//! The connection task never blocks on it and never drops an event; instead it
//! stops reading from the network while the queue holds `capacity` events, so
//! memory stays bounded and TCP pushes back on the server. Consumers take
//! events in one of four ways: blocking (`pop_timeout`), async (`pop_async`),
//! through the shared dispatcher thread (threaded mode), or on a thread of
//! their own that is told when events are pending (`set_pull`, pull.rs). A
//! pipe that is readable while events are pending serves poll/select/epoll
//! loops.

use std::collections::VecDeque;
use std::os::fd::RawFd;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use crate::dispatcher::{self, Dispatch};
use crate::error::{Error, Result};
use crate::event::Event;
use crate::pull::{EventSource, Puller};
use crate::signal_fd::SignalFd;

/// A user callback run by the dispatcher thread. `Handler` alone takes the
/// core's [`Event`]; the device layer uses `Handler<DeviceEvent>`.
pub type Handler<E = Event> = Box<dyn FnMut(E) + Send>;

enum HandlerSlot<E> {
    None,
    Idle(Handler<E>),
    /// The dispatcher holds the handler and is calling it.
    InCall,
    /// Removed while in a call: the dispatcher drops it once the call returns.
    RemovedInCall,
    /// Replaced while in a call: once the call returns, the dispatcher drops
    /// the old handler and the new one takes the following events.
    ReplacedInCall(Handler<E>),
}

struct State<E> {
    events: VecDeque<E>,
    /// An empty buffer that keeps its capacity: the dispatcher swaps it with
    /// `events` to take a whole batch under one lock without allocating.
    spare: VecDeque<E>,
    closed: bool,
    fd: Option<SignalFd>,
    handler: HandlerSlot<E>,
    /// Queued on the dispatcher's ready list (or being dispatched).
    scheduled: bool,
    /// Threads blocked in `pop_timeout`: a condvar notify is a system call
    /// even with nobody waiting, and pushes are per message.
    blocked: usize,
    /// The handler runs on the producer's thread, inside `push` (see
    /// `set_inline_handler`), instead of on the dispatcher thread.
    inline: bool,
    /// Pulled delivery (`set_pull`): `scheduled` then means that the
    /// puller's consumer holds the source, instead of the dispatcher.
    pull: Option<Arc<dyn Puller<E>>>,
}

/// Generic over the event type so that a socket (`Event`) and a NervesHub
/// device (`DeviceEvent`) share one delivery implementation.
pub(crate) struct EventQueue<E: Send + 'static = Event> {
    state: Mutex<State<E>>,
    /// `events.len()`, written under the lock: the producer asks whether the
    /// queue is full once or twice per frame, and needs no lock for that.
    len: AtomicUsize,
    /// The producer is pushing a burst (see `hold`): consumers are woken once
    /// at its end instead of once per event. Only the producer writes it.
    held: AtomicBool,
    /// An event was pushed while held: `release` must wake the consumers.
    held_pending: AtomicBool,
    /// The handler was removed or replaced while the dispatcher was calling
    /// it: the dispatcher stops its batch (checked per event without a lock).
    handler_changed: AtomicBool,
    readable: Condvar,
    async_readable: Notify,
    space: Notify,
    capacity: usize,
}

/// Who must be woken after events were queued.
struct Wake<E: Send + 'static> {
    schedule: bool,
    blocked: bool,
    /// With `schedule`: the consumer to give the source, if pulled.
    pull: Option<Arc<dyn Puller<E>>>,
}

/// Events handed to a handler per turn, so one busy socket cannot starve the others.
const DISPATCH_BATCH: usize = 64;

impl<E: Send + 'static> EventQueue<E> {
    pub fn new(capacity: usize) -> Arc<EventQueue<E>> {
        Arc::new(EventQueue {
            state: Mutex::new(State {
                events: VecDeque::new(),
                spare: VecDeque::new(),
                closed: false,
                fd: None,
                handler: HandlerSlot::None,
                scheduled: false,
                blocked: 0,
                inline: false,
                pull: None,
            }),
            len: AtomicUsize::new(0),
            held: AtomicBool::new(false),
            held_pending: AtomicBool::new(false),
            handler_changed: AtomicBool::new(false),
            readable: Condvar::new(),
            async_readable: Notify::new(),
            space: Notify::new(),
            capacity,
        })
    }

    fn lock(&self) -> MutexGuard<'_, State<E>> {
        // A poisoned lock only means a consumer panicked; the queue itself is consistent.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn push(self: &Arc<Self>, event: E) {
        let wake = {
            let mut st = self.lock();
            if st.closed {
                return;
            }
            if let Some(pull) = &st.pull {
                pull.observe(&event);
            }
            st.events.push_back(event);
            if st.inline && matches!(st.handler, HandlerSlot::Idle(_)) {
                self.len.store(st.events.len(), Ordering::Release);
                self.run_inline(st);
                return;
            }
            self.len.store(st.events.len(), Ordering::Release);
            if st.events.len() == 1 {
                if let Some(fd) = &mut st.fd {
                    fd.set();
                }
            }
            if self.held.load(Ordering::Relaxed) {
                self.held_pending.store(true, Ordering::Relaxed);
                return;
            }
            Self::wake_actions(&mut st)
        };
        self.wake(wake);
    }

    /// Defers consumer wake-ups until `release`. The connection task holds the
    /// queue while it drains the frames already read from the socket: waking
    /// the dispatcher thread per event costs a futex call and a context switch
    /// each, more than handling the event itself. Only the producer (the
    /// connection task) calls `hold` and `release`.
    pub fn hold(&self) {
        self.held.store(true, Ordering::Relaxed);
    }

    /// Ends a `hold` and wakes the consumers once if events were pushed
    /// meanwhile (without taking the lock when none were).
    pub fn release(self: &Arc<Self>) {
        self.held.store(false, Ordering::Relaxed);
        if !self.held_pending.swap(false, Ordering::Relaxed) {
            return;
        }
        let wake = {
            let mut st = self.lock();
            if st.events.is_empty() {
                return;
            }
            Self::wake_actions(&mut st)
        };
        self.wake(wake);
    }

    /// Decides, under the lock, whom to wake for pending events.
    fn wake_actions(st: &mut State<E>) -> Wake<E> {
        let has_consumer = !matches!(st.handler, HandlerSlot::None) || st.pull.is_some();
        let schedule = has_consumer && !st.scheduled;
        if schedule {
            st.scheduled = true;
        }
        Wake {
            schedule,
            blocked: st.blocked > 0,
            pull: if schedule { st.pull.clone() } else { None },
        }
    }

    fn wake(self: &Arc<Self>, wake: Wake<E>) {
        if wake.blocked {
            self.readable.notify_one();
        }
        self.async_readable.notify_one();
        if wake.schedule {
            match wake.pull {
                Some(pull) => pull.ready(EventSource(self.clone())),
                None => dispatcher::schedule(self.clone() as Arc<dyn Dispatch>),
            }
        }
    }

    /// Marks the end of the stream: consumers get what is queued, then nothing.
    pub fn close(&self) {
        self.lock().closed = true;
        self.readable.notify_all();
        self.async_readable.notify_one();
    }

    pub fn is_full(&self) -> bool {
        self.len.load(Ordering::Acquire) >= self.capacity
    }

    /// Resolves when a consumer made room (or immediately if a permit is stored).
    pub async fn space_available(&self) {
        self.space.notified().await
    }

    fn pop_locked(&self, st: &mut State<E>) -> Option<E> {
        let event = st.events.pop_front()?;
        let len = st.events.len();
        self.len.store(len, Ordering::Release);
        if len == 0 {
            if let Some(fd) = &mut st.fd {
                fd.clear();
            }
        }
        if len + 1 == self.capacity {
            self.space.notify_one();
        }
        Some(event)
    }

    pub fn try_pop(&self) -> Option<E> {
        let mut st = self.lock();
        self.pop_locked(&mut st)
    }

    /// Waits up to `timeout` for an event. `None` on timeout or end of stream.
    pub fn pop_timeout(&self, timeout: Duration) -> Option<E> {
        let deadline = Instant::now() + timeout;
        let mut st = self.lock();
        loop {
            if let Some(event) = self.pop_locked(&mut st) {
                return Some(event);
            }
            let now = Instant::now();
            if st.closed || now >= deadline {
                return None;
            }
            st.blocked += 1;
            st = match self.readable.wait_timeout(st, deadline - now) {
                Ok((guard, _)) => guard,
                Err(p) => p.into_inner().0,
            };
            st.blocked -= 1;
        }
    }

    /// Waits for the next event; `None` once the stream has ended.
    pub async fn pop_async(&self) -> Option<E> {
        loop {
            let notified = self.async_readable.notified();
            {
                let mut st = self.lock();
                if let Some(event) = self.pop_locked(&mut st) {
                    return Some(event);
                }
                if st.closed {
                    return None;
                }
            }
            notified.await;
        }
    }

    /// A descriptor that is readable while events are pending.
    pub fn fd(&self) -> std::io::Result<RawFd> {
        let mut st = self.lock();
        if st.fd.is_none() {
            let mut fd = SignalFd::new()?;
            if !st.events.is_empty() {
                fd.set();
            }
            st.fd = Some(fd);
        }
        Ok(st.fd.as_ref().map(SignalFd::read_fd).unwrap_or(-1))
    }

    /// Installs (or with `None` removes) the handler called by the dispatcher
    /// thread. A handler removed during its own call is dropped after the
    /// call; one installed during a call waits its turn: it takes the events
    /// after that call.
    pub fn set_handler(self: &Arc<Self>, handler: Option<Handler<E>>) {
        self.install(handler, false);
    }

    /// Installs a handler that the producer calls itself, inside `push`: no
    /// hand-off to the dispatcher thread, no wake-up, no lock per event
    /// beyond the push's own. Events are still delivered one at a time and
    /// in order: one pushed while the handler runs (a re-entrant push) is
    /// queued and delivered by that same call, once the handler returns.
    /// Events queued before this call go through the dispatcher thread.
    /// Removing or replacing it works as for `set_handler`.
    pub fn set_inline_handler(self: &Arc<Self>, handler: Handler<E>) {
        self.install(Some(handler), true);
    }

    /// Pulled delivery (pull.rs): `puller` observes every event as it is
    /// queued and is told when the queue has events nobody is taking; its
    /// consumer takes them with `take_pulled`. Installed once, instead of a
    /// handler: with a handler or another puller in place it is refused.
    /// Events already queued are observed now, and handed over at once.
    pub fn set_pull(self: &Arc<Self>, puller: Arc<dyn Puller<E>>) -> Result<()> {
        let ready = {
            let mut st = self.lock();
            if st.pull.is_some() || !matches!(st.handler, HandlerSlot::None) {
                return Err(Error::InvalidArgument(
                    "pulled delivery replaces the handler; this one already has a consumer".into(),
                ));
            }
            for event in &st.events {
                puller.observe(event);
            }
            st.pull = Some(puller.clone());
            let ready = !st.events.is_empty() && !st.scheduled;
            st.scheduled |= ready;
            ready
        };
        if ready {
            puller.ready(EventSource(self.clone()));
        }
        Ok(())
    }

    /// The consumer of a pulled queue: see `EventSource::take`.
    pub(crate) fn take_pulled(&self, out: &mut VecDeque<E>) -> bool {
        let mut st = self.lock();
        let before = st.events.len();
        out.extend(st.events.drain(..before.min(DISPATCH_BATCH)));
        self.taken(&mut st, before);
        let more = !st.events.is_empty();
        st.scheduled = more;
        more
    }

    fn install(self: &Arc<Self>, handler: Option<Handler<E>>, inline: bool) {
        let (old, schedule) = {
            let mut st = self.lock();
            if st.pull.is_some() {
                // Its consumer takes every event; a handler would compete.
                drop(st);
                if handler.is_some() {
                    log::warn!("an event handler was not installed: the events are pulled");
                }
                return;
            }
            if handler.is_some() {
                st.inline = inline;
            }
            let in_call = matches!(
                st.handler,
                HandlerSlot::InCall | HandlerSlot::RemovedInCall | HandlerSlot::ReplacedInCall(_)
            );
            let old = match std::mem::replace(&mut st.handler, HandlerSlot::None) {
                HandlerSlot::Idle(h) | HandlerSlot::ReplacedInCall(h) => Some(h),
                HandlerSlot::InCall | HandlerSlot::RemovedInCall | HandlerSlot::None => None,
            };
            let mut schedule = false;
            if in_call {
                self.handler_changed.store(true, Ordering::Release);
            }
            st.handler = match (handler, in_call) {
                // The dispatcher swaps it in (and reschedules) after the call.
                (Some(h), true) => HandlerSlot::ReplacedInCall(h),
                (None, true) => HandlerSlot::RemovedInCall,
                (Some(h), false) => {
                    schedule = !st.events.is_empty() && !st.scheduled;
                    st.scheduled |= schedule;
                    HandlerSlot::Idle(h)
                }
                (None, false) => HandlerSlot::None,
            };
            (old, schedule)
        };
        drop(old);
        if schedule {
            dispatcher::schedule(self.clone() as Arc<dyn Dispatch>);
        }
    }

    /// Called by the dispatcher thread: runs the handler on a batch of events,
    /// taken out of the queue under one lock (so the producer may queue up to
    /// one batch beyond `capacity` meanwhile). Events the handler did not get
    /// to (it was removed or replaced) go back to the front, in order.
    fn run_handler(self: &Arc<Self>) {
        let (mut handler, mut batch) = {
            let mut st = self.lock();
            let handler = match std::mem::replace(&mut st.handler, HandlerSlot::InCall) {
                HandlerSlot::Idle(h) => h,
                other => {
                    st.handler = other;
                    st.scheduled = false;
                    return;
                }
            };
            self.handler_changed.store(false, Ordering::Relaxed);
            (handler, self.take_batch(&mut st))
        };
        while let Some(event) = batch.pop_front() {
            // A panicking Rust handler must not take the shared dispatcher down.
            if catch_unwind(AssertUnwindSafe(|| handler(event))).is_err() {
                log::error!("an event handler panicked; the event was dropped");
            }
            if self.handler_changed.load(Ordering::Acquire) {
                break; // removed or replaced
            }
        }
        let (again, removed) = {
            let mut st = self.lock();
            if !batch.is_empty() {
                self.put_back(&mut st, &mut batch);
            }
            if st.spare.capacity() < batch.capacity() {
                st.spare = batch;
            }
            let (next, removed) = match std::mem::replace(&mut st.handler, HandlerSlot::None) {
                HandlerSlot::RemovedInCall => (None, Some(handler)),
                HandlerSlot::ReplacedInCall(new) => (Some(new), Some(handler)),
                _ => (Some(handler), None),
            };
            let again = next.is_some() && !st.events.is_empty();
            if let Some(next) = next {
                st.handler = HandlerSlot::Idle(next);
            }
            st.scheduled = again;
            (again, removed)
        };
        drop(removed);
        if again {
            dispatcher::schedule(self.clone() as Arc<dyn Dispatch>);
        }
    }

    /// Inline delivery, on the producer's thread: calls the (idle) handler
    /// for every queued event, without the lock, until the queue is empty
    /// or the handler is removed or replaced from inside its call (a
    /// replacement then carries on, inline or not as it was installed).
    fn run_inline<'a>(self: &'a Arc<Self>, mut st: MutexGuard<'a, State<E>>) {
        let mut removed = Vec::new();
        loop {
            let HandlerSlot::Idle(mut handler) =
                std::mem::replace(&mut st.handler, HandlerSlot::InCall)
            else {
                unreachable!("run_inline is entered with an idle handler");
            };
            self.handler_changed.store(false, Ordering::Relaxed);
            while let Some(event) = self.pop_locked(&mut st) {
                drop(st);
                // A panicking handler must not take the connection task down.
                if catch_unwind(AssertUnwindSafe(|| handler(event))).is_err() {
                    log::error!("an event handler panicked; the event was dropped");
                }
                st = self.lock();
                if self.handler_changed.load(Ordering::Acquire) {
                    break;
                }
            }
            let next = match std::mem::replace(&mut st.handler, HandlerSlot::None) {
                HandlerSlot::RemovedInCall => {
                    removed.push(handler);
                    None
                }
                HandlerSlot::ReplacedInCall(new) => {
                    removed.push(handler);
                    Some(new)
                }
                _ => Some(handler),
            };
            let Some(next) = next else { break };
            st.handler = HandlerSlot::Idle(next);
            if st.events.is_empty() {
                break;
            }
            if !st.inline {
                // Replaced by a dispatcher-thread handler: it takes the rest.
                let wake = Self::wake_actions(&mut st);
                drop(st);
                self.wake(wake);
                drop(removed);
                return;
            }
        }
        drop(st);
        // Dropped without the lock: a closure's drop is the application's code.
        drop(removed);
    }

    /// Takes up to `DISPATCH_BATCH` events from the front, reusing the spare
    /// buffer: a short queue swaps buffers whole.
    fn take_batch(&self, st: &mut State<E>) -> VecDeque<E> {
        let before = st.events.len();
        let batch = if before <= DISPATCH_BATCH {
            let empty = std::mem::take(&mut st.spare);
            std::mem::replace(&mut st.events, empty)
        } else {
            let mut batch = std::mem::take(&mut st.spare);
            batch.extend(st.events.drain(..DISPATCH_BATCH));
            batch
        };
        self.taken(st, before);
        batch
    }

    /// After events were taken out of a queue that held `before`: the
    /// length others read without the lock, the descriptor, and room for
    /// the producer.
    fn taken(&self, st: &mut State<E>, before: usize) {
        let after = st.events.len();
        self.len.store(after, Ordering::Release);
        if after == 0 {
            if let Some(fd) = &mut st.fd {
                fd.clear();
            }
        }
        if before >= self.capacity && after < self.capacity {
            self.space.notify_one();
        }
    }

    /// Returns the events of `batch` to the front of the queue, in order.
    fn put_back(&self, st: &mut State<E>, batch: &mut VecDeque<E>) {
        while let Some(event) = batch.pop_back() {
            st.events.push_front(event);
        }
        self.len.store(st.events.len(), Ordering::Release);
        if let Some(fd) = &mut st.fd {
            fd.set();
        }
    }
}

impl<E: Send + 'static> Dispatch for EventQueue<E> {
    fn dispatch(self: Arc<Self>) {
        self.run_handler();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    #[test]
    fn a_handler_installed_during_a_call_takes_the_next_events() {
        let queue = EventQueue::<u32>::new(16);
        let (seen_tx, seen) = mpsc::channel();
        let (entered_tx, entered) = mpsc::channel();
        let (release, release_rx) = mpsc::channel::<()>();
        let old = seen_tx.clone();
        queue.set_handler(Some(Box::new(move |e| {
            let _ = old.send(("old", e));
            let _ = entered_tx.send(());
            let _ = release_rx.recv();
        })));
        queue.push(1);
        entered.recv().unwrap(); // the old handler is in its call
        queue.push(2);
        queue.set_handler(Some(Box::new(move |e| {
            let _ = seen_tx.send(("new", e));
        })));
        queue.push(3);
        release.send(()).unwrap();
        // Every sender goes with its handler: a dropped new handler ends the stream.
        let got: Vec<_> = seen.iter().take(3).collect();
        assert_eq!(got, [("old", 1), ("new", 2), ("new", 3)]);
        queue.set_handler(None);
    }

    #[test]
    fn events_a_removed_handler_did_not_get_stay_queued_in_order() {
        let queue = EventQueue::<u32>::new(16);
        let (seen_tx, seen) = mpsc::channel();
        // Held: the five events reach the dispatcher as one batch.
        queue.hold();
        for e in 1..=5 {
            queue.push(e);
        }
        let me = queue.clone();
        queue.set_handler(Some(Box::new(move |e| {
            let _ = seen_tx.send(e);
            if e == 2 {
                me.set_handler(None);
            }
        })));
        queue.release();
        // The sender goes with the handler: the stream ends when it is dropped.
        assert_eq!(seen.iter().collect::<Vec<_>>(), [1, 2]);
        let rest: Vec<_> = std::iter::from_fn(|| queue.try_pop()).collect();
        assert_eq!(rest, [3, 4, 5]);
        assert!(!queue.is_full());
    }

    #[test]
    fn fullness_follows_pushes_and_batches() {
        let queue = EventQueue::<u32>::new(3);
        for e in 0..3 {
            assert!(!queue.is_full());
            queue.push(e);
        }
        assert!(queue.is_full());
        assert_eq!(queue.try_pop(), Some(0));
        assert!(!queue.is_full());
        let (tx, rx) = mpsc::channel();
        queue.set_handler(Some(Box::new(move |e| {
            let _ = tx.send(e);
        })));
        assert_eq!(rx.iter().take(2).collect::<Vec<_>>(), [1, 2]);
        queue.set_handler(None);
        assert!(queue.try_pop().is_none() && !queue.is_full());
    }
    #[test]
    fn an_inline_handler_runs_inside_push_on_the_pushing_thread() {
        let queue = EventQueue::<u32>::new(16);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = seen.clone();
        queue.set_inline_handler(Box::new(move |e| {
            let me = std::thread::current().id();
            record.lock().unwrap().push((e, me));
        }));
        let me = std::thread::current().id();
        queue.push(1);
        // Delivered before push returned: nothing to wait for.
        assert_eq!(*seen.lock().unwrap(), [(1, me)]);
        queue.hold();
        queue.push(2);
        queue.push(3);
        queue.release();
        assert_eq!(*seen.lock().unwrap(), [(1, me), (2, me), (3, me)]);
        assert!(queue.try_pop().is_none() && !queue.is_full());
        queue.set_handler(None);
    }

    #[test]
    fn an_event_pushed_from_inside_an_inline_handler_follows_it_in_order() {
        let queue = EventQueue::<u32>::new(16);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = seen.clone();
        let me = Arc::downgrade(&queue);
        queue.set_inline_handler(Box::new(move |e| {
            record.lock().unwrap().push(e);
            if e == 1 {
                if let Some(q) = me.upgrade() {
                    q.push(10);
                    // Not yet delivered: the handler is still in its call.
                    assert_eq!(*record.lock().unwrap(), [1]);
                }
            }
        }));
        queue.push(1);
        queue.push(2);
        assert_eq!(*seen.lock().unwrap(), [1, 10, 2]);
        queue.set_handler(None);
    }

    #[test]
    fn an_inline_handler_that_removes_itself_leaves_later_events_queued() {
        let queue = EventQueue::<u32>::new(16);
        let (seen_tx, seen) = mpsc::channel();
        let me = Arc::downgrade(&queue);
        queue.set_inline_handler(Box::new(move |e| {
            let _ = seen_tx.send(e);
            if let Some(q) = me.upgrade() {
                q.set_handler(None);
            }
        }));
        queue.push(1);
        queue.push(2);
        // The handler (and its sender) was dropped after its first call.
        assert_eq!(seen.iter().collect::<Vec<_>>(), [1]);
        assert_eq!(queue.try_pop(), Some(2));
    }

    #[test]
    fn an_inline_handler_replaced_by_a_threaded_one_hands_it_the_rest() {
        let queue = EventQueue::<u32>::new(16);
        let (seen_tx, seen) = mpsc::channel();
        let old = seen_tx.clone();
        let me = Arc::downgrade(&queue);
        queue.set_inline_handler(Box::new(move |e| {
            let _ = old.send(("inline", e, std::thread::current().id()));
            if let Some(q) = me.upgrade() {
                // A re-entrant push, then the switch: the event waits for the new handler.
                q.push(e + 1);
                let tx = seen_tx.clone();
                q.set_handler(Some(Box::new(move |e| {
                    let _ = tx.send(("threaded", e, std::thread::current().id()));
                })));
            }
        }));
        let me = std::thread::current().id();
        queue.push(1);
        let got: Vec<_> = seen.iter().take(2).collect();
        assert_eq!(got[0], ("inline", 1, me));
        assert_eq!((got[1].0, got[1].1), ("threaded", 2));
        assert_ne!(got[1].2, me, "the dispatcher thread takes over");
        queue.set_handler(None);
    }

    #[test]
    fn a_panicking_inline_handler_loses_only_its_event() {
        let queue = EventQueue::<u32>::new(16);
        let (seen_tx, seen) = mpsc::channel();
        queue.set_inline_handler(Box::new(move |e| {
            assert_ne!(e, 1, "the handler's own panic, on purpose");
            let _ = seen_tx.send(e);
        }));
        queue.push(1);
        queue.push(2);
        queue.set_handler(None);
        assert_eq!(seen.iter().collect::<Vec<_>>(), [2]);
    }
}
