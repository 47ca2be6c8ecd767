//! Device events as the dataclasses of `nerves_hub_channel._device`.
//!
//! The classes are plain Python (typed, documented, printable without
//! secrets); this file only fills them in.

use nerves_hub_channel::nerves_hub::console::ConsoleEvent;
use nerves_hub_channel::nerves_hub::extensions::ExtensionEvent;
use nerves_hub_channel::nerves_hub::update_info::{FirmwareMeta, UpdateInfo};
use nerves_hub_channel::nerves_hub::{ArchiveInfo, DeviceEvent};
use nerves_hub_channel::{Event, Payload};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyModule, PyTuple};
use pyo3::IntoPyObjectExt;

use crate::convert;
use crate::outcomes;

static MODULE: PyOnceLock<Py<PyModule>> = PyOnceLock::new();

fn module(py: Python<'_>) -> PyResult<&Bound<'_, PyModule>> {
    MODULE
        .get_or_try_init(py, || Ok(py.import("nerves_hub_channel._device")?.unbind()))
        .map(|m| m.bind(py))
}

/// `nerves_hub_channel._device.<class>(**kwargs)`.
fn make<'py>(
    py: Python<'py>,
    class: &str,
    kwargs: Vec<(&str, Py<PyAny>)>,
) -> PyResult<Bound<'py, PyAny>> {
    let kw = PyDict::new(py);
    for (k, v) in kwargs {
        kw.set_item(k, v)?;
    }
    module(py)?.getattr(class)?.call((), Some(&kw))
}

fn any<'py, T: IntoPyObject<'py>>(py: Python<'py>, v: T) -> PyResult<Py<PyAny>> {
    v.into_py_any(py)
}

fn strings(py: Python<'_>, items: &[String]) -> PyResult<Py<PyAny>> {
    Ok(PyTuple::new(py, items)?.into_any().unbind())
}

fn json(py: Python<'_>, value: &serde_json::Value) -> PyResult<Py<PyAny>> {
    convert::to_python(py, &Payload::json(value))
}

fn firmware_meta<'py>(py: Python<'py>, m: &FirmwareMeta) -> PyResult<Bound<'py, PyAny>> {
    make(
        py,
        "FirmwareMeta",
        vec![
            ("uuid", any(py, &m.uuid)?),
            ("product", any(py, &m.product)?),
            ("version", any(py, &m.version)?),
            ("architecture", any(py, &m.architecture)?),
            ("platform", any(py, &m.platform)?),
            ("author", any(py, &m.author)?),
            ("description", any(py, &m.description)?),
            ("vcs_identifier", any(py, &m.vcs_identifier)?),
            ("misc", any(py, &m.misc)?),
        ],
    )
}

/// An `UpdateInfo` dataclass.
pub fn update_info<'py>(py: Python<'py>, u: &UpdateInfo) -> PyResult<Bound<'py, PyAny>> {
    make(
        py,
        "UpdateInfo",
        vec![
            ("update_available", any(py, u.update_available)?),
            ("firmware_url", any(py, &u.firmware_url)?),
            (
                "firmware_meta",
                firmware_meta(py, &u.firmware_meta)?.unbind(),
            ),
            ("size", any(py, u.size)?),
            ("checksum", any(py, &u.checksum)?),
            ("partials_checksums", strings(py, &u.partials_checksums)?),
            ("deployment_id", any(py, u.deployment_id)?),
            ("raw", json(py, &u.raw)?),
        ],
    )
}

fn archive<'py>(py: Python<'py>, a: &ArchiveInfo) -> PyResult<Bound<'py, PyAny>> {
    make(
        py,
        "ArchiveInfo",
        vec![
            ("uuid", any(py, &a.uuid)?),
            ("url", any(py, &a.url)?),
            ("size", any(py, a.size)?),
            ("version", any(py, &a.version)?),
            ("description", any(py, &a.description)?),
            ("platform", any(py, &a.platform)?),
            ("architecture", any(py, &a.architecture)?),
            ("uploaded_at", any(py, &a.uploaded_at)?),
            ("raw", json(py, &a.raw)?),
        ],
    )
}

fn console<'py>(py: Python<'py>, e: &ConsoleEvent) -> PyResult<Bound<'py, PyAny>> {
    match e {
        ConsoleEvent::Input(data) => make(py, "ConsoleInput", vec![("data", any(py, data)?)]),
        ConsoleEvent::WindowSize { width, height } => make(
            py,
            "ConsoleWindowSize",
            vec![("width", any(py, width)?), ("height", any(py, height)?)],
        ),
        ConsoleEvent::Restart => make(py, "ConsoleRestart", vec![]),
        ConsoleEvent::File { event, payload } => make(
            py,
            "ConsoleMessage",
            vec![("event", any(py, event)?), ("payload", json(py, payload)?)],
        ),
        ConsoleEvent::Other { event, payload } => make(
            py,
            "ConsoleMessage",
            vec![
                ("event", any(py, event)?),
                ("payload", convert::to_python(py, payload)?),
            ],
        ),
        #[allow(unreachable_patterns)]
        _ => make(
            py,
            "ConsoleMessage",
            vec![("event", any(py, "unknown")?), ("payload", py.None())],
        ),
    }
}

fn extension<'py>(py: Python<'py>, e: &ExtensionEvent) -> PyResult<Bound<'py, PyAny>> {
    let simple = |event: &str, names: &[String]| -> PyResult<Bound<'py, PyAny>> {
        make(
            py,
            "ExtensionEvent",
            vec![("event", any(py, event)?), ("names", strings(py, names)?)],
        )
    };
    match e {
        ExtensionEvent::Negotiated { attached, rejected } => make(
            py,
            "ExtensionEvent",
            vec![
                ("event", any(py, "negotiated")?),
                ("names", strings(py, attached)?),
                ("rejected", strings(py, rejected)?),
            ],
        ),
        ExtensionEvent::Attached { names } => simple("attached", names),
        ExtensionEvent::Detached { names } => simple("detached", names),
        ExtensionEvent::HealthCheck => simple("health_check", &[]),
        ExtensionEvent::LocationRequest => simple("location_request", &[]),
        ExtensionEvent::LocalShell { event } => simple(&format!("local_shell:{event}"), &[]),
        ExtensionEvent::Other { event, payload } => make(
            py,
            "ExtensionEvent",
            vec![
                ("event", any(py, "other")?),
                ("message", any(py, event)?),
                ("payload", convert::to_python(py, payload)?),
            ],
        ),
        #[allow(unreachable_patterns)]
        _ => simple("other", &[]),
    }
}

/// The channel events of the device's topics (`ChannelEvent`).
fn channel<'py>(py: Python<'py>, event: &Event) -> PyResult<Option<Bound<'py, PyAny>>> {
    let (topic, state, detail) = match event {
        Event::Joined {
            topic, response, ..
        } => (topic, "joined", convert::to_python(py, response)?),
        Event::JoinFailed { topic, failure, .. } => (
            topic,
            "join_failed",
            outcomes::join_error(py, topic, failure)?.unbind(),
        ),
        Event::ChannelError { topic, reason, .. } => (topic, "errored", any(py, reason)?),
        Event::ChannelClosed { topic, reason, .. } => (topic, "closed", any(py, reason)?),
        Event::Message {
            topic,
            event,
            payload,
            ..
        } => {
            return make(
                py,
                "DeviceMessage",
                vec![
                    ("topic", any(py, topic)?),
                    ("event", any(py, event)?),
                    ("payload", convert::to_python(py, payload)?),
                ],
            )
            .map(Some)
        }
        Event::IdentityInUse { sessions } => {
            return make(
                py,
                "IdentityInUse",
                vec![
                    ("sessions", any(py, sessions)?),
                    (
                        "reason",
                        any(
                            py,
                            nerves_hub_channel::event::identity_in_use_reason(*sessions),
                        )?,
                    ),
                ],
            )
            .map(Some)
        }
        _ => return Ok(None),
    };
    make(
        py,
        "ChannelEvent",
        vec![
            ("topic", any(py, topic)?),
            ("state", any(py, state)?),
            ("detail", detail),
        ],
    )
    .map(Some)
}

/// The Python object of a device event, or `None` for the socket's
/// connection events (reported through `on_state`) and failed casts.
pub fn event<'py>(py: Python<'py>, e: &DeviceEvent) -> PyResult<Option<Bound<'py, PyAny>>> {
    let obj = match e {
        DeviceEvent::Socket(event) => return channel(py, event),
        DeviceEvent::UpdateAvailable(info) => update_info(py, info)?,
        DeviceEvent::UpdateIgnored { uuid, reason } => make(
            py,
            "UpdateIgnored",
            vec![("uuid", any(py, uuid)?), ("reason", any(py, reason)?)],
        )?,
        DeviceEvent::UpdateProgress { stage, percent } => make(
            py,
            "UpdateProgress",
            vec![
                ("stage", any(py, stage.as_str())?),
                ("percent", any(py, percent)?),
            ],
        )?,
        DeviceEvent::UpdateFinished { ok, reason } => make(
            py,
            "UpdateFinished",
            vec![("ok", any(py, ok)?), ("reason", any(py, reason)?)],
        )?,
        DeviceEvent::Reboot => make(py, "Reboot", vec![])?,
        DeviceEvent::Identify => make(py, "Identify", vec![])?,
        DeviceEvent::Archive(info) => archive(py, info)?,
        DeviceEvent::FwupPublicKeys(keys) => {
            make(py, "FwupPublicKeys", vec![("keys", strings(py, keys)?)])?
        }
        DeviceEvent::ArchivePublicKeys(keys) => {
            make(py, "ArchivePublicKeys", vec![("keys", strings(py, keys)?)])?
        }
        DeviceEvent::ScriptRun { script_ref, text } => make(
            py,
            "ScriptRun",
            vec![
                ("script_ref", any(py, script_ref)?),
                ("text", any(py, text)?),
            ],
        )?,
        DeviceEvent::ExtensionsGet => make(py, "ExtensionsGet", vec![])?,
        DeviceEvent::Console(c) => console(py, c)?,
        DeviceEvent::Extension(x) => extension(py, x)?,
        DeviceEvent::InvalidMessage {
            event,
            detail,
            payload,
        } => make(
            py,
            "InvalidMessage",
            vec![
                ("event", any(py, event)?),
                ("detail", any(py, detail)?),
                ("payload", convert::to_python(py, payload)?),
            ],
        )?,
        DeviceEvent::Other {
            topic,
            event,
            payload,
        } => make(
            py,
            "DeviceMessage",
            vec![
                ("topic", any(py, topic)?),
                ("event", any(py, event)?),
                ("payload", convert::to_python(py, payload)?),
            ],
        )?,
        #[allow(unreachable_patterns)]
        _ => return Ok(None),
    };
    Ok(Some(obj))
}
