//! Binary U-Boot environment images, the format `fw_printenv` reads from a
//! partition or file: a little-endian CRC-32 over the data, for redundant
//! environments a one-byte flag (which copy is newer), then `key=value`
//! entries, each ending in a NUL, the list ending in an empty entry. The
//! rest of the `env_size` bytes is padding (covered by the CRC).
//!
//! With a redundant layout the image may hold one copy (`env_size` bytes)
//! or both copies back to back (`2 * env_size`): like U-Boot, the valid copy
//! with the newer flag wins, the flag counting up and wrapping from 255 to 0.

use std::collections::BTreeMap;
use std::path::Path;

use crate::error::{Error, Result};

/// How one copy of the environment starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UbootEnvLayout {
    /// `crc32 (4 bytes) | data`: `CONFIG_ENV_REDUNDANT` off.
    #[default]
    Single,
    /// `crc32 (4 bytes) | flag (1 byte) | data`: `CONFIG_ENV_REDUNDANT` on.
    Redundant,
}

impl UbootEnvLayout {
    fn header_len(self) -> usize {
        match self {
            UbootEnvLayout::Single => 4,
            UbootEnvLayout::Redundant => 5,
        }
    }
}

/// Smallest usable size: a header plus the terminating empty entry.
const MIN_DATA: usize = 2;

/// Decodes an environment image of `env_size` bytes per copy into its
/// `key=value` entries. Errors say what is wrong: a size that does not
/// match, a CRC mismatch (with both values), or entries that are not text.
pub fn parse(
    image: &[u8],
    env_size: usize,
    layout: UbootEnvLayout,
) -> Result<BTreeMap<String, String>> {
    if env_size < layout.header_len() + MIN_DATA {
        return Err(bad(format!(
            "env_size {env_size} is too small for a {layout:?} U-Boot environment"
        )));
    }
    let copies = match layout {
        UbootEnvLayout::Redundant if image.len() >= 2 * env_size => 2,
        _ => 1,
    };
    if image.len() < env_size {
        return Err(bad(format!(
            "the image has {} bytes but env_size is {env_size}: check the environment size (CONFIG_ENV_SIZE, the third column of fw_env.config)",
            image.len()
        )));
    }
    let mut valid = Vec::new();
    let mut errors = Vec::new();
    for i in 0..copies {
        let copy = &image[i * env_size..(i + 1) * env_size];
        match check(copy, layout) {
            Ok((flag, data)) => valid.push((flag, data)),
            Err(e) => errors.push(if copies == 2 {
                format!("copy {}: {e}", i + 1)
            } else {
                e
            }),
        }
    }
    let data = match valid.as_slice() {
        [] => return Err(bad(errors.join("; "))),
        [(_, data)] => *data,
        [(f1, d1), (f2, d2)] => {
            if newer(*f2, *f1) {
                *d2
            } else {
                *d1
            }
        }
        _ => unreachable!("at most two copies"),
    };
    entries(data)
}

/// Reads and decodes an environment image file (see [`parse`]).
pub fn read(
    path: impl AsRef<Path>,
    env_size: usize,
    layout: UbootEnvLayout,
) -> Result<BTreeMap<String, String>> {
    let path = path.as_ref();
    let image = std::fs::read(path).map_err(|e| {
        Error::InvalidArgument(format!(
            "cannot read the U-Boot environment {}: {e}",
            path.display()
        ))
    })?;
    parse(&image, env_size, layout).map_err(|e| match e {
        Error::InvalidArgument(m) => Error::InvalidArgument(format!("{}: {m}", path.display())),
        other => other,
    })
}

fn bad(message: String) -> Error {
    Error::InvalidArgument(message)
}

/// The copy's flag (0 for single) and data, if its CRC matches.
fn check(copy: &[u8], layout: UbootEnvLayout) -> std::result::Result<(u8, &[u8]), String> {
    let stored = u32::from_le_bytes([copy[0], copy[1], copy[2], copy[3]]);
    let header = layout.header_len();
    let data = &copy[header..];
    let computed = crc32(data);
    if stored != computed {
        return Err(format!(
            "CRC mismatch: the header says {stored:#010x}, the data has {computed:#010x} (wrong env_size or layout, or a corrupt environment)"
        ));
    }
    let flag = if header == 5 { copy[4] } else { 0 };
    Ok((flag, data))
}

/// Whether flag `a` is newer than `b` (U-Boot's rule, with wrap-around).
fn newer(a: u8, b: u8) -> bool {
    match (a, b) {
        (0, 255) => true,
        (255, 0) => false,
        _ => a > b,
    }
}

fn entries(data: &[u8]) -> Result<BTreeMap<String, String>> {
    // The list ends at the first empty entry: a NUL at the start or a double NUL.
    let end = if data.first() == Some(&0) {
        Some(0)
    } else {
        data.windows(2).position(|w| w == [0, 0]).map(|p| p + 1)
    };
    let Some(end) = end else {
        return Err(bad(
            "the entries do not end with an empty entry (a double NUL)".into(),
        ));
    };
    let mut map = BTreeMap::new();
    if end == 0 {
        return Ok(map);
    }
    for (index, raw) in data[..end - 1].split(|b| *b == 0).enumerate() {
        let text = std::str::from_utf8(raw)
            .map_err(|_| bad(format!("entry {index} is not UTF-8 text")))?;
        match text.split_once('=') {
            Some((key, value)) if !key.is_empty() => {
                map.insert(key.to_owned(), value.to_owned());
            }
            _ => return Err(bad(format!("entry {index} is not key=value: {text:?}"))),
        }
    }
    Ok(map)
}

/// CRC-32 (IEEE 802.3, reflected, as zlib and U-Boot compute it).
pub(crate) fn crc32(bytes: &[u8]) -> u32 {
    const fn table() -> [u32; 256] {
        let mut table = [0u32; 256];
        let mut i = 0;
        while i < 256 {
            let mut c = i as u32;
            let mut k = 0;
            while k < 8 {
                c = if c & 1 != 0 {
                    0xEDB8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
                k += 1;
            }
            table[i] = c;
            i += 1;
        }
        table
    }
    static TABLE: [u32; 256] = table();
    let mut crc = !0u32;
    for b in bytes {
        crc = TABLE[((crc ^ u32::from(*b)) & 0xFF) as usize] ^ (crc >> 8);
    }
    !crc
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// An image of `env_size` bytes holding `pairs`, as `mkenvimage` makes it.
    pub(crate) fn image(pairs: &[(&str, &str)], env_size: usize, flag: Option<u8>) -> Vec<u8> {
        let header = if flag.is_some() { 5 } else { 4 };
        let mut data = Vec::new();
        for (k, v) in pairs {
            data.extend_from_slice(format!("{k}={v}").as_bytes());
            data.push(0);
        }
        data.push(0);
        data.resize(env_size - header, 0xFF);
        let mut out = crc32(&data).to_le_bytes().to_vec();
        out.extend(flag);
        out.extend(data);
        out
    }

    #[test]
    fn crc32_matches_the_standard_check_value() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
    }

    #[test]
    fn a_single_image_decodes() {
        let img = image(
            &[("a.nerves_fw_uuid", "u-1"), ("bootcmd", "run x=y")],
            256,
            None,
        );
        let env = parse(&img, 256, UbootEnvLayout::Single).unwrap();
        assert_eq!(env["a.nerves_fw_uuid"], "u-1");
        assert_eq!(env["bootcmd"], "run x=y", "values keep their '='");
        assert_eq!(env.len(), 2);
    }

    #[test]
    fn a_corrupt_image_is_a_crc_error() {
        let mut img = image(&[("k", "v")], 128, None);
        img[6] ^= 0x01;
        let err = parse(&img, 128, UbootEnvLayout::Single)
            .unwrap_err()
            .to_string();
        assert!(err.contains("CRC mismatch"), "{err}");
        // The wrong layout shifts the data: also a CRC error, not garbage.
        let err = parse(
            &image(&[("k", "v")], 128, None),
            128,
            UbootEnvLayout::Redundant,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("CRC mismatch"), "{err}");
    }

    #[test]
    fn sizes_are_checked() {
        let img = image(&[("k", "v")], 128, None);
        let err = parse(&img, 256, UbootEnvLayout::Single)
            .unwrap_err()
            .to_string();
        assert!(err.contains("128 bytes but env_size is 256"), "{err}");
        assert!(parse(&img, 5, UbootEnvLayout::Single).is_err());
        // A larger file (a whole partition) is fine: only env_size bytes count.
        let mut padded = img.clone();
        padded.resize(1000, 0);
        assert_eq!(
            parse(&padded, 128, UbootEnvLayout::Single).unwrap()["k"],
            "v"
        );
    }

    #[test]
    fn redundant_copies_pick_the_newer_valid_one() {
        let old = image(&[("v", "old")], 64, Some(7));
        let new = image(&[("v", "new")], 64, Some(8));
        let both = |a: &[u8], b: &[u8]| [a, b].concat();
        let pick = |img: &[u8]| parse(img, 64, UbootEnvLayout::Redundant).unwrap()["v"].clone();
        assert_eq!(pick(&both(&old, &new)), "new");
        assert_eq!(pick(&both(&new, &old)), "new");
        assert_eq!(pick(&old), "old", "one copy alone");
        // The flag wraps: 0 is newer than 255.
        let wrapped = image(&[("v", "wrapped")], 64, Some(0));
        let last = image(&[("v", "last")], 64, Some(255));
        assert_eq!(pick(&both(&last, &wrapped)), "wrapped");
        // A corrupt newer copy falls back to the older one.
        let mut broken = new.clone();
        broken[10] ^= 0xFF;
        assert_eq!(pick(&both(&old, &broken)), "old");
        let mut broken_old = old.clone();
        broken_old[10] ^= 0xFF;
        let err = parse(&both(&broken_old, &broken), 64, UbootEnvLayout::Redundant)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("copy 1: CRC mismatch") && err.contains("copy 2"),
            "{err}"
        );
    }

    #[test]
    fn malformed_entries_are_reported() {
        let mut data = b"novalue\0\0".to_vec();
        data.resize(60, 0);
        let mut img = crc32(&data).to_le_bytes().to_vec();
        img.extend(&data);
        let err = parse(&img, 64, UbootEnvLayout::Single)
            .unwrap_err()
            .to_string();
        assert!(err.contains("not key=value"), "{err}");

        let data = vec![b'a'; 60];
        let mut img = crc32(&data).to_le_bytes().to_vec();
        img.extend(&data);
        let err = parse(&img, 64, UbootEnvLayout::Single)
            .unwrap_err()
            .to_string();
        assert!(err.contains("double NUL"), "{err}");
    }

    #[test]
    fn a_missing_file_names_the_path() {
        let err = read("/nonexistent/uboot.env", 128, UbootEnvLayout::Single).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/uboot.env"), "{err}");
    }
}
