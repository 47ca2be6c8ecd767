//! The Python-delivery thread of threaded sockets and devices.
//!
//! Each threaded handle's core queue is pulled (the core's `Puller`): as the
//! I/O thread queues an event, the handle's puller records what blocking
//! waits need (`Watch`, without the GIL, before any callback can run), and
//! when the queue has events nobody is taking it hands the queue over to the
//! inbox below. One library-owned thread, shared by every threaded handle of
//! the process, takes the queues from the inbox and runs the callbacks of
//! their events with the GIL held only while Python runs. So a message wakes
//! two threads (the I/O thread, this one), not three: the core's dispatcher
//! thread is not involved. The core queue bounds memory: while it is full
//! (Python lagging), the socket stops reading from the network; the inbox
//! holds at most one entry per handle.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::thread::{JoinHandle, ThreadId};

use nerves_hub_channel::nerves_hub::DeviceEvent;
use nerves_hub_channel::{Event, EventSource};
use pyo3::prelude::*;

use crate::device_router::DeviceRouter;
use crate::errors;
use crate::router::Router;
use crate::thread_state::KeptThreadState;

/// Handles served per GIL acquisition (each with up to 64 events).
const BATCH: usize = 16;

/// A handle's queue with events for Python, with the router that delivers
/// them (made by `PyRoute::item`).
pub enum Item {
    Socket(EventSource<Event>, Arc<Router>),
    Device(EventSource<DeviceEvent>, Arc<DeviceRouter>),
}

/// What the delivery thread takes events into, kept from one turn to the
/// next so that a turn allocates nothing.
#[derive(Default)]
pub struct Buffers {
    socket: VecDeque<Event>,
    device: VecDeque<DeviceEvent>,
}

impl Item {
    /// Delivers one batch of the queue's events; true if more are left
    /// (the item goes back to the inbox, behind the other handles).
    pub fn deliver(&self, py: Python<'_>, buffers: &mut Buffers) -> bool {
        match self {
            Item::Socket(source, router) => {
                let more = source.take(&mut buffers.socket);
                for event in buffers.socket.drain(..) {
                    router.route(py, event);
                }
                more
            }
            Item::Device(source, router) => {
                let more = source.take(&mut buffers.device);
                for event in buffers.device.drain(..) {
                    router.route(py, event);
                }
                more
            }
        }
    }
}

#[derive(Default)]
struct Inbox {
    items: VecDeque<Item>,
    /// The delivery thread waits on `ready`: only then is it notified, since
    /// a notify is a system call even with nobody waiting and events come
    /// one by one.
    idle: bool,
    stop: bool,
    thread: Option<JoinHandle<()>>,
    thread_id: Option<ThreadId>,
    pid: u32,
}

#[derive(Default)]
struct Delivery {
    inbox: Mutex<Inbox>,
    ready: Condvar,
}

static DELIVERY: OnceLock<Delivery> = OnceLock::new();

fn delivery() -> &'static Delivery {
    DELIVERY.get_or_init(Delivery::default)
}

impl Delivery {
    fn lock(&self) -> MutexGuard<'_, Inbox> {
        self.inbox.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// True on the delivery thread, i.e. inside a threaded socket's callback.
pub fn on_delivery_thread() -> bool {
    delivery().lock().thread_id == Some(std::thread::current().id())
}

/// Starts the delivery thread (if it is not running in this process).
/// `PyHandle::new` then makes the handle `enqueue` its events.
pub fn start() -> PyResult<()> {
    let d = delivery();
    let mut inbox = d.lock();
    if inbox.thread.is_some() && inbox.pid == std::process::id() {
        return Ok(());
    }
    inbox.stop = false;
    inbox.pid = std::process::id();
    let thread = std::thread::Builder::new()
        .name("nhc-py-delivery".into())
        .spawn(run)
        .map_err(|e| errors::new_err("Error", format!("cannot start the delivery thread: {e}")))?;
    inbox.thread_id = Some(thread.thread().id());
    inbox.thread = Some(thread);
    Ok(())
}

/// A handle's queue has events (the core's `Puller::ready`, on the thread
/// that queued them): never waits, neither for room nor for Python.
pub fn schedule(item: Item) {
    let d = delivery();
    let mut inbox = d.lock();
    if inbox.stop {
        // The interpreter is exiting: nobody will run callbacks any more.
        return;
    }
    inbox.items.push_back(item);
    let idle = inbox.idle;
    drop(inbox);
    if idle {
        d.ready.notify_one();
    }
}

fn run() {
    let _kept = KeptThreadState::new();
    let d = delivery();
    let mut batch = Vec::with_capacity(BATCH);
    let mut again = Vec::with_capacity(BATCH);
    let mut buffers = Buffers::default();
    loop {
        {
            let mut inbox = d.lock();
            while inbox.items.is_empty() && !inbox.stop {
                inbox.idle = true;
                inbox = d.ready.wait(inbox).unwrap_or_else(|p| p.into_inner());
                inbox.idle = false;
            }
            if inbox.stop {
                return;
            }
            let n = inbox.items.len().min(BATCH);
            batch.extend(inbox.items.drain(..n));
        }
        // `try_attach` declines once the interpreter is finalizing, so this
        // thread never blocks or dies inside Python's shutdown.
        let attached = Python::try_attach(|py| {
            for item in batch.drain(..) {
                if item.deliver(py, &mut buffers) {
                    again.push(item);
                }
            }
        });
        if attached.is_none() {
            return;
        }
        if !again.is_empty() {
            let mut inbox = d.lock();
            if inbox.stop {
                return;
            }
            inbox.items.extend(again.drain(..));
        }
    }
}

/// Stops the thread (at interpreter exit); undelivered events are dropped.
pub fn stop(py: Python<'_>) {
    let d = delivery();
    let (thread, items) = {
        let mut inbox = d.lock();
        inbox.stop = true;
        let items = std::mem::take(&mut inbox.items);
        // After fork() the thread exists only in the parent.
        let thread = if inbox.pid == std::process::id() {
            inbox.thread.take()
        } else {
            None
        };
        (thread, items)
    };
    d.ready.notify_all();
    if let Some(t) = thread {
        // The thread may be waiting for the GIL to finish a batch.
        py.detach(|| {
            let _ = t.join();
        });
    }
    d.lock().thread_id = None;
    drop(items);
}
