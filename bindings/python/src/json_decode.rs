//! JSON payload text to Python objects, built directly in one pass.
//!
//! `_json`'s C scanner needs the payload as a `str` first (one copy and one
//! decode of the whole text), is reached through a Python-level call with
//! argument parsing, and then walks the `str` a character at a time. For a
//! device that gets one message at a time those steps were the largest part of
//! what a message cost the module beyond the core (docs/benchmarks.md,
//! "Payloads decoded in Rust"). Here the UTF-8 bytes are walked once and each
//! value is made with the C API; strings without escapes go to Python whole.
//!
//! The result must be what `json.loads` gives, types included (`1` is an int,
//! `1.0` a float, big integers exact, the last of duplicate keys wins). The
//! core has validated every payload text before it reaches here, so the walk
//! does not re-check the grammar; anything it meets that it does not expect,
//! and the one thing a Rust string cannot hold (an escaped surrogate without
//! its pair, which `json.loads` keeps as a lone surrogate), returns `None` and
//! the caller decodes with `_json` instead, which also words any error.

use std::ffi::CString;

use pyo3::prelude::*;
use pyo3::types::{PyBool, PyDict, PyFloat, PyList, PyString};

/// Deeper than this goes to `_json` (the core accepts at most 128 levels).
const MAX_DEPTH: u32 = 200;

/// Integers of up to this many digits fit an `i64`; longer ones are made
/// by Python from their digits (exact at any size, within Python's limit
/// on digits, which raises as `json.loads` would).
const I64_DIGITS: usize = 18;

/// Why the walk stopped: the text needs `_json`, or Python raised.
enum Stop {
    Fallback,
    Raised(PyErr),
}

impl From<PyErr> for Stop {
    fn from(e: PyErr) -> Stop {
        Stop::Raised(e)
    }
}

type Step<T> = Result<T, Stop>;

/// The Python value of a JSON text, `Ok(None)` when `_json` must decode it.
pub(crate) fn build(py: Python<'_>, text: &str) -> PyResult<Option<Py<PyAny>>> {
    let mut walk = Walk { py, text, pos: 0 };
    match walk.document() {
        Ok(value) => Ok(Some(value.unbind())),
        Err(Stop::Fallback) => Ok(None),
        Err(Stop::Raised(e)) => Err(e),
    }
}

struct Walk<'py, 'a> {
    py: Python<'py>,
    text: &'a str,
    pos: usize,
}

impl<'py> Walk<'py, '_> {
    fn document(&mut self) -> Step<Bound<'py, PyAny>> {
        let value = self.value(0)?;
        self.ws();
        if self.pos != self.text.len() {
            return Err(Stop::Fallback);
        }
        Ok(value)
    }

    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.pos).copied()
    }

    fn next(&mut self) -> Step<u8> {
        let b = self.peek().ok_or(Stop::Fallback)?;
        self.pos += 1;
        Ok(b)
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    fn value(&mut self, depth: u32) -> Step<Bound<'py, PyAny>> {
        if depth > MAX_DEPTH {
            return Err(Stop::Fallback);
        }
        self.ws();
        let py = self.py;
        match self.peek().ok_or(Stop::Fallback)? {
            b'{' => self.object(depth),
            b'[' => self.array(depth),
            b'"' => Ok(self.string()?.into_any()),
            b't' => self.word("true", PyBool::new(py, true).to_owned().into_any()),
            b'f' => self.word("false", PyBool::new(py, false).to_owned().into_any()),
            b'n' => self.word("null", py.None().into_bound(py)),
            _ => self.number(),
        }
    }

    fn word(&mut self, word: &str, value: Bound<'py, PyAny>) -> Step<Bound<'py, PyAny>> {
        if !self.text[self.pos..].starts_with(word) {
            return Err(Stop::Fallback);
        }
        self.pos += word.len();
        Ok(value)
    }

    fn object(&mut self, depth: u32) -> Step<Bound<'py, PyAny>> {
        self.pos += 1; // '{'
        let dict = PyDict::new(self.py);
        self.ws();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(dict.into_any());
        }
        loop {
            self.ws();
            if self.peek() != Some(b'"') {
                return Err(Stop::Fallback);
            }
            let key = self.string()?;
            self.ws();
            if self.next()? != b':' {
                return Err(Stop::Fallback);
            }
            let value = self.value(depth + 1)?;
            // As `json.loads`: a repeated key keeps its first place and its last value.
            dict.set_item(key, value)?;
            self.ws();
            match self.next()? {
                b',' => continue,
                b'}' => return Ok(dict.into_any()),
                _ => return Err(Stop::Fallback),
            }
        }
    }

    fn array(&mut self, depth: u32) -> Step<Bound<'py, PyAny>> {
        self.pos += 1; // '['
        let mut items = Vec::new();
        self.ws();
        if self.peek() == Some(b']') {
            self.pos += 1;
            return Ok(PyList::empty(self.py).into_any());
        }
        loop {
            items.push(self.value(depth + 1)?);
            self.ws();
            match self.next()? {
                b',' => continue,
                b']' => return Ok(PyList::new(self.py, items)?.into_any()),
                _ => return Err(Stop::Fallback),
            }
        }
    }

    fn string(&mut self) -> Step<Bound<'py, PyString>> {
        self.pos += 1; // '"'
        let start = self.pos;
        let rest = &self.text.as_bytes()[start..];
        let at = memchr::memchr2(b'"', b'\\', rest).ok_or(Stop::Fallback)?;
        if rest[at] == b'"' {
            // No escapes: the text between the quotes is the string. The
            // quote is ASCII, so both ends are character boundaries.
            self.pos = start + at + 1;
            return Ok(PyString::new(self.py, &self.text[start..start + at]));
        }
        let mut out = String::with_capacity(rest.len().min(4 * at + 64));
        let mut from = start;
        loop {
            let rest = &self.text.as_bytes()[from..];
            let at = memchr::memchr2(b'"', b'\\', rest).ok_or(Stop::Fallback)?;
            out.push_str(&self.text[from..from + at]);
            self.pos = from + at + 1;
            if rest[at] == b'"' {
                return Ok(PyString::new(self.py, &out));
            }
            self.escape(&mut out)?;
            from = self.pos;
        }
    }

    /// One escape after its backslash, appended to `out`.
    fn escape(&mut self, out: &mut String) -> Step<()> {
        let c = match self.next()? {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let unit = self.hex4()?;
                let code = match unit {
                    0xd800..=0xdbff => {
                        // A pair is two escapes; a half alone is a lone
                        // surrogate, which only `_json` can put in a str.
                        if !self.text[self.pos..].starts_with("\\u") {
                            return Err(Stop::Fallback);
                        }
                        self.pos += 2;
                        let low = self.hex4()?;
                        if !(0xdc00..=0xdfff).contains(&low) {
                            return Err(Stop::Fallback);
                        }
                        0x10000 + ((unit - 0xd800) << 10) + (low - 0xdc00)
                    }
                    0xdc00..=0xdfff => return Err(Stop::Fallback),
                    _ => unit,
                };
                char::from_u32(code).ok_or(Stop::Fallback)?
            }
            _ => return Err(Stop::Fallback),
        };
        out.push(c);
        Ok(())
    }

    fn hex4(&mut self) -> Step<u32> {
        let digits = self
            .text
            .get(self.pos..self.pos + 4)
            .ok_or(Stop::Fallback)?;
        if !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(Stop::Fallback);
        }
        self.pos += 4;
        u32::from_str_radix(digits, 16).map_err(|_| Stop::Fallback)
    }

    fn number(&mut self) -> Step<Bound<'py, PyAny>> {
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        let int_start = self.pos;
        self.digits();
        let int_digits = self.pos - int_start;
        if int_digits == 0 {
            return Err(Stop::Fallback);
        }
        let mut integer = true;
        if self.peek() == Some(b'.') {
            self.pos += 1;
            integer = false;
            self.digits();
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.pos += 1;
            integer = false;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            self.digits();
        }
        let literal = &self.text[start..self.pos];
        if !integer {
            // Rust and Python both round decimal text to the nearest double
            // (and overflow to infinity), as `float(literal)` does for json.
            let f: f64 = literal.parse().map_err(|_| Stop::Fallback)?;
            return Ok(PyFloat::new(self.py, f).into_any());
        }
        if int_digits <= I64_DIGITS {
            let n: i64 = literal.parse().map_err(|_| Stop::Fallback)?;
            let Ok(n) = n.into_pyobject(self.py);
            return Ok(n.into_any());
        }
        let digits = CString::new(literal).map_err(|_| Stop::Fallback)?;
        // SAFETY: `digits` is NUL-terminated and outlives the call; a null
        // end pointer is allowed; the result is a new reference or NULL with
        // an exception set (too many digits), which becomes the error.
        let n = unsafe {
            Bound::from_owned_ptr_or_err(
                self.py,
                pyo3::ffi::PyLong_FromString(digits.as_ptr(), std::ptr::null_mut(), 10),
            )
        }?;
        Ok(n)
    }

    fn digits(&mut self) {
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.pos += 1;
        }
    }
}
