//! Rust `log` records to Python `logging` (logger "nerves_hub_channel").
//!
//! I/O threads never take the GIL to log: `log()` only queues the record
//! (bounded; overflow is counted and reported). A small thread takes the
//! GIL to hand queued records to Python. The `log` level follows the
//! Python logger's effective level, re-read at least once a second, so that
//! records nobody wants are not even formatted.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use log::{Level, LevelFilter, Log, Metadata};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyDict;

use crate::thread_state::KeptThreadState;

pub const LOGGER_NAME: &str = "nerves_hub_channel";
const CAPACITY: usize = 10_000;
/// How often the level is re-read when `logging` cannot tell us of its
/// changes (see `POLL_LEVEL`).
const REFRESH: Duration = Duration::from_secs(1);

/// How the logging thread learns of level changes. The package chooses at
/// import: `logging` tells us (it wraps `logging.Manager._clear_cache`,
/// which every `setLevel` and `disable` calls, to call `_log_level_changed`),
/// and the thread wakes for records only; or, on a Python without that
/// method, `_poll_log_level` makes it re-read the level every `REFRESH`.
/// Until the package has chosen, it does not poll either.
static POLL_LEVEL: AtomicBool = AtomicBool::new(false);

struct Record {
    level: Level,
    target: String,
    message: String,
    file: Option<String>,
    line: Option<u32>,
    thread: Option<String>,
    time: SystemTime,
}

#[derive(Default)]
struct Queue {
    records: VecDeque<Record>,
    dropped: u64,
    stop: bool,
    thread: Option<JoinHandle<()>>,
    pid: u32,
}

struct Bridge {
    queue: Mutex<Queue>,
    ready: Condvar,
}

static BRIDGE: OnceLock<Bridge> = OnceLock::new();
static LOGGER: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

fn bridge() -> &'static Bridge {
    BRIDGE.get_or_init(|| Bridge {
        queue: Mutex::new(Queue::default()),
        ready: Condvar::new(),
    })
}

impl Bridge {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }
}

struct Queued;

impl Log for Queued {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &log::Record<'_>) {
        // tungstenite traces the signed upgrade request and raw frames.
        if !self.enabled(record.metadata())
            || nerves_hub_channel::log_policy::may_leak_secrets(record.metadata())
        {
            return;
        }
        let rec = Record {
            level: record.level(),
            target: record.target().to_owned(),
            message: record.args().to_string(),
            file: record.file().map(str::to_owned),
            line: record.line(),
            thread: std::thread::current().name().map(str::to_owned),
            time: SystemTime::now(),
        };
        let b = bridge();
        let mut q = b.lock();
        if q.records.len() >= CAPACITY {
            q.dropped += 1;
            return;
        }
        q.records.push_back(rec);
        drop(q);
        b.ready.notify_one();
    }

    fn flush(&self) {}
}

static QUEUED: Queued = Queued;

/// The Python logger records go to.
pub fn logger(py: Python<'_>) -> PyResult<&Bound<'_, PyAny>> {
    LOGGER
        .get_or_try_init(py, || {
            Ok(py
                .import("logging")?
                .call_method1("getLogger", (LOGGER_NAME,))?
                .unbind())
        })
        .map(|l| l.bind(py))
}

/// Logs `message` with the exception `err` (traceback included) at ERROR,
/// from a thread that holds the GIL. Never raises.
pub fn exception(py: Python<'_>, message: &str, err: &PyErr) {
    let logged = logger(py).and_then(|l| {
        let kw = PyDict::new(py);
        kw.set_item("exc_info", err.value(py))?;
        l.call_method("error", ("%s", message), Some(&kw))
    });
    if let Err(e) = logged {
        // Logging itself is broken: Python's last resort for such errors.
        e.write_unraisable(py, None);
    }
}

/// Installs the bridge (once per process) and starts its thread.
pub fn install(py: Python<'_>) -> PyResult<()> {
    refresh_level(py)?;
    let b = bridge();
    let mut q = b.lock();
    if q.thread.is_some() && q.pid == std::process::id() {
        return Ok(());
    }
    // Fails only if a logger is already set, which is then ours.
    let _ = log::set_logger(&QUEUED);
    q.stop = false;
    q.pid = std::process::id();
    q.thread = Some(
        std::thread::Builder::new()
            .name("nhc-py-log".into())
            .spawn(run)
            .map_err(|e| {
                crate::errors::new_err("Error", format!("cannot start the logging thread: {e}"))
            })?,
    );
    Ok(())
}

/// Stops the thread and hands what is still queued to Python (at exit).
pub fn stop(py: Python<'_>) {
    let b = bridge();
    let thread = {
        let mut q = b.lock();
        q.stop = true;
        // After fork() the thread exists only in the parent.
        if q.pid != std::process::id() {
            None
        } else {
            q.thread.take()
        }
    };
    b.ready.notify_all();
    if let Some(t) = thread {
        py.detach(|| {
            let _ = t.join();
        });
    }
    let (records, dropped) = take(&mut b.lock());
    emit(py, records, dropped);
}

fn take(q: &mut Queue) -> (Vec<Record>, u64) {
    (
        q.records.drain(..).collect(),
        std::mem::take(&mut q.dropped),
    )
}

fn run() {
    // It attaches for every batch of records (and every REFRESH when it
    // polls): without a kept state, each attach would make and tear down a
    // thread state (see thread_state.rs).
    let _kept = KeptThreadState::new();
    let b = bridge();
    loop {
        let (records, dropped, stop) = {
            let mut q = b.lock();
            if q.records.is_empty() && !q.stop {
                q = if POLL_LEVEL.load(Ordering::Acquire) {
                    b.ready
                        .wait_timeout(q, REFRESH)
                        .unwrap_or_else(|p| p.into_inner())
                        .0
                } else {
                    b.ready.wait(q).unwrap_or_else(|p| p.into_inner())
                };
            }
            let (records, dropped) = take(&mut q);
            (records, dropped, q.stop)
        };
        let attached = Python::try_attach(|py| {
            let _ = refresh_level(py);
            emit(py, records, dropped);
        });
        if stop || attached.is_none() {
            return;
        }
    }
}

fn emit(py: Python<'_>, records: Vec<Record>, dropped: u64) {
    let Ok(logger) = logger(py) else { return };
    for rec in records {
        if let Err(e) = emit_one(py, logger, &rec) {
            e.write_unraisable(py, None);
        }
    }
    if dropped > 0 {
        let _ = logger.call_method1(
            "warning",
            (
                "%d log records of the Rust core were dropped (the queue was full)",
                dropped,
            ),
        );
    }
}

fn emit_one(py: Python<'_>, logger: &Bound<'_, PyAny>, rec: &Record) -> PyResult<()> {
    let level = python_level(rec.level);
    if !logger.call_method1("isEnabledFor", (level,))?.is_truthy()? {
        return Ok(());
    }
    let extra = PyDict::new(py);
    extra.set_item("rust_target", &rec.target)?;
    let name = logger.getattr("name")?;
    let file = rec.file.as_deref().unwrap_or("<rust>");
    let record = logger.call_method1(
        "makeRecord",
        (
            name,
            level,
            file,
            rec.line.unwrap_or(0),
            &rec.message,
            (),
            py.None(),
            py.None(),
            extra,
        ),
    )?;
    let created = rec
        .time
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    record.setattr("created", created)?;
    record.setattr("msecs", (created.fract() * 1000.0).floor())?;
    if let Some(thread) = &rec.thread {
        record.setattr("threadName", thread)?;
    }
    logger.call_method1("handle", (record,))?;
    Ok(())
}

fn python_level(level: Level) -> u32 {
    match level {
        Level::Error => 40,
        Level::Warn => 30,
        Level::Info => 20,
        Level::Debug => 10,
        Level::Trace => 5,
    }
}

/// A logger's level may have changed (called by the package's wrapper of
/// `logging.Manager._clear_cache`, with the GIL): the core's filter follows
/// at once. Never raises.
#[pyfunction]
pub fn _log_level_changed(py: Python<'_>) {
    let _ = refresh_level(py);
}

/// `logging` cannot tell us of level changes: the logging thread re-reads
/// the level every `REFRESH`.
#[pyfunction]
pub fn _poll_log_level() {
    POLL_LEVEL.store(true, Ordering::Release);
    bridge().ready.notify_one();
}

fn refresh_level(py: Python<'_>) -> PyResult<()> {
    let effective: u32 = logger(py)?.call_method0("getEffectiveLevel")?.extract()?;
    let filter = match effective {
        0..=5 => LevelFilter::Trace,
        6..=10 => LevelFilter::Debug,
        11..=20 => LevelFilter::Info,
        21..=30 => LevelFilter::Warn,
        31..=40 => LevelFilter::Error,
        _ => LevelFilter::Off,
    };
    log::set_max_level(filter);
    Ok(())
}
