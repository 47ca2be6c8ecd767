//! A firmware image sink written in Python: any object with `write(bytes)`,
//! `finish()` and `abort(reason)`, and optionally `begin(update)` and a
//! `stage` attribute (`"downloading"` or `"updating"`).
//!
//! The updater calls sinks on the runtime's blocking pool (never on an I/O
//! thread), so taking the GIL here only waits for Python, never stalls the
//! network. An exception becomes the sink error reported as `failed`.

use nerves_hub_channel::nerves_hub::update::{ImageSink, Stage};
use nerves_hub_channel::nerves_hub::update_info::UpdateInfo;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::device_convert;
use crate::errors::invalid;

pub struct PySink {
    sink: Py<PyAny>,
    stage: Stage,
}

impl PySink {
    pub fn new(sink: &Bound<'_, PyAny>) -> PyResult<PySink> {
        for method in ["write", "finish", "abort"] {
            let ok = sink
                .getattr(method)
                .map(|m| m.is_callable())
                .unwrap_or(false);
            if !ok {
                return Err(invalid(format!(
                    "sink must have write(bytes), finish() and abort(reason) methods; {method} is missing"
                )));
            }
        }
        let stage = match sink.getattr("stage") {
            Ok(s) if s.is_none() => Stage::Downloading,
            Ok(s) => match s.extract::<String>()?.as_str() {
                "downloading" => Stage::Downloading,
                "updating" => Stage::Updating,
                other => {
                    return Err(invalid(format!(
                        "sink.stage must be \"downloading\" or \"updating\", got {other:?}"
                    )))
                }
            },
            Err(_) => Stage::Downloading,
        };
        Ok(PySink {
            sink: sink.clone().unbind(),
            stage,
        })
    }

    fn call(
        &self,
        what: &str,
        f: impl FnOnce(&Bound<'_, PyAny>) -> PyResult<()>,
    ) -> Result<(), String> {
        Python::attach(|py| {
            f(self.sink.bind(py)).map_err(|e| {
                // The message goes to the server as the failure reason; keep it short.
                let text = e.to_string();
                let text: String = text.chars().take(300).collect();
                format!("sink.{what} raised {text}")
            })
        })
    }
}

impl ImageSink for PySink {
    fn begin(&self, info: &UpdateInfo) -> Result<(), String> {
        self.call("begin", |sink| {
            if sink.hasattr("begin")? {
                let update = device_convert::update_info(sink.py(), info)?;
                sink.call_method1("begin", (update,))?;
            }
            Ok(())
        })
    }

    fn write(&self, chunk: &[u8]) -> Result<(), String> {
        self.call("write", |sink| {
            sink.call_method1("write", (PyBytes::new(sink.py(), chunk),))
                .map(drop)
        })
    }

    fn finish(&self) -> Result<(), String> {
        self.call("finish", |sink| sink.call_method0("finish").map(drop))
    }

    fn abort(&self, reason: &str) {
        if let Err(e) = self.call("abort", |sink| {
            sink.call_method1("abort", (reason,)).map(drop)
        }) {
            log::warn!("{e}");
        }
    }

    fn stage(&self) -> Stage {
        self.stage
    }
}
