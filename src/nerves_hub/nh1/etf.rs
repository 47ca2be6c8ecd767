//! The few Erlang external term format encodings a Plug.Crypto token payload
//! needs, byte for byte what `:erlang.term_to_binary/1` emits.

const VERSION: u8 = 131;
const SMALL_INTEGER_EXT: u8 = 97;
const INTEGER_EXT: u8 = 98;
const SMALL_TUPLE_EXT: u8 = 104;
const BINARY_EXT: u8 = 109;
const SMALL_BIG_EXT: u8 = 110;

pub(super) fn version(out: &mut Vec<u8>) {
    out.push(VERSION);
}

pub(super) fn small_tuple(out: &mut Vec<u8>, arity: u8) {
    out.extend_from_slice(&[SMALL_TUPLE_EXT, arity]);
}

/// An Elixir binary (string). Lengths beyond u32 cannot be encoded and are
/// not a realistic device identifier; they are truncated rather than panic.
pub(super) fn binary(out: &mut Vec<u8>, bytes: &[u8]) {
    let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX);
    out.push(BINARY_EXT);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&bytes[..len as usize]);
}

/// The smallest encoding Erlang picks: one byte for 0..=255, four for the
/// rest of the i32 range, otherwise a little-endian bignum with a sign byte.
pub(super) fn integer(out: &mut Vec<u8>, value: i64) {
    if let Ok(small) = u8::try_from(value) {
        out.extend_from_slice(&[SMALL_INTEGER_EXT, small]);
    } else if let Ok(int) = i32::try_from(value) {
        out.push(INTEGER_EXT);
        out.extend_from_slice(&int.to_be_bytes());
    } else {
        let magnitude = value.unsigned_abs().to_le_bytes();
        let len = magnitude.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
        out.extend_from_slice(&[SMALL_BIG_EXT, len as u8, u8::from(value < 0)]);
        out.extend_from_slice(&magnitude[..len]);
    }
}
