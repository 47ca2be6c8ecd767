//! What blocking waits need to know about a socket's connection, updated
//! without the GIL as events leave the core (before any callback runs), so
//! that `wait_connected` and `close` do not depend on the delivery thread.

use std::sync::{Condvar, Mutex, MutexGuard};

use nerves_hub_channel::{Error, Event};

#[derive(Default)]
pub struct Seen {
    /// Counts the outcomes of connection attempts (connected, failed).
    pub generation: u64,
    /// An attempt is under way (`Connecting` seen, no outcome yet).
    pub attempting: bool,
    /// The latest outcome: `None` = connected, `Some(err)` = failed.
    pub outcome: Option<Option<Error>>,
    /// The error of the latest failed attempt, until a success.
    pub last_error: Option<Error>,
    /// The socket's last event (`Closed`) has been seen.
    pub closed: bool,
    /// ... and its callbacks have run: no callback of the socket runs any more.
    pub finished: bool,
    /// `generation` when `connect()` was last called.
    pub connect_generation: u64,
    /// The last failure `wait_connected` raised, so it raises each one once
    /// (a retry loop then waits for the next attempt instead of spinning).
    pub reported_generation: u64,
}

#[derive(Default)]
pub struct Watch {
    pub seen: Mutex<Seen>,
    pub changed: Condvar,
}

impl Watch {
    pub fn lock(&self) -> MutexGuard<'_, Seen> {
        self.seen.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn update(&self, event: &Event) {
        {
            let mut s = self.lock();
            match event {
                Event::Connecting { .. } => s.attempting = true,
                Event::Connected => {
                    s.generation += 1;
                    s.outcome = Some(None);
                    s.last_error = None;
                    s.attempting = false;
                }
                Event::Disconnected { reason: error, .. } | Event::AuthError { error, .. } => {
                    s.last_error = Some(error.clone());
                    // Only the end of an attempt is an outcome: a connection
                    // that drops later (or a user's disconnect) is not one.
                    if s.attempting {
                        s.attempting = false;
                        s.generation += 1;
                        s.outcome = Some(Some(error.clone()));
                    }
                }
                Event::Closed => s.closed = true,
                _ => return,
            }
        }
        self.changed.notify_all();
    }

    pub fn finished(&self) {
        self.lock().finished = true;
        self.changed.notify_all();
    }

    pub fn connect_called(&self) {
        let mut s = self.lock();
        s.connect_generation = s.generation;
    }
}
