//! Inline delivery (`delivery="inline"`, sockets only): the callbacks run on
//! the socket's I/O thread, as the connection task reads each message.
//!
//! Threaded delivery hands each burst of events to `nhc-py-delivery`, a
//! wake-up and a context switch per message when messages come one at a
//! time, as on a device; inline skips that hand-off (issue 18). The I/O
//! thread, told by the socket's queue that it has events (`Puller::ready`,
//! called by the thread that queued them, with no lock held), takes the
//! GIL and routes them itself. The price is the C API's inline contract:
//! while a callback runs, or while the I/O thread waits for the GIL, no
//! socket on that thread reads, writes or heartbeats; and a callback cannot
//! wait for anything that thread would have to do (`wait.rs` refuses).
//!
//! Events are still routed one at a time and in order: the queue hands its
//! events to one consumer at a time, and an event queued on this thread
//! while it routes (a re-entrant hand-over) waits until the current batch
//! is done.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::sync::{Condvar, Mutex};

use pyo3::prelude::*;

use crate::delivery::{Buffers, Item};
use crate::thread_state::KeptThreadState;

/// Whether I/O threads may still enter Python, and how many are in it.
struct Gate {
    stopped: bool,
    inside: usize,
}

static GATE: Mutex<Gate> = Mutex::new(Gate {
    stopped: false,
    inside: 0,
});
static LEFT: Condvar = Condvar::new();

fn gate() -> std::sync::MutexGuard<'static, Gate> {
    GATE.lock().unwrap_or_else(|p| p.into_inner())
}

thread_local! {
    /// This thread is routing events: a hand-over now waits in `PENDING`.
    static ROUTING: Cell<bool> = const { Cell::new(false) };
    static PENDING: RefCell<VecDeque<Item>> = const { RefCell::new(VecDeque::new()) };
    static BUFFERS: RefCell<Option<Buffers>> = const { RefCell::new(None) };
    /// Made at the first delivery; given back when the I/O thread ends.
    static KEPT: RefCell<Option<KeptThreadState>> = const { RefCell::new(None) };
}

/// Routes the events of `item`'s queue on this thread, with the GIL.
pub fn deliver(item: Item) {
    if ROUTING.get() {
        PENDING.with_borrow_mut(|p| p.push_back(item));
        return;
    }
    let Some(_inside) = Inside::enter() else {
        // The interpreter is exiting: nobody runs callbacks any more.
        return;
    };
    KEPT.with_borrow_mut(|kept| {
        if kept.is_none() {
            *kept = Some(KeptThreadState::new());
        }
    });
    let mut buffers = BUFFERS.take().unwrap_or_default();
    // `try_attach` declines once the interpreter is finalizing; the events
    // are then dropped with the process.
    let _ = Python::try_attach(|py| {
        let mut next = Some(item);
        while let Some(item) = next {
            while item.deliver(py, &mut buffers) {}
            next = PENDING.with_borrow_mut(|p| p.pop_front());
        }
    });
    BUFFERS.set(Some(buffers));
}

/// This thread routing, counted at the gate; however routing ends.
struct Inside;

impl Inside {
    fn enter() -> Option<Inside> {
        let mut g = gate();
        if g.stopped {
            return None;
        }
        g.inside += 1;
        ROUTING.set(true);
        Some(Inside)
    }
}

impl Drop for Inside {
    fn drop(&mut self) {
        ROUTING.set(false);
        let mut g = gate();
        g.inside -= 1;
        if g.stopped && g.inside == 0 {
            LEFT.notify_all();
        }
    }
}

/// At interpreter exit: no I/O thread enters Python from now on, and those
/// inside have left when this returns (waiting without the GIL, which they
/// may need to finish).
pub fn stop(py: Python<'_>) {
    gate().stopped = true;
    py.detach(|| {
        let mut g = gate();
        while g.inside > 0 {
            g = LEFT.wait(g).unwrap_or_else(|p| p.into_inner());
        }
    });
}
