//! Payloads between Python objects and the core's `Payload`.
//!
//! The core keeps payloads as JSON text. Outbound, the standard library's
//! C-accelerated `json` encoder makes it (one call, Python's own rules for
//! what is serialisable); inbound, `json_decode` builds the objects directly
//! and leaves what it cannot build exactly to `_json`'s decoder.
//! `bytes` travel as binary frames.

use nerves_hub_channel::Payload;
use pyo3::exceptions::{PyStopIteration, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyByteArray, PyBytes, PyDict, PyMemoryView, PyString};

use crate::errors::invalid;
use crate::json_decode;

static ENCODER: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
static DECODER: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

fn encoder(py: Python<'_>) -> PyResult<&Bound<'_, PyAny>> {
    ENCODER
        .get_or_try_init(py, || {
            let kw = PyDict::new(py);
            kw.set_item("separators", (",", ":"))?;
            // NaN and Infinity are not JSON; Phoenix servers reject them.
            kw.set_item("allow_nan", false)?;
            kw.set_item("ensure_ascii", false)?;
            let json = py.import("json")?;
            Ok(json
                .getattr("JSONEncoder")?
                .call((), Some(&kw))?
                .getattr("encode")?
                .unbind())
        })
        .map(|f| f.bind(py))
}

/// The decoder's `scan_once(text, index) -> (value, end)`: `_json`'s C
/// scanner, what `JSONDecoder.decode` calls after two regular-expression
/// matches for the whitespace around the value (Python code run for every
/// message; trimmed here in Rust instead).
fn scanner(py: Python<'_>) -> PyResult<&Bound<'_, PyAny>> {
    DECODER
        .get_or_try_init(py, || {
            let json = py.import("json")?;
            Ok(json
                .getattr("JSONDecoder")?
                .call0()?
                .getattr("scan_once")?
                .unbind())
        })
        .map(|f| f.bind(py))
}

/// `json.loads(text)` for a str, without its Python-level steps: what
/// `json_decode` leaves to `_json`.
fn decode(py: Python<'_>, text: &str) -> PyResult<Py<PyAny>> {
    // JSON's whitespace (RFC 8259), the same `decode` skips.
    let blank = |b: &u8| matches!(b, b' ' | b'\t' | b'\n' | b'\r');
    let start = text.bytes().take_while(blank).count();
    let end = text.len() - text[start..].bytes().rev().take_while(blank).count();
    let value = PyString::new(py, &text[start..end]);
    let scanned = match scanner(py)?.call1((&value, 0)) {
        Ok(scanned) => scanned,
        Err(e) if e.is_instance_of::<PyStopIteration>(py) => {
            return Err(PyValueError::new_err("the payload is not JSON: no value"));
        }
        Err(e) => return Err(e),
    };
    let (decoded, used): (Py<PyAny>, usize) = scanned.extract()?;
    if used != value.len()? {
        return Err(PyValueError::new_err(format!(
            "the payload is not JSON: extra data at character {}",
            used
        )));
    }
    Ok(decoded)
}

/// A Python payload: `bytes`-like objects become binary payloads, anything
/// else must be JSON-serialisable (dict, list, str, int, float, bool, None).
pub fn to_payload(obj: &Bound<'_, PyAny>) -> PyResult<Payload> {
    if let Ok(bytes) = obj.cast::<PyBytes>() {
        return Ok(Payload::Binary(bytes.as_bytes().to_vec()));
    }
    if let Ok(array) = obj.cast::<PyByteArray>() {
        return Ok(Payload::Binary(array.to_vec()));
    }
    if obj.cast::<PyMemoryView>().is_ok() {
        let bytes = obj.call_method0("tobytes")?;
        return Ok(Payload::Binary(
            bytes.cast::<PyBytes>()?.as_bytes().to_vec(),
        ));
    }
    let text = match encoder(obj.py())?.call1((obj,)) {
        Ok(text) => text,
        Err(e)
            if e.is_instance_of::<PyTypeError>(obj.py())
                || e.is_instance_of::<PyValueError>(obj.py()) =>
        {
            return Err(invalid(format!("the payload cannot be sent as JSON: {e}")));
        }
        Err(e) => return Err(e),
    };
    let text = text.cast::<PyString>()?.to_cow()?;
    Payload::from_json_text(&text)
        .map_err(|e| invalid(format!("the payload is not valid JSON: {e}")))
}

/// A core payload as a Python object: JSON decoded, binary as `bytes`.
pub fn to_python(py: Python<'_>, payload: &Payload) -> PyResult<Py<PyAny>> {
    match (payload.json_text(), payload.binary()) {
        (Some(text), _) => match json_decode::build(py, text)? {
            Some(value) => Ok(value),
            None => decode(py, text),
        },
        (None, Some(bytes)) => Ok(PyBytes::new(py, bytes).into_any().unbind()),
        (None, None) => Ok(py.None()),
    }
}
