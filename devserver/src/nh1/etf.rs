//! A small decoder for the Erlang external term format, enough for the
//! payloads Plug.Crypto tokens carry (what `:erlang.binary_to_term/1`
//! would read). Compressed terms, pids, funs and the like are refused.

const VERSION: u8 = 131;
const NEW_FLOAT_EXT: u8 = 70;
const SMALL_INTEGER_EXT: u8 = 97;
const INTEGER_EXT: u8 = 98;
const ATOM_EXT: u8 = 100;
const SMALL_TUPLE_EXT: u8 = 104;
const LARGE_TUPLE_EXT: u8 = 105;
const NIL_EXT: u8 = 106;
const BINARY_EXT: u8 = 109;
const SMALL_BIG_EXT: u8 = 110;
const LARGE_BIG_EXT: u8 = 111;
const SMALL_ATOM_EXT: u8 = 115;
const MAP_EXT: u8 = 116;
const ATOM_UTF8_EXT: u8 = 118;
const SMALL_ATOM_UTF8_EXT: u8 = 119;

/// Nesting beyond this is no token payload; it bounds the recursion.
const MAX_DEPTH: usize = 8;

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Term {
    /// Integers beyond i128 are refused rather than approximated.
    Int(i128),
    Float(f64),
    Atom(String),
    Binary(Vec<u8>),
    Tuple(Vec<Term>),
    Map(Vec<(Term, Term)>),
    Nil,
}

/// The whole input must be exactly one term.
pub(crate) fn decode(bytes: &[u8]) -> Option<Term> {
    let (&version, rest) = bytes.split_first()?;
    if version != VERSION {
        return None;
    }
    let mut reader = Reader { bytes: rest };
    let term = reader.term(0)?;
    reader.bytes.is_empty().then_some(term)
}

struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.bytes.len() {
            return None;
        }
        let (head, tail) = self.bytes.split_at(n);
        self.bytes = tail;
        Some(head)
    }

    fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }

    fn u16(&mut self) -> Option<usize> {
        let b = self.take(2)?;
        Some(usize::from(u16::from_be_bytes([b[0], b[1]])))
    }

    fn u32(&mut self) -> Option<usize> {
        let b = self.take(4)?;
        usize::try_from(u32::from_be_bytes([b[0], b[1], b[2], b[3]])).ok()
    }

    fn term(&mut self, depth: usize) -> Option<Term> {
        if depth > MAX_DEPTH {
            return None;
        }
        match self.u8()? {
            SMALL_INTEGER_EXT => Some(Term::Int(i128::from(self.u8()?))),
            INTEGER_EXT => {
                let b = self.take(4)?;
                Some(Term::Int(i128::from(i32::from_be_bytes([
                    b[0], b[1], b[2], b[3],
                ]))))
            }
            SMALL_BIG_EXT => {
                let n = usize::from(self.u8()?);
                self.big(n)
            }
            LARGE_BIG_EXT => {
                let n = self.u32()?;
                self.big(n)
            }
            NEW_FLOAT_EXT => {
                let b: [u8; 8] = self.take(8)?.try_into().ok()?;
                Some(Term::Float(f64::from_be_bytes(b)))
            }
            ATOM_EXT => {
                let n = self.u16()?;
                // Latin-1: every byte is the code point of the same value.
                Some(Term::Atom(
                    self.take(n)?.iter().map(|&b| char::from(b)).collect(),
                ))
            }
            SMALL_ATOM_EXT => {
                let n = usize::from(self.u8()?);
                Some(Term::Atom(
                    self.take(n)?.iter().map(|&b| char::from(b)).collect(),
                ))
            }
            ATOM_UTF8_EXT => {
                let n = self.u16()?;
                Some(Term::Atom(String::from_utf8(self.take(n)?.to_vec()).ok()?))
            }
            SMALL_ATOM_UTF8_EXT => {
                let n = usize::from(self.u8()?);
                Some(Term::Atom(String::from_utf8(self.take(n)?.to_vec()).ok()?))
            }
            BINARY_EXT => {
                let n = self.u32()?;
                Some(Term::Binary(self.take(n)?.to_vec()))
            }
            SMALL_TUPLE_EXT => {
                let n = usize::from(self.u8()?);
                self.tuple(n, depth)
            }
            LARGE_TUPLE_EXT => {
                let n = self.u32()?;
                self.tuple(n, depth)
            }
            MAP_EXT => {
                let n = self.u32()?;
                // Each pair takes at least two bytes, so a lying arity fails fast.
                if n > self.bytes.len() / 2 {
                    return None;
                }
                let mut pairs = Vec::with_capacity(n);
                for _ in 0..n {
                    let key = self.term(depth + 1)?;
                    let value = self.term(depth + 1)?;
                    pairs.push((key, value));
                }
                Some(Term::Map(pairs))
            }
            NIL_EXT => Some(Term::Nil),
            _ => None,
        }
    }

    fn tuple(&mut self, n: usize, depth: usize) -> Option<Term> {
        if n > self.bytes.len() {
            return None;
        }
        let mut items = Vec::with_capacity(n);
        for _ in 0..n {
            items.push(self.term(depth + 1)?);
        }
        Some(Term::Tuple(items))
    }

    /// Sign byte then `n` little-endian magnitude bytes.
    fn big(&mut self, n: usize) -> Option<Term> {
        let sign = self.u8()?;
        let digits = self.take(n)?;
        let mut magnitude: u128 = 0;
        for (i, &d) in digits.iter().enumerate() {
            if d == 0 {
                continue;
            }
            if i >= 16 {
                return None;
            }
            magnitude |= u128::from(d) << (8 * i);
        }
        let value = i128::try_from(magnitude).ok()?;
        match sign {
            0 => Some(Term::Int(value)),
            1 => Some(Term::Int(-value)),
            _ => None,
        }
    }
}
