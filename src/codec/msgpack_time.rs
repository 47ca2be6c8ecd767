//! MessagePack timestamps (extension type -1) and the RFC 3339 UTC strings
//! the application sees instead.
//!
//! NervesHub's Msgpax unpacks a timestamp into an Elixir `DateTime`, which
//! the server stores as ISO 8601 text: the string this module writes is the
//! one a JSON device would have sent. Years outside 0000..=9999 have no such
//! form (Elixir refuses them too) and are an error.

use crate::calendar::{civil_from_days, days_from_civil, days_in_month};

/// The extension type MessagePack reserves for timestamps.
pub(crate) const TIMESTAMP_EXT: i8 = -1;

const NANOS_PER_SEC: u32 = 1_000_000_000;
const SECS_PER_DAY: i64 = 86_400;
/// 0000-01-01T00:00:00Z and 10000-01-01T00:00:00Z in Unix seconds.
const MIN_SECS: i64 = -62_167_219_200;
const MAX_SECS: i64 = 253_402_300_800;

/// Reads the body of a timestamp extension (4, 8 or 12 bytes) into Unix
/// seconds and nanoseconds.
pub(crate) fn read_ext(data: &[u8]) -> Result<(i64, u32), String> {
    let (secs, nanos) = match data.len() {
        4 => (i64::from(be_u32(data)), 0),
        8 => {
            let v = u64::from_be_bytes(arr(data));
            // 30 bits of nanoseconds, then 34 bits of seconds.
            ((v & 0x3_ffff_ffff) as i64, (v >> 34) as u32)
        }
        12 => (i64::from_be_bytes(arr(&data[4..])), be_u32(data)),
        n => {
            return Err(format!(
                "timestamp extension of {n} bytes (4, 8 or 12 expected)"
            ))
        }
    };
    if nanos >= NANOS_PER_SEC {
        return Err(format!("timestamp with {nanos} nanoseconds"));
    }
    Ok((secs, nanos))
}

/// The shortest timestamp extension body for `secs` and `nanos`.
pub(crate) fn ext_body(secs: i64, nanos: u32) -> Vec<u8> {
    if (0..1 << 34).contains(&secs) {
        let v = (u64::from(nanos) << 34) | secs as u64;
        if nanos == 0 && secs <= i64::from(u32::MAX) {
            return (secs as u32).to_be_bytes().to_vec();
        }
        return v.to_be_bytes().to_vec();
    }
    let mut out = nanos.to_be_bytes().to_vec();
    out.extend_from_slice(&secs.to_be_bytes());
    out
}

/// `YYYY-MM-DDTHH:MM:SS.ffffffZ`, with nine digits of fraction when the
/// nanoseconds are not whole microseconds (Elixir keeps microseconds; the
/// extra digits are kept rather than dropped).
pub(crate) fn to_rfc3339(secs: i64, nanos: u32) -> Result<String, String> {
    if !(MIN_SECS..MAX_SECS).contains(&secs) {
        return Err(format!(
            "timestamp {secs} s is outside the years 0000..=9999"
        ));
    }
    let (y, m, d) = civil_from_days(secs.div_euclid(SECS_PER_DAY));
    let rem = secs.rem_euclid(SECS_PER_DAY);
    let (hh, mm, ss) = (rem / 3600, (rem % 3600) / 60, rem % 60);
    let frac = if nanos % 1000 == 0 {
        format!("{:06}", nanos / 1000)
    } else {
        format!("{nanos:09}")
    };
    Ok(format!(
        "{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}.{frac}Z"
    ))
}

/// Parses an RFC 3339 date-time (`T` or space, optional fraction of up to
/// nine digits, `Z` or a `±HH:MM` offset) into Unix seconds and nanoseconds.
/// `None` for anything else, including leap seconds.
pub(crate) fn from_rfc3339(text: &str) -> Option<(i64, u32)> {
    let b = text.as_bytes();
    if b.len() < 20 || b.len() > 40 {
        return None;
    }
    let num = |range: std::ops::Range<usize>| -> Option<u32> {
        let part = b.get(range)?;
        part.iter()
            .all(u8::is_ascii_digit)
            .then(|| part.iter().fold(0, |acc, d| acc * 10 + u32::from(d - b'0')))
    };
    let sep = |i: usize, allowed: &[u8]| b.get(i).is_some_and(|c| allowed.contains(c));
    if !(sep(4, b"-") && sep(7, b"-") && sep(10, b"Tt ") && sep(13, b":") && sep(16, b":")) {
        return None;
    }
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hh, mm, ss) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return None;
    }
    if hh > 23 || mm > 59 || ss > 59 {
        return None;
    }
    let mut i = 19;
    let mut nanos = 0u32;
    if b[i] == b'.' {
        let digits = b[i + 1..].iter().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 || digits > 9 {
            return None;
        }
        nanos = num(i + 1..i + 1 + digits)? * 10u32.pow(9 - digits as u32);
        i += 1 + digits;
    }
    let offset = match &b[i..] {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), _, _, b':', _, _] => {
            let (oh, om) = (num(i + 1..i + 3)?, num(i + 4..i + 6)?);
            if oh > 23 || om > 59 {
                return None;
            }
            let minutes = i64::from(oh * 60 + om);
            if *sign == b'+' {
                minutes * 60
            } else {
                -minutes * 60
            }
        }
        _ => return None,
    };
    let days = days_from_civil(i64::from(year), month, day);
    let secs = days * SECS_PER_DAY + i64::from(hh * 3600 + mm * 60 + ss) - offset;
    Some((secs, nanos))
}

fn be_u32(data: &[u8]) -> u32 {
    u32::from_be_bytes(arr(data))
}

/// The first N bytes (the callers checked the length).
fn arr<const N: usize>(data: &[u8]) -> [u8; N] {
    let mut out = [0; N];
    out.copy_from_slice(&data[..N]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_three_encodings_read_back() {
        assert_eq!(read_ext(&[0, 0, 0, 1]), Ok((1, 0)));
        let body = ext_body(1_786_496_523, 456_789_000);
        assert_eq!(body.len(), 8);
        assert_eq!(read_ext(&body), Ok((1_786_496_523, 456_789_000)));
        assert_eq!(ext_body(7, 0).len(), 4);
        let before_1970 = ext_body(-1, 5);
        assert_eq!(before_1970.len(), 12);
        assert_eq!(read_ext(&before_1970), Ok((-1, 5)));
        // Past 2514 the 34 bits of the 64-bit form no longer suffice.
        let far = ext_body(1 << 34, 0);
        assert_eq!(far.len(), 12);
        assert_eq!(read_ext(&far), Ok((1 << 34, 0)));
    }

    #[test]
    fn malformed_bodies_are_errors() {
        assert!(read_ext(&[0; 5]).unwrap_err().contains("5 bytes"));
        let too_many_nanos = [0x3b, 0x9a, 0xca, 0x00, 0, 0, 0, 0, 0, 0, 0, 0];
        assert!(read_ext(&too_many_nanos)
            .unwrap_err()
            .contains("1000000000 nanoseconds"));
    }

    #[test]
    fn rfc3339_text() {
        assert_eq!(
            to_rfc3339(1_786_496_523, 456_789_000).as_deref(),
            Ok("2026-08-12T01:02:03.456789Z")
        );
        assert_eq!(
            to_rfc3339(0, 1).as_deref(),
            Ok("1970-01-01T00:00:00.000000001Z")
        );
        assert_eq!(
            to_rfc3339(-1, 0).as_deref(),
            Ok("1969-12-31T23:59:59.000000Z")
        );
        assert!(to_rfc3339(MAX_SECS, 0).is_err());
        assert!(to_rfc3339(MIN_SECS - 1, 0).is_err());
        assert_eq!(
            to_rfc3339(MIN_SECS, 0).as_deref(),
            Ok("0000-01-01T00:00:00.000000Z")
        );
    }

    #[test]
    fn parses_what_it_writes_and_offsets() {
        for (secs, nanos) in [
            (0, 0),
            (1_786_496_523, 456_789_000),
            (-86_401, 1),
            (MAX_SECS - 1, 999_999_999),
        ] {
            let text = to_rfc3339(secs, nanos).expect("in range");
            assert_eq!(from_rfc3339(&text), Some((secs, nanos)), "{text}");
        }
        assert_eq!(from_rfc3339("1970-01-01T01:00:00+01:00"), Some((0, 0)));
        assert_eq!(
            from_rfc3339("1970-01-01 00:00:00.5-00:30"),
            Some((1800, 500_000_000))
        );
        for bad in [
            "2026-02-30T00:00:00Z",
            "2026-01-01T24:00:00Z",
            "2026-01-01T00:00:60Z",
            "2026-01-01T00:00:00",
            "2026-01-01T00:00:00.Z",
            "2026-01-01T00:00:00.1234567890Z",
            "2026-01-01T00:00:00+0100",
            "not a time at all, really",
            "2026-01-01T00:00:00Zjunk",
        ] {
            assert_eq!(from_rfc3339(bad), None, "{bad}");
        }
    }
}
