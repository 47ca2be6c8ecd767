//! The process-wide tokio runtime: started lazily, sized before first use,
//! stopped explicitly by `shutdown` (nothing relies on atexit).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use once_cell::sync::Lazy;
use tokio::runtime::{Handle, Runtime};

use crate::error::{Error, Result};

struct Global {
    runtime: Option<Runtime>,
    pid: u32,
    /// Sockets to close on shutdown.
    sockets: Vec<Weak<dyn Closable>>,
}

pub(crate) trait Closable: Send + Sync {
    fn close_now(&self);
}

static WORKERS: AtomicUsize = AtomicUsize::new(1);
static GLOBAL: Lazy<Mutex<Global>> = Lazy::new(|| {
    Mutex::new(Global {
        runtime: None,
        pid: std::process::id(),
        sockets: Vec::new(),
    })
});

fn global() -> MutexGuard<'static, Global> {
    GLOBAL.lock().unwrap_or_else(|p| p.into_inner())
}

/// Sets the number of I/O worker threads (default 1). Only before first use.
pub fn configure(worker_threads: usize) -> Result<()> {
    if worker_threads == 0 || worker_threads > 1024 {
        return Err(Error::InvalidArgument(
            "worker_threads must be 1..=1024".into(),
        ));
    }
    let g = global();
    check_fork(&g)?;
    if g.runtime.is_some() {
        return Err(Error::InvalidArgument(
            "the runtime is already running; configure it before creating the first socket".into(),
        ));
    }
    WORKERS.store(worker_threads, Ordering::SeqCst);
    Ok(())
}

fn check_fork(g: &Global) -> Result<()> {
    if g.pid != std::process::id() {
        return Err(Error::Forked);
    }
    Ok(())
}

/// Fails with `Error::Forked` in a child process after fork().
pub fn ensure_not_forked() -> Result<()> {
    check_fork(&global())
}

pub(crate) fn handle() -> Result<Handle> {
    let mut g = global();
    check_fork(&g)?;
    if let Some(rt) = &g.runtime {
        return Ok(rt.handle().clone());
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(WORKERS.load(Ordering::SeqCst))
        .thread_name("nhc-io")
        .enable_all()
        .build()
        .map_err(|e| Error::Connect(format!("cannot start the I/O runtime: {e}")))?;
    let handle = rt.handle().clone();
    g.runtime = Some(rt);
    Ok(handle)
}

pub(crate) fn register(socket: Weak<dyn Closable>) {
    let mut g = global();
    g.sockets.retain(|s| s.strong_count() > 0);
    g.sockets.push(socket);
}

/// Closes every socket and stops the runtime's threads. Sockets created
/// afterwards start a new runtime. Safe to call more than once.
pub fn shutdown() {
    let (runtime, sockets) = {
        let mut g = global();
        if check_fork(&g).is_err() {
            return;
        }
        (g.runtime.take(), std::mem::take(&mut g.sockets))
    };
    for socket in sockets.iter().filter_map(Weak::upgrade) {
        socket.close_now();
    }
    drop(sockets);
    if let Some(rt) = runtime {
        if Handle::try_current().is_ok() {
            // Blocking here would panic inside a runtime thread.
            rt.shutdown_background();
        } else {
            rt.shutdown_timeout(Duration::from_secs(2));
        }
    }
}

pub(crate) fn closable<T: Closable + 'static>(value: &Arc<T>) -> Weak<dyn Closable> {
    let weak: Weak<T> = Arc::downgrade(value);
    weak
}
