//! Every socket made from Python, so that `shutdown()` and interpreter exit
//! can close them and let them finish before the core stops its runtime
//! (which drops connection tasks where they stand, mid-close included).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use nerves_hub_channel::{ConnectionState, Socket};
use pyo3::prelude::*;

static NEXT: AtomicU64 = AtomicU64::new(1);
static SOCKETS: Mutex<Option<HashMap<u64, Socket>>> = Mutex::new(None);

fn sockets() -> MutexGuard<'static, Option<HashMap<u64, Socket>>> {
    SOCKETS.lock().unwrap_or_else(|p| p.into_inner())
}

pub fn register(socket: &Socket) -> u64 {
    let id = NEXT.fetch_add(1, Ordering::Relaxed);
    sockets()
        .get_or_insert_with(HashMap::new)
        .insert(id, socket.clone());
    id
}

/// The Python object is gone; the socket lives on while channels use it.
pub fn unregister(id: u64) {
    let removed = sockets().as_mut().and_then(|m| m.remove(&id));
    drop(removed);
}

/// Closes every registered socket and waits (GIL released, at most
/// `timeout`) until each has closed its connection.
pub fn close_all(py: Python<'_>, timeout: Duration) {
    // A forked child has no connection tasks to wait for.
    if nerves_hub_channel::runtime::ensure_not_forked().is_err() {
        return;
    }
    let all: Vec<Socket> = sockets()
        .as_ref()
        .map(|m| m.values().cloned().collect())
        .unwrap_or_default();
    for s in &all {
        s.close();
    }
    py.detach(|| {
        let deadline = Instant::now() + timeout;
        for s in &all {
            // The core offers no completion signal for this; its state flips
            // to Closed once the connection is shut, within milliseconds.
            while s.state() != ConnectionState::Closed && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    });
}
