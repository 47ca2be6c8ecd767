//! The process-wide I/O threads: started lazily, sized before first use,
//! stopped explicitly by `shutdown` (nothing relies on atexit).
//!
//! Each I/O thread drives its own current-thread tokio runtime, and sockets
//! are dealt to them in turn. A socket's tasks then never migrate between
//! threads, and the library does without tokio's work-stealing scheduler,
//! whose only use of libm (`pow`) would otherwise load libm into every
//! device process (about 0.5 MiB of RSS).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use once_cell::sync::Lazy;
use tokio::runtime::Handle;
use tokio::sync::oneshot;

use crate::error::{Error, Result};

struct Global {
    runtime: Option<IoThreads>,
    pid: u32,
    /// Sockets to close on shutdown.
    sockets: Vec<Weak<dyn Closable>>,
}

pub(crate) trait Closable: Send + Sync {
    fn close_now(&self);
}

/// How long stopping waits for blocking tasks (file writes, fwup) to end.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);

/// How long a helper thread (DNS lookups, file writes, fwup) outlives its
/// last job. tokio's 10 s would leave an idle device with a fourth thread
/// for 10 s after every connect; a download's writes come far more often.
const BLOCKING_KEEP_ALIVE: Duration = Duration::from_millis(500);

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
    let threads = match &mut g.runtime {
        Some(threads) => threads,
        slot @ None => slot.insert(IoThreads::start(WORKERS.load(Ordering::SeqCst))?),
    };
    Ok(threads.next())
}

/// One current-thread runtime per I/O thread.
struct IoThreads {
    handles: Vec<Handle>,
    next: usize,
    stops: Vec<oneshot::Sender<()>>,
    threads: Vec<std::thread::JoinHandle<()>>,
    finished: mpsc::Receiver<()>,
    finished_tx: mpsc::Sender<()>,
}

impl IoThreads {
    fn start(count: usize) -> Result<IoThreads> {
        let (finished_tx, finished) = mpsc::channel();
        let mut threads = IoThreads {
            handles: Vec::with_capacity(count),
            next: 0,
            stops: Vec::with_capacity(count),
            threads: Vec::with_capacity(count),
            finished,
            finished_tx,
        };
        for _ in 0..count.max(1) {
            // On failure, `threads` is dropped, which stops the ones started.
            threads.spawn_one()?;
        }
        Ok(threads)
    }

    fn spawn_one(&mut self) -> Result<()> {
        let failed =
            |e: std::io::Error| Error::Connect(format!("cannot start the I/O runtime: {e}"));
        let rt = tokio::runtime::Builder::new_current_thread()
            .thread_name("nhc-io-blocking")
            .thread_keep_alive(BLOCKING_KEEP_ALIVE)
            .on_thread_start(|| IO_THREAD.set(true))
            .enable_all()
            .build()
            .map_err(failed)?;
        let handle = rt.handle().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        let finished = self.finished_tx.clone();
        let thread = std::thread::Builder::new()
            .name("nhc-io".into())
            .spawn(move || {
                IO_THREAD.set(true);
                // A dropped sender (the pool going away) stops the thread too.
                let _ = rt.block_on(stopped);
                rt.shutdown_timeout(SHUTDOWN_GRACE);
                let _ = finished.send(());
            })
            .map_err(failed)?;
        self.handles.push(handle);
        self.stops.push(stop);
        self.threads.push(thread);
        Ok(())
    }

    fn next(&mut self) -> Handle {
        let handle = self.handles[self.next % self.handles.len()].clone();
        self.next = self.next.wrapping_add(1);
        handle
    }

    /// Stops every thread and waits for them, within a bound: not at all
    /// from one of the library's own threads, which cannot wait for itself,
    /// and not forever for a thread stuck in a user's blocking call. An
    /// application's own runtime waits like any other thread.
    fn stop(mut self) {
        for stop in self.stops.drain(..) {
            let _ = stop.send(());
        }
        if on_io_thread() {
            return;
        }
        let deadline = Instant::now() + SHUTDOWN_GRACE + Duration::from_secs(1);
        for _ in 0..self.threads.len() {
            let left = deadline.saturating_duration_since(Instant::now());
            if self.finished.recv_timeout(left).is_err() {
                return;
            }
        }
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

thread_local! {
    /// Set on the library's I/O threads and their runtimes' helper threads.
    static IO_THREAD: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether the calling thread is one of the library's I/O threads (or
/// their helper threads): where a wait for the connection would wait for
/// itself, as from an inline callback. A thread of some other tokio runtime
/// (an application's, another extension's) is not one.
pub fn on_io_thread() -> bool {
    IO_THREAD.get()
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
    if let Some(threads) = runtime {
        threads.stop();
    }
}

pub(crate) fn closable<T: Closable + 'static>(value: &Arc<T>) -> Weak<dyn Closable> {
    let weak: Weak<T> = Arc::downgrade(value);
    weak
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_librarys_own_threads_are_io_threads() {
        assert!(!on_io_thread());
        let io = handle().expect("the I/O runtime starts");
        // A task runs on the I/O thread; spawn_blocking on a helper thread.
        let task = io.spawn(async {
            let helper = tokio::task::spawn_blocking(on_io_thread).await;
            (on_io_thread(), helper.expect("the helper ran"))
        });
        let other = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a runtime of the application's own");
        let (on_task, on_helper) = other.block_on(task).expect("the task ran");
        assert!(on_task);
        assert!(on_helper);
        // Another tokio runtime's threads are not the library's.
        assert!(!other.block_on(async { on_io_thread() }));
    }
}
