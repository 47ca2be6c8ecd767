//! "The connection task has ended and released everything it held."
//!
//! The task owns the TLS client, and with it the client key: a PKCS#11
//! session or a signing callback whose `drop` is the application's code.
//! Freeing a handle promises that nothing of it runs afterwards, and a
//! process that exits right after a free must not have its I/O thread
//! close a PKCS#11 session while the module's own exit handlers tear the
//! module down. So the task marks this latch as the very last thing it
//! drops, and a free waits for it.

use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

#[derive(Default)]
pub(crate) struct Finished {
    done: Mutex<bool>,
    cv: Condvar,
}

impl Finished {
    fn mark(&self) {
        *self.done.lock().unwrap_or_else(|p| p.into_inner()) = true;
        self.cv.notify_all();
    }

    /// Waits up to `timeout` for the task's end; whether it ended.
    pub fn wait(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut done = self.done.lock().unwrap_or_else(|p| p.into_inner());
        while !*done {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                return false;
            };
            done = self
                .cv
                .wait_timeout(done, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        true
    }
}

/// Held by the task as its last field (fields drop in declaration order),
/// so the latch is marked only after the TLS client and the connection are
/// gone.
pub(crate) struct MarkOnDrop(pub Arc<super::Shared>);

impl Drop for MarkOnDrop {
    fn drop(&mut self) {
        self.0.finished.mark();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_times_out_until_marked_then_returns_at_once() {
        let shared = Arc::new(super::super::Shared::new());
        assert!(!shared.finished.wait(Duration::from_millis(10)));
        let guard = MarkOnDrop(shared.clone());
        let waiter = {
            let shared = shared.clone();
            std::thread::spawn(move || shared.finished.wait(Duration::from_secs(30)))
        };
        drop(guard);
        assert!(waiter.join().unwrap());
        assert!(shared.finished.wait(Duration::ZERO));
    }
}
