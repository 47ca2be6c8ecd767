//! The Python-delivery thread of threaded sockets.
//!
//! The core calls each threaded socket's handler on its dispatcher thread,
//! in order per socket. That handler never touches Python: it records what
//! blocking waits need (`Watch`) and moves the event to the inbox below. One
//! library-owned thread, shared by every threaded socket of the process,
//! takes events from the inbox and runs the callbacks with the GIL held
//! only while Python runs. The inbox is bounded: when Python lags, the core
//! dispatcher waits, the core's own queue fills up, and the socket stops
//! reading from the network (back-pressure instead of unbounded memory).

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::thread::{JoinHandle, ThreadId};

use nerves_hub_channel::nerves_hub::DeviceEvent;
use nerves_hub_channel::Event;
use pyo3::prelude::*;

use crate::device_router::DeviceRouter;
use crate::errors;
use crate::router::Router;

const CAPACITY: usize = 1024;
/// Events delivered per GIL acquisition.
const BATCH: usize = 64;

/// One event on its way to Python, with the router that delivers it
/// (made by `PyRoute::item`; an enum, not a boxed closure: no allocation
/// per socket event).
pub enum Item {
    Socket(Arc<Router>, Event),
    // Boxed: device events are large, and socket events are the hot path.
    Device(Arc<DeviceRouter>, Box<DeviceEvent>),
}

impl Item {
    fn route(self, py: Python<'_>) {
        match self {
            Item::Socket(router, event) => router.route(py, event),
            Item::Device(router, event) => router.route(py, *event),
        }
    }
}

#[derive(Default)]
struct Inbox {
    items: VecDeque<Item>,
    /// The delivery thread waits on `ready`, and how many enqueuers wait on
    /// `space`: only they are notified, since a notify is a system call even
    /// with nobody waiting and events come one by one.
    idle: bool,
    full_waiters: usize,
    stop: bool,
    thread: Option<JoinHandle<()>>,
    thread_id: Option<ThreadId>,
    pid: u32,
}

#[derive(Default)]
struct Delivery {
    inbox: Mutex<Inbox>,
    ready: Condvar,
    space: Condvar,
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

/// Runs on the core's dispatcher thread: waits for room, never for Python.
pub fn enqueue(item: Item) {
    let d = delivery();
    let mut inbox = d.lock();
    while inbox.items.len() >= CAPACITY && !inbox.stop {
        inbox.full_waiters += 1;
        inbox = d.space.wait(inbox).unwrap_or_else(|p| p.into_inner());
        inbox.full_waiters -= 1;
    }
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
    let d = delivery();
    loop {
        let (batch, full_waiters): (Vec<Item>, bool) = {
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
            (inbox.items.drain(..n).collect(), inbox.full_waiters > 0)
        };
        if full_waiters {
            d.space.notify_all();
        }
        // `try_attach` declines once the interpreter is finalizing, so this
        // thread never blocks or dies inside Python's shutdown.
        let attached = Python::try_attach(|py| {
            for item in batch {
                item.route(py);
            }
        });
        if attached.is_none() {
            return;
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
    d.space.notify_all();
    if let Some(t) = thread {
        // The thread may be waiting for the GIL to finish a batch.
        py.detach(|| {
            let _ = t.join();
        });
    }
    d.lock().thread_id = None;
    drop(items);
}
