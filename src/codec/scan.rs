//! A JSON validator and V2 envelope scanner for the inbound hot path.
//!
//! Decoding every server frame through serde_json cost about half of the
//! client's CPU per message (docs/benchmarks.md): the envelope's strings went
//! through the generic deserializer and the payload was validated and then
//! copied. This scanner validates JSON in one pass over the bytes and hands
//! back slices. It only ever *accepts* what serde_json accepts; anything it
//! does not handle (escaped envelope strings, deep nesting, any error) returns
//! `None`, and the caller falls back to serde_json, which also produces the
//! error message. The `codec_server` fuzz target checks both agree.

/// Nesting deeper than this falls back to serde_json (whose limit is 128).
const MAX_DEPTH: u32 = 100;

/// The parts of `[join_ref, ref, topic, event, payload]`, borrowed.
pub(crate) struct Envelope<'a> {
    pub join_ref: Option<&'a str>,
    pub msg_ref: Option<&'a str>,
    pub topic: &'a str,
    pub event: &'a str,
    /// Validated JSON text.
    pub payload: &'a str,
}

/// Scans a V2 text frame whose four strings carry no escapes.
pub(crate) fn envelope(text: &str) -> Option<Envelope<'_>> {
    let mut s = Scanner::new(text.as_bytes());
    s.ws();
    s.byte(b'[')?;
    let join_ref = s.nullable_plain_string()?;
    s.comma()?;
    let msg_ref = s.nullable_plain_string()?;
    s.comma()?;
    let topic = s.plain_string()?;
    s.comma()?;
    let event = s.plain_string()?;
    s.comma()?;
    s.ws();
    let start = s.pos;
    s.value(0)?;
    let payload = &text[start..s.pos];
    s.ws();
    s.byte(b']')?;
    s.ws();
    s.at_end().then_some(Envelope {
        join_ref: join_ref.map(|r| &text[r.0..r.1]),
        msg_ref: msg_ref.map(|r| &text[r.0..r.1]),
        topic: &text[topic.0..topic.1],
        event: &text[event.0..event.1],
        payload,
    })
}

/// Scans a `phx_reply` body `{"status": ..., "response": ...}`: the status
/// and the response's JSON text (`None` when absent).
pub(crate) fn reply_body(text: &str) -> Option<(&str, Option<&str>)> {
    let mut s = Scanner::new(text.as_bytes());
    s.ws();
    s.byte(b'{')?;
    let mut status = None;
    let mut response = None;
    s.ws();
    if s.peek() == Some(b'}') {
        return None;
    }
    loop {
        s.ws();
        let key = s.plain_string()?;
        s.ws();
        s.byte(b':')?;
        s.ws();
        let start = s.pos;
        match &text[key.0..key.1] {
            // A duplicate key is an error for serde: let it say so.
            "status" if status.is_none() => {
                let r = s.plain_string()?;
                status = Some(&text[r.0..r.1]);
            }
            "response" if response.is_none() => {
                s.value(1)?;
                response = Some(&text[start..s.pos]);
            }
            "status" | "response" => return None,
            _ => s.value(1)?,
        }
        s.ws();
        match s.next()? {
            b',' => continue,
            b'}' => break,
            _ => return None,
        }
    }
    s.ws();
    if !s.at_end() {
        return None;
    }
    Some((status?, response))
}

struct Scanner<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Scanner<'a> {
    fn new(b: &'a [u8]) -> Scanner<'a> {
        Scanner { b, pos: 0 }
    }

    fn peek(&self) -> Option<u8> {
        self.b.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let c = self.peek()?;
        self.pos += 1;
        Some(c)
    }

    fn at_end(&self) -> bool {
        self.pos == self.b.len()
    }

    fn byte(&mut self, want: u8) -> Option<()> {
        (self.next()? == want).then_some(())
    }

    fn ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    fn comma(&mut self) -> Option<()> {
        self.ws();
        self.byte(b',')?;
        self.ws();
        Some(())
    }

    /// A string without escapes: the range of its contents.
    fn plain_string(&mut self) -> Option<(usize, usize)> {
        self.byte(b'"')?;
        let start = self.pos;
        loop {
            match self.next()? {
                b'"' => return Some((start, self.pos - 1)),
                b'\\' => return None,
                c if c < 0x20 => return None,
                _ => {}
            }
        }
    }

    fn nullable_plain_string(&mut self) -> Option<Option<(usize, usize)>> {
        if self.peek() == Some(b'n') {
            self.literal(b"null")?;
            Some(None)
        } else {
            self.plain_string().map(Some)
        }
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        let end = self.pos.checked_add(word.len())?;
        (self.b.get(self.pos..end)? == word).then(|| self.pos = end)
    }

    fn value(&mut self, depth: u32) -> Option<()> {
        match self.peek()? {
            b'"' => self.string(),
            b'{' => self.object(depth + 1),
            b'[' => self.array(depth + 1),
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            b'-' | b'0'..=b'9' => self.number(),
            _ => None,
        }
    }

    fn object(&mut self, depth: u32) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        self.byte(b'{')?;
        self.ws();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Some(());
        }
        loop {
            self.ws();
            self.string()?;
            self.ws();
            self.byte(b':')?;
            self.ws();
            self.value(depth)?;
            self.ws();
            match self.next()? {
                b',' => continue,
                b'}' => return Some(()),
                _ => return None,
            }
        }
    }

    fn array(&mut self, depth: u32) -> Option<()> {
        if depth > MAX_DEPTH {
            return None;
        }
        self.byte(b'[')?;
        self.ws();
        if self.peek() == Some(b']') {
            self.pos += 1;
            return Some(());
        }
        loop {
            self.ws();
            self.value(depth)?;
            self.ws();
            match self.next()? {
                b',' => continue,
                b']' => return Some(()),
                _ => return None,
            }
        }
    }

    fn string(&mut self) -> Option<()> {
        self.byte(b'"')?;
        loop {
            // The input is a &str, so multi-byte characters are valid UTF-8
            // already; only quotes, escapes and control characters matter.
            self.pos += special_byte(self.b.get(self.pos..)?)?;
            match self.next()? {
                b'"' => return Some(()),
                b'\\' => self.escape()?,
                _ => return None,
            }
        }
    }

    fn escape(&mut self) -> Option<()> {
        match self.next()? {
            b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => Some(()),
            b'u' => {
                for _ in 0..4 {
                    if !self.next()?.is_ascii_hexdigit() {
                        return None;
                    }
                }
                Some(())
            }
            _ => None,
        }
    }

    fn digits(&mut self) -> Option<()> {
        let start = self.pos;
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.pos += 1;
        }
        (self.pos > start).then_some(())
    }

    fn number(&mut self) -> Option<()> {
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.peek()? {
            b'0' => self.pos += 1,
            b'1'..=b'9' => self.digits()?,
            _ => return None,
        }
        if self.peek() == Some(b'.') {
            self.pos += 1;
            self.digits()?;
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.pos += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            self.digits()?;
        }
        Some(())
    }
}

/// The index of the first `"`, `\\` or control character. Payload strings
/// are most of a frame's bytes, so this goes 16 bytes at a time on x86_64
/// (SSE2 is part of its baseline) and 8 at a time elsewhere.
fn special_byte(b: &[u8]) -> Option<usize> {
    let skipped = skip_plain(b);
    let tail = b.get(skipped..)?;
    let at = tail.iter().position(|&c| is_special(c))?;
    Some(skipped + at)
}

fn is_special(c: u8) -> bool {
    c == b'"' || c == b'\\' || c < 0x20
}

/// How many leading bytes are certainly not special, in whole blocks.
#[cfg(target_arch = "x86_64")]
fn skip_plain(b: &[u8]) -> usize {
    use std::arch::x86_64::{
        __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_max_epu8, _mm_movemask_epi8, _mm_or_si128,
        _mm_set1_epi8,
    };
    let mut skipped = 0;
    for chunk in b.chunks_exact(16) {
        // SAFETY: SSE2 is always present on x86_64, and the load reads the
        // 16 bytes of `chunk` (unaligned loads are allowed).
        let mask = unsafe {
            let v = _mm_loadu_si128(chunk.as_ptr().cast::<__m128i>());
            let quote = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'"' as i8));
            let backslash = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'\\' as i8));
            // max(v, 0x1f) == 0x1f exactly for the bytes 0x00..=0x1f.
            let limit = _mm_set1_epi8(0x1f);
            let control = _mm_cmpeq_epi8(_mm_max_epu8(v, limit), limit);
            _mm_movemask_epi8(_mm_or_si128(_mm_or_si128(quote, backslash), control))
        };
        if mask != 0 {
            return skipped + mask.trailing_zeros() as usize;
        }
        skipped += 16;
    }
    skipped
}

#[cfg(not(target_arch = "x86_64"))]
fn skip_plain(b: &[u8]) -> usize {
    skip_plain_swar(b)
}

#[cfg(any(test, not(target_arch = "x86_64")))]
fn skip_plain_swar(b: &[u8]) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let mut skipped = 0;
    for chunk in b.chunks_exact(8) {
        let Ok(bytes) = <[u8; 8]>::try_from(chunk) else {
            break;
        };
        let w = u64::from_le_bytes(bytes);
        let quote = w ^ (ONES * u64::from(b'"'));
        let backslash = w ^ (ONES * u64::from(b'\\'));
        // The classic "has a zero byte" test, and "has a byte below 0x20";
        // false positives only end the fast part early.
        let found = (quote.wrapping_sub(ONES) & !quote)
            | (backslash.wrapping_sub(ONES) & !backslash)
            | (w.wrapping_sub(ONES * 0x20) & !w);
        if found & HIGH != 0 {
            break;
        }
        skipped += 8;
    }
    skipped
}

#[cfg(test)]
mod tests;
