//! Python module of nerves_hub_channel: `nerves_hub_channel._native`.
//!
//! A thin skin over the core: configuration, payload conversion, blocking
//! waits that release the GIL, and delivery of events to Python callbacks.
//! No protocol logic lives here. The asyncio API, the exceptions and the
//! type stubs are plain Python beside it (`python/nerves_hub_channel`).

mod channel;
mod convert;
mod delivery;
mod device;
mod device_convert;
mod device_options;
mod device_router;
mod duration;
mod errors;
mod handle;
mod inline;
mod json_decode;
mod lifecycle;
mod logging;
mod options;
mod outcomes;
mod params;
mod pkcs11_key;
mod py_sink;
mod registry;
mod router;
mod socket;
mod state;
mod thread_state;
mod wait;
mod watch;

use pyo3::prelude::*;

/// Sets the number of I/O threads of the library's runtime (default 1).
/// Only before the first socket is created; a fleet simulator wants more.
#[pyfunction]
fn configure(worker_threads: usize) -> PyResult<()> {
    nerves_hub_channel::runtime::configure(worker_threads).map_err(errors::py_err)
}

/// Closes every socket of the process and stops the library's I/O threads
/// (for a clean exit and for leak checkers). Sockets created afterwards
/// start them again.
#[pyfunction]
fn shutdown(py: Python<'_>) {
    registry::close_all(py, CLOSE_WAIT);
    py.detach(nerves_hub_channel::runtime::shutdown);
}

/// How long shutdown and exit wait for sockets to close their connections.
const CLOSE_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// The keyword defaults of :class:`Socket`, as the core defines them.
#[pyfunction]
fn _defaults(py: Python<'_>) -> PyResult<Bound<'_, pyo3::types::PyDict>> {
    options::defaults(py)
}

/// Registered with `atexit` by the package: closes every socket (letting
/// their connections end), stops the delivery thread and the I/O runtime,
/// and hands the last log records to `logging`, all while the interpreter
/// is still whole, so that no library thread touches Python during its
/// finalization.
#[pyfunction]
fn _atexit(py: Python<'_>) {
    thread_state::exiting();
    registry::close_all(py, CLOSE_WAIT);
    inline::stop(py);
    delivery::stop(py);
    py.detach(nerves_hub_channel::runtime::shutdown);
    logging::stop(py);
}

#[pymodule(gil_used = true)]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    logging::install(m.py())?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_class::<lifecycle::HandleBase>()?;
    m.add_class::<socket::Socket>()?;
    m.add_class::<channel::Channel>()?;
    m.add_class::<state::StateChange>()?;
    m.add_class::<device::Device>()?;
    m.add_class::<pkcs11_key::PyPkcs11Key>()?;
    m.add_class::<pkcs11_key::PySigningCallback>()?;
    m.add_function(wrap_pyfunction!(configure, m)?)?;
    m.add_function(wrap_pyfunction!(device::read_uboot_env, m)?)?;
    m.add_function(wrap_pyfunction!(shutdown, m)?)?;
    m.add_function(wrap_pyfunction!(_defaults, m)?)?;
    m.add_function(wrap_pyfunction!(_atexit, m)?)?;
    m.add_function(wrap_pyfunction!(logging::_log_level_changed, m)?)?;
    m.add_function(wrap_pyfunction!(logging::_poll_log_level, m)?)?;
    Ok(())
}
