//! MessagePack values and the JSON the application sees instead
//! (docs/messagepack.md has the table).
//!
//! Reading transcodes straight to JSON text (no intermediate tree), so a
//! payload costs one pass and its JSON is valid by construction. Types
//! JSON lacks map to tagged objects instead of being dropped:
//! - timestamps (extension -1) become RFC 3339 UTC strings, which is what
//!   NervesHub stores for them;
//! - `bin`, and `str` whose bytes are not UTF-8 (Msgpax packs every Elixir
//!   binary as `str`), become `{"$binary": "<base64>"}`;
//! - other extensions become `{"$ext": {"type": n, "data": "<base64>"}}`;
//! - integer map keys become their decimal text (as Jason writes them).
//!
//! Writing goes from JSON values, where every string is a `str`, plus the
//! timestamp rule of `msgpack.rs`.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use rmp::Marker;
use serde_json::Value;

use super::msgpack_time::{self, TIMESTAMP_EXT};
use super::{push_json_str, CodecError};

/// Deepest nesting accepted: what serde_json parses back (its limit of 128
/// counts the level it refuses), so every payload stays readable as JSON.
pub(crate) const MAX_DEPTH: usize = 127;

/// One MessagePack item's header, with the bytes of a scalar body.
pub(crate) enum Head<'a> {
    Nil,
    Bool(bool),
    UInt(u64),
    SInt(i64),
    F32(f32),
    F64(f64),
    Str(&'a [u8]),
    Bin(&'a [u8]),
    Array(u32),
    Map(u32),
    Ext(i8, &'a [u8]),
}

/// A cursor over one MessagePack frame.
pub(crate) struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(data: &'a [u8]) -> Reader<'a> {
        Reader { data, pos: 0 }
    }

    pub(crate) fn at_end(&self) -> bool {
        self.pos == self.data.len()
    }

    pub(crate) fn error(&self, detail: impl std::fmt::Display) -> CodecError {
        CodecError(format!("MessagePack: {detail} (at byte {})", self.pos))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], CodecError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|end| *end <= self.data.len())
            .ok_or_else(|| {
                self.error(format!(
                    "truncated: {n} more bytes needed, {} left",
                    self.data.len() - self.pos
                ))
            })?;
        let bytes = &self.data[self.pos..end];
        self.pos = end;
        Ok(bytes)
    }

    fn be<const N: usize>(&mut self) -> Result<[u8; N], CodecError> {
        let mut out = [0; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn len8(&mut self) -> Result<usize, CodecError> {
        Ok(usize::from(self.be::<1>()?[0]))
    }

    fn len16(&mut self) -> Result<usize, CodecError> {
        Ok(usize::from(u16::from_be_bytes(self.be()?)))
    }

    fn len32(&mut self) -> Result<usize, CodecError> {
        usize::try_from(u32::from_be_bytes(self.be()?)).map_err(|_| self.error("length overflow"))
    }

    fn ext(&mut self, len: usize) -> Result<Head<'a>, CodecError> {
        let ty = i8::from_be_bytes(self.be()?);
        Ok(Head::Ext(ty, self.take(len)?))
    }

    /// Reads the next item's header (and the body of a scalar).
    pub(crate) fn head(&mut self) -> Result<Head<'a>, CodecError> {
        let byte = self.be::<1>()?[0];
        Ok(match Marker::from_u8(byte) {
            Marker::FixPos(n) => Head::UInt(u64::from(n)),
            Marker::FixNeg(n) => Head::SInt(i64::from(n)),
            Marker::Null => Head::Nil,
            Marker::True => Head::Bool(true),
            Marker::False => Head::Bool(false),
            Marker::U8 => Head::UInt(u64::from(u8::from_be_bytes(self.be()?))),
            Marker::U16 => Head::UInt(u64::from(u16::from_be_bytes(self.be()?))),
            Marker::U32 => Head::UInt(u64::from(u32::from_be_bytes(self.be()?))),
            Marker::U64 => Head::UInt(u64::from_be_bytes(self.be()?)),
            Marker::I8 => Head::SInt(i64::from(i8::from_be_bytes(self.be()?))),
            Marker::I16 => Head::SInt(i64::from(i16::from_be_bytes(self.be()?))),
            Marker::I32 => Head::SInt(i64::from(i32::from_be_bytes(self.be()?))),
            Marker::I64 => Head::SInt(i64::from_be_bytes(self.be()?)),
            Marker::F32 => Head::F32(f32::from_be_bytes(self.be()?)),
            Marker::F64 => Head::F64(f64::from_be_bytes(self.be()?)),
            Marker::FixStr(n) => Head::Str(self.take(usize::from(n))?),
            Marker::Str8 => {
                let n = self.len8()?;
                Head::Str(self.take(n)?)
            }
            Marker::Str16 => {
                let n = self.len16()?;
                Head::Str(self.take(n)?)
            }
            Marker::Str32 => {
                let n = self.len32()?;
                Head::Str(self.take(n)?)
            }
            Marker::Bin8 => {
                let n = self.len8()?;
                Head::Bin(self.take(n)?)
            }
            Marker::Bin16 => {
                let n = self.len16()?;
                Head::Bin(self.take(n)?)
            }
            Marker::Bin32 => {
                let n = self.len32()?;
                Head::Bin(self.take(n)?)
            }
            Marker::FixArray(n) => Head::Array(u32::from(n)),
            Marker::Array16 => Head::Array(u32::from(u16::from_be_bytes(self.be()?))),
            Marker::Array32 => Head::Array(u32::from_be_bytes(self.be()?)),
            Marker::FixMap(n) => Head::Map(u32::from(n)),
            Marker::Map16 => Head::Map(u32::from(u16::from_be_bytes(self.be()?))),
            Marker::Map32 => Head::Map(u32::from_be_bytes(self.be()?)),
            Marker::FixExt1 => self.ext(1)?,
            Marker::FixExt2 => self.ext(2)?,
            Marker::FixExt4 => self.ext(4)?,
            Marker::FixExt8 => self.ext(8)?,
            Marker::FixExt16 => self.ext(16)?,
            Marker::Ext8 => {
                let n = self.len8()?;
                self.ext(n)?
            }
            Marker::Ext16 => {
                let n = self.len16()?;
                self.ext(n)?
            }
            Marker::Ext32 => {
                let n = self.len32()?;
                self.ext(n)?
            }
            Marker::Reserved => {
                self.pos -= 1;
                return Err(self.error("byte 0xc1 is never used in MessagePack"));
            }
        })
    }

    /// Transcodes the next item to JSON text appended to `out`.
    pub(crate) fn json(&mut self, out: &mut String, depth: usize) -> Result<(), CodecError> {
        let head = self.head()?;
        self.json_from(head, out, depth)
    }

    pub(crate) fn json_from(
        &mut self,
        head: Head<'a>,
        out: &mut String,
        depth: usize,
    ) -> Result<(), CodecError> {
        match head {
            Head::Nil => out.push_str("null"),
            Head::Bool(b) => out.push_str(if b { "true" } else { "false" }),
            Head::UInt(n) => out.push_str(&n.to_string()),
            Head::SInt(n) => out.push_str(&n.to_string()),
            Head::F32(f) => push_float(self, out, f.is_finite(), || serde_json::to_string(&f))?,
            Head::F64(f) => push_float(self, out, f.is_finite(), || serde_json::to_string(&f))?,
            Head::Str(bytes) => match std::str::from_utf8(bytes) {
                Ok(s) => push_json_str(out, s),
                Err(_) => push_tagged_binary(out, bytes),
            },
            Head::Bin(bytes) => push_tagged_binary(out, bytes),
            Head::Ext(TIMESTAMP_EXT, body) => {
                let text = msgpack_time::read_ext(body)
                    .and_then(|(secs, nanos)| msgpack_time::to_rfc3339(secs, nanos))
                    .map_err(|e| self.error(e))?;
                push_json_str(out, &text);
            }
            Head::Ext(ty, body) => {
                out.push_str("{\"$ext\":{\"type\":");
                out.push_str(&ty.to_string());
                out.push_str(",\"data\":\"");
                BASE64.encode_string(body, out);
                out.push_str("\"}}");
            }
            Head::Array(n) => {
                let depth = self.deeper(depth)?;
                out.push('[');
                for i in 0..n {
                    if i > 0 {
                        out.push(',');
                    }
                    self.json(out, depth)?;
                }
                out.push(']');
            }
            Head::Map(n) => {
                let depth = self.deeper(depth)?;
                out.push('{');
                for i in 0..n {
                    if i > 0 {
                        out.push(',');
                    }
                    self.key(out)?;
                    out.push(':');
                    self.json(out, depth)?;
                }
                out.push('}');
            }
        }
        Ok(())
    }

    fn deeper(&self, depth: usize) -> Result<usize, CodecError> {
        if depth >= MAX_DEPTH {
            return Err(self.error(format!("nested deeper than {MAX_DEPTH} levels")));
        }
        Ok(depth + 1)
    }

    /// A map key as a JSON string: text, or an integer's decimal text.
    fn key(&mut self, out: &mut String) -> Result<(), CodecError> {
        let start = self.pos;
        match self.head()? {
            Head::Str(bytes) => match std::str::from_utf8(bytes) {
                Ok(s) => push_json_str(out, s),
                Err(_) => {
                    self.pos = start;
                    return Err(self.error("map key is not UTF-8 text"));
                }
            },
            Head::UInt(n) => push_json_str(out, &n.to_string()),
            Head::SInt(n) => push_json_str(out, &n.to_string()),
            _ => {
                self.pos = start;
                return Err(
                    self.error("map key is neither text nor an integer, and JSON keys are text")
                );
            }
        }
        Ok(())
    }

    /// Reads a text item (topic, event, reply status).
    pub(crate) fn text(&mut self, what: &str) -> Result<String, CodecError> {
        match self.head()? {
            Head::Str(bytes) => std::str::from_utf8(bytes)
                .map(str::to_owned)
                .map_err(|_| self.error(format!("{what} is not UTF-8"))),
            _ => Err(self.error(format!("{what} is not a string"))),
        }
    }

    /// Reads a ref: nil, text, or an integer (NervesHub turns integer refs
    /// into their decimal text, and so do we).
    pub(crate) fn reference(&mut self, what: &str) -> Result<Option<String>, CodecError> {
        match self.head()? {
            Head::Nil => Ok(None),
            Head::UInt(n) => Ok(Some(n.to_string())),
            Head::SInt(n) => Ok(Some(n.to_string())),
            Head::Str(bytes) => std::str::from_utf8(bytes)
                .map(|s| Some(s.to_owned()))
                .map_err(|_| self.error(format!("{what} is not UTF-8"))),
            _ => Err(self.error(format!("{what} is not nil, a string or an integer"))),
        }
    }
}

fn push_float<E: std::fmt::Display>(
    r: &Reader<'_>,
    out: &mut String,
    finite: bool,
    text: impl FnOnce() -> Result<String, E>,
) -> Result<(), CodecError> {
    if !finite {
        return Err(r.error("a NaN or infinite float has no JSON form"));
    }
    out.push_str(&text().map_err(|e| r.error(e))?);
    Ok(())
}

fn push_tagged_binary(out: &mut String, bytes: &[u8]) {
    out.push_str("{\"$binary\":\"");
    BASE64.encode_string(bytes, out);
    out.push_str("\"}");
}

// ---------------------------------------------------------------- writing

fn wrote<T, E: std::fmt::Debug>(result: Result<T, E>) -> Result<(), CodecError> {
    // Writing into a Vec cannot fail; a failure would be a bug worth a clear error.
    result
        .map(|_| ())
        .map_err(|e| CodecError(format!("MessagePack write failed: {e:?}")))
}

fn len32(n: usize, what: &str) -> Result<u32, CodecError> {
    u32::try_from(n)
        .map_err(|_| CodecError(format!("{what} of {n} items is too long for MessagePack")))
}

pub(crate) fn write_str(out: &mut Vec<u8>, s: &str) -> Result<(), CodecError> {
    wrote(rmp::encode::write_str(out, s))
}

pub(crate) fn write_ref(out: &mut Vec<u8>, r: Option<&str>) -> Result<(), CodecError> {
    match r {
        Some(s) => write_str(out, s),
        None => wrote(rmp::encode::write_nil(out)),
    }
}

pub(crate) fn write_bin(out: &mut Vec<u8>, bytes: &[u8]) -> Result<(), CodecError> {
    wrote(rmp::encode::write_bin(out, bytes))
}

pub(crate) fn write_array_len(out: &mut Vec<u8>, n: u32) -> Result<(), CodecError> {
    wrote(rmp::encode::write_array_len(out, n))
}

pub(crate) fn write_map_len(out: &mut Vec<u8>, n: u32) -> Result<(), CodecError> {
    wrote(rmp::encode::write_map_len(out, n))
}

/// Writes a JSON value. `timestamp_at` is the path (object keys) below this
/// value of a string to send as a timestamp extension when it is RFC 3339.
pub(crate) fn write_value(
    out: &mut Vec<u8>,
    value: &Value,
    timestamp_at: Option<&[&str]>,
) -> Result<(), CodecError> {
    match value {
        Value::Null => wrote(rmp::encode::write_nil(out)),
        Value::Bool(b) => wrote(rmp::encode::write_bool(out, *b)),
        Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                wrote(rmp::encode::write_uint(out, u))
            } else if let Some(i) = n.as_i64() {
                wrote(rmp::encode::write_sint(out, i))
            } else {
                // serde_json numbers without arbitrary precision are u64, i64 or finite f64.
                wrote(rmp::encode::write_f64(out, n.as_f64().unwrap_or(0.0)))
            }
        }
        Value::String(s) => match timestamp_at.and_then(|rest| {
            rest.is_empty()
                .then(|| msgpack_time::from_rfc3339(s))
                .flatten()
        }) {
            Some((secs, nanos)) => {
                let body = msgpack_time::ext_body(secs, nanos);
                wrote(rmp::encode::write_ext_meta(
                    out,
                    len32(body.len(), "timestamp")?,
                    TIMESTAMP_EXT,
                ))?;
                out.extend_from_slice(&body);
                Ok(())
            }
            None => write_str(out, s),
        },
        Value::Array(items) => {
            write_array_len(out, len32(items.len(), "array")?)?;
            items.iter().try_for_each(|v| write_value(out, v, None))
        }
        Value::Object(map) => {
            write_map_len(out, len32(map.len(), "object")?)?;
            for (k, v) in map {
                write_str(out, k)?;
                let below = timestamp_at.and_then(|path| match path.split_first() {
                    Some((first, rest)) if first == k => Some(rest),
                    _ => None,
                });
                write_value(out, v, below)?;
            }
            Ok(())
        }
    }
}
