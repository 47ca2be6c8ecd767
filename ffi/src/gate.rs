//! What every router shares, whatever its handle kind: the closures are
//! looked up under a lock and called without it, one consumer at a time;
//! `close` marks the handle freed and waits for a callback running on
//! another thread (not for one on its own thread: what it holds is released
//! when it returns); the last event is remembered for `_dispatch`.

use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::thread::ThreadId;

/// A router's closures (`T`) behind the gate.
pub(crate) struct Gated<T> {
    /// The handle was freed: nothing is called any more.
    pub closed: bool,
    /// The thread running a callback of this handle.
    in_call: Option<ThreadId>,
    /// Threads in `wait_idle`: a condvar notify is a system call even with
    /// no waiter, and a callback ends per event.
    idle_waiters: usize,
    data: T,
}

impl<T> Deref for Gated<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.data
    }
}

impl<T> DerefMut for Gated<T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.data
    }
}

pub(crate) struct Gate<T> {
    inner: Mutex<Gated<T>>,
    idle: Condvar,
    /// The handle's last event has been routed.
    ended: AtomicBool,
}

impl<T> Gate<T> {
    pub fn new(data: T) -> Gate<T> {
        Gate {
            inner: Mutex::new(Gated {
                closed: false,
                in_call: None,
                idle_waiters: 0,
                data,
            }),
            idle: Condvar::new(),
            ended: AtomicBool::new(false),
        }
    }

    pub fn lock(&self) -> MutexGuard<'_, Gated<T>> {
        // Callbacks run outside the lock, so poisoning can only come from a
        // bug in a router; the data stays usable.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Waits until no callback of this handle runs on another thread. A
    /// callback on this thread (we are inside it) is not waited for.
    pub fn wait_idle<'a>(&'a self, mut g: MutexGuard<'a, Gated<T>>) -> MutexGuard<'a, Gated<T>> {
        let me = std::thread::current().id();
        while g.in_call.is_some_and(|t| t != me) {
            g.idle_waiters += 1;
            g = self.idle.wait(g).unwrap_or_else(|p| p.into_inner());
            g.idle_waiters -= 1;
        }
        g
    }

    pub fn ended(&self) -> bool {
        self.ended.load(Ordering::Acquire)
    }

    pub fn set_ended(&self) {
        self.ended.store(true, Ordering::Release);
    }

    pub fn is_closed(&self) -> bool {
        self.lock().closed
    }

    /// Stops every callback and hands what `take` takes out to the caller,
    /// to be dropped without the lock.
    pub fn close<R>(&self, take: impl FnOnce(&mut T) -> R) -> R {
        let mut g = self.lock();
        g.closed = true;
        let mut g = self.wait_idle(g);
        take(&mut g.data)
    }

    /// Starts delivering one event on this thread: `None` once the handle
    /// is freed (the event is dropped; a `last` one still ends the stream).
    /// `pick` takes what the delivery needs under the lock. The returned
    /// guard marks the gate idle when dropped, even by a panic.
    pub fn enter<R>(&self, last: bool, pick: impl FnOnce(&T) -> R) -> Option<(InCall<'_, T>, R)> {
        let mut g = self.lock();
        if g.closed {
            if last {
                self.set_ended();
            }
            return None;
        }
        g.in_call = Some(std::thread::current().id());
        let picked = pick(&g.data);
        drop(g);
        Some((InCall(self), picked))
    }
}

/// Marks the gate idle when a delivery ends, even by a panic.
pub(crate) struct InCall<'a, T>(&'a Gate<T>);

impl<T> Drop for InCall<'_, T> {
    fn drop(&mut self) {
        let mut g = self.0.lock();
        g.in_call = None;
        let waiters = g.idle_waiters > 0;
        drop(g);
        if waiters {
            self.0.idle.notify_all();
        }
    }
}
