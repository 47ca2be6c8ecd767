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
    queues: Mutex<VecDeque<Arc<dyn Dispatch>>>,
    wake: Condvar,
}

static READY: Lazy<Arc<Ready>> = Lazy::new(|| {
    let ready = Arc::new(Ready {
        queues: Mutex::new(VecDeque::new()),
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
    ready
        .queues
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push_back(queue);
    ready.wake.notify_one();
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
                if let Some(q) = queues.pop_front() {
                    break q;
                }
                queues = ready.wake.wait(queues).unwrap_or_else(|p| p.into_inner());
            }
        };
        queue.dispatch();
    }
}
