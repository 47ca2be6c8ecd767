//! The one library-owned thread that runs user callbacks of every socket in
//! threaded mode, so that user code never runs on an I/O thread and 10,000
//! sockets do not mean 10,000 threads. Order is kept per socket because a
//! socket is on the ready list at most once.

use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex};

use once_cell::sync::Lazy;

/// A queue with a handler to run: the dispatcher calls `dispatch` once per
/// scheduling, and the queue reschedules itself while events remain.
pub(crate) trait Dispatch: Send + Sync {
    fn dispatch(self: Arc<Self>);
}

struct Ready {
    queues: Mutex<Queues>,
    wake: Condvar,
}

struct Queues {
    ready: VecDeque<Arc<dyn Dispatch>>,
    /// The dispatcher thread waits on `wake`. Only then is it notified: a
    /// notify is a system call even with nobody waiting, and a busy
    /// dispatcher finds the queue on its own.
    sleeping: bool,
}

static READY: Lazy<Arc<Ready>> = Lazy::new(|| {
    let ready = Arc::new(Ready {
        queues: Mutex::new(Queues {
            ready: VecDeque::new(),
            sleeping: false,
        }),
        wake: Condvar::new(),
    });
    let for_thread = ready.clone();
    let spawned = std::thread::Builder::new()
        .name("nhc-dispatch".into())
        .spawn(move || run(&for_thread));
    if let Err(e) = spawned {
        log::error!("cannot start the dispatcher thread: {e}");
    }
    ready
});

pub(crate) fn schedule(queue: Arc<dyn Dispatch>) {
    let ready = &*READY;
    let sleeping = {
        let mut queues = ready.queues.lock().unwrap_or_else(|p| p.into_inner());
        queues.ready.push_back(queue);
        queues.sleeping
    };
    if sleeping {
        ready.wake.notify_one();
    }
}

/// True when called on the dispatcher thread (user callbacks run there).
pub fn on_dispatcher_thread() -> bool {
    std::thread::current().name() == Some("nhc-dispatch")
}

fn run(ready: &Ready) {
    loop {
        let queue = {
            let mut queues = ready.queues.lock().unwrap_or_else(|p| p.into_inner());
            loop {
                if let Some(q) = queues.ready.pop_front() {
                    break q;
                }
                queues.sleeping = true;
                queues = ready.wake.wait(queues).unwrap_or_else(|p| p.into_inner());
                queues.sleeping = false;
            }
        };
        queue.dispatch();
    }
}
