//! Blocking waits that keep Python responsive: the GIL is released while
//! waiting, and the wait wakes at least every `SLICE` to run signal
//! handlers, so Ctrl-C interrupts a join or a push.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

use nerves_hub_channel::runtime;
use pyo3::prelude::*;

use crate::errors::new_err;

pub const SLICE: Duration = Duration::from_millis(100);

struct Unpark(Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

/// Waits for a core future (a join, leave or push outcome) until `deadline`.
/// `Ok(None)`: the deadline passed. `Err`: a signal handler raised.
pub fn future<F>(py: Python<'_>, fut: F, deadline: Option<Instant>) -> PyResult<Option<F::Output>>
where
    F: Future + Unpin + Send,
    F::Output: Send,
{
    let mut fut = fut;
    // The future is resolved on an I/O thread, which unparks this one.
    let waker = Waker::from(Arc::new(Unpark(thread::current())));
    if runtime::on_io_thread() {
        return match poll_until(&mut fut, &waker, Instant::now()) {
            Some(out) => Ok(Some(out)),
            None => Err(waits_for_itself()),
        };
    }
    loop {
        let until = slice_end(deadline);
        let done = py.detach(|| poll_until(&mut fut, &waker, until));
        if done.is_some() {
            return Ok(done);
        }
        py.check_signals()?;
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Ok(None);
        }
    }
}

fn poll_until<F: Future + Unpin>(fut: &mut F, waker: &Waker, until: Instant) -> Option<F::Output> {
    let mut cx = Context::from_waker(waker);
    loop {
        if let Poll::Ready(out) = Pin::new(&mut *fut).poll(&mut cx) {
            return Some(out);
        }
        let now = Instant::now();
        if now >= until {
            return None;
        }
        thread::park_timeout(until - now);
    }
}

/// Waits on `cond` until `done(&*mutex.lock())` or `deadline`; returns
/// whether `done` held. The GIL is released while waiting; callers lock
/// again to read what changed (the state only moves forward).
pub fn until<T: Send>(
    py: Python<'_>,
    mutex: &Mutex<T>,
    cond: &Condvar,
    deadline: Option<Instant>,
    done: impl Fn(&T) -> bool + Sync,
) -> PyResult<bool> {
    if runtime::on_io_thread() {
        return match done(&mutex.lock().unwrap_or_else(|p| p.into_inner())) {
            true => Ok(true),
            false => Err(waits_for_itself()),
        };
    }
    loop {
        let until = slice_end(deadline);
        let met = py.detach(|| {
            let mut guard = mutex.lock().unwrap_or_else(|p| p.into_inner());
            loop {
                if done(&guard) {
                    return true;
                }
                let now = Instant::now();
                if now >= until {
                    return false;
                }
                guard = cond
                    .wait_timeout(guard, until - now)
                    .unwrap_or_else(|p| p.into_inner())
                    .0;
            }
        });
        if met {
            return Ok(true);
        }
        py.check_signals()?;
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Ok(false);
        }
    }
}

/// An inline callback (or a join-params callable) runs on an I/O thread:
/// what it would wait for can only happen once it has returned.
fn waits_for_itself() -> PyErr {
    new_err(
        "Error",
        "an inline callback cannot wait: it runs on the I/O thread that would have to \
         answer; use join_nowait, leave_nowait or push_nowait",
    )
}

/// A wait that may be `None` (forever) as a deadline.
pub fn deadline(timeout: Option<Duration>) -> Option<Instant> {
    timeout.map(|t| Instant::now() + t)
}

fn slice_end(deadline: Option<Instant>) -> Instant {
    let slice = Instant::now() + SLICE;
    deadline.map_or(slice, |d| d.min(slice))
}
