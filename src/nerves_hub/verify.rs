//! Checks the image as it arrives: SHA-256 of each consecutive 1 MiB part
//! against `partials_checksums` when the server sent them, else of the
//! whole file against `checksum` (with partials, every byte is already
//! verified; see [`pipeline`]). A part is released to the sink only once it
//! verified, so with partial checksums a corrupt byte never reaches it.
//!
//! The checks themselves are here; [`pipeline`] runs them off the I/O
//! thread, so that reading the socket never waits for hashing.

mod pipeline;
mod resume;

use ring::digest::{Context, SHA256};

pub(crate) use pipeline::{Part, Pipeline, Verdict};
pub(crate) use resume::Verified;

/// NervesHub's partial checksum granularity.
pub const PART_SIZE: usize = 1 << 20;

/// Uppercase hex, as NervesHub writes checksums.
pub fn hex_upper(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 0xF)] as char);
    }
    out
}

/// SHA-256 of `data` in uppercase hex.
pub fn sha256_hex(data: &[u8]) -> String {
    hex_upper(ring::digest::digest(&SHA256, data).as_ref())
}

/// A part whose checksum did not match; its bytes were dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartMismatch {
    pub index: usize,
    pub expected: String,
    pub actual: String,
}

impl std::fmt::Display for PartMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "part {} (bytes {}..) has SHA-256 {}, expected {}",
            self.index,
            self.index as u64 * PART_SIZE as u64,
            self.actual,
            self.expected
        )
    }
}

/// What [`PartCheck::check`] decided about one part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Checked {
    /// It verified (or there is nothing to verify it against): release it.
    Accepted,
    /// It does not start where the image continues: bytes read after a
    /// rejected part, before the download went back to re-fetch it. Drop it.
    Stale,
    /// Its checksum did not match; the download must re-fetch it.
    Rejected { index: usize, message: String },
}

/// Checks consecutive parts against the partial checksums, in image order.
pub(crate) struct PartCheck {
    partials: Vec<String>,
    /// Where the next acceptable part starts: every byte before it verified.
    expected: u64,
}

impl PartCheck {
    pub(crate) fn new(partials: &[String]) -> PartCheck {
        PartCheck {
            partials: partials.to_vec(),
            expected: 0,
        }
    }

    /// Bytes accepted so far.
    pub(crate) fn verified(&self) -> u64 {
        self.expected
    }

    /// `bytes` start at `offset` in the image and are one whole part, or
    /// the short last one.
    pub(crate) fn check(&mut self, offset: u64, bytes: &[u8]) -> Checked {
        if offset != self.expected {
            return Checked::Stale;
        }
        let index = (offset / PART_SIZE as u64) as usize;
        if !self.partials.is_empty() {
            let Some(expected) = self.partials.get(index) else {
                return Checked::Rejected {
                    index,
                    message: format!(
                        "the image is longer than its {} partial checksums cover",
                        self.partials.len()
                    ),
                };
            };
            let actual = sha256_hex(bytes);
            if actual != *expected {
                let mismatch = PartMismatch {
                    index,
                    expected: expected.clone(),
                    actual,
                };
                return Checked::Rejected {
                    index,
                    message: mismatch.to_string(),
                };
            }
        }
        self.expected += bytes.len() as u64;
        Checked::Accepted
    }
}

/// SHA-256 of every released byte, in order.
pub(crate) struct WholeHash {
    context: Option<Context>,
    released: u64,
}

impl WholeHash {
    /// Hashes only when asked to: when there is a `checksum` to compare
    /// with and no partial checksums.
    pub(crate) fn new(hash: bool) -> WholeHash {
        WholeHash {
            context: hash.then(|| Context::new(&SHA256)),
            released: 0,
        }
    }

    pub(crate) fn update(&mut self, bytes: &[u8]) {
        if let Some(context) = &mut self.context {
            context.update(bytes);
        }
        self.released += bytes.len() as u64;
    }

    /// Bytes released so far.
    pub(crate) fn released(&self) -> u64 {
        self.released
    }

    /// Once every part was released: the part count against the partial
    /// checksums and, if it was hashed, the whole-file checksum.
    pub(crate) fn check(self, partials: usize, checksum: Option<&str>) -> Result<(), String> {
        let parts = self.released.div_ceil(PART_SIZE as u64) as usize;
        if partials > 0 && parts != partials {
            return Err(format!(
                "the image has {parts} part(s) but {partials} partial checksums were given"
            ));
        }
        let (Some(expected), Some(context)) = (checksum, self.context) else {
            return Ok(());
        };
        let actual = hex_upper(context.finish().as_ref());
        if actual == expected {
            Ok(())
        } else {
            Err(format!(
                "the image has SHA-256 {actual}, expected {expected}"
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn image(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 31 % 251) as u8).collect()
    }

    pub(super) fn partials(data: &[u8]) -> Vec<String> {
        data.chunks(PART_SIZE).map(sha256_hex).collect()
    }

    #[test]
    fn known_digest() {
        assert_eq!(
            sha256_hex(b"test"),
            "9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08"
        );
        assert_eq!(hex_upper(&[0x00, 0x0f, 0xa5, 0xff]), "000FA5FF");
    }

    #[test]
    fn accepts_parts_in_order_and_the_short_last_one() {
        let data = image(2 * PART_SIZE + 123);
        let mut check = PartCheck::new(&partials(&data));
        for (i, part) in data.chunks(PART_SIZE).enumerate() {
            let offset = (i * PART_SIZE) as u64;
            assert_eq!(check.check(offset, part), Checked::Accepted);
        }
        assert_eq!(check.verified(), data.len() as u64);
    }

    #[test]
    fn a_corrupt_part_is_rejected_and_later_parts_are_stale_until_it_is_re_fetched() {
        let data = image(2 * PART_SIZE + 10);
        let mut check = PartCheck::new(&partials(&data));
        let mut bad = data[..PART_SIZE].to_vec();
        bad[PART_SIZE - 1] ^= 0xFF;
        match check.check(0, &bad) {
            Checked::Rejected { index, message } => {
                assert_eq!(index, 0);
                assert!(message.starts_with("part 0 (bytes 0..)"), "{message}");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(check.verified(), 0);
        // Read ahead of the bad part on the same connection.
        let next = &data[PART_SIZE..2 * PART_SIZE];
        assert_eq!(check.check(PART_SIZE as u64, next), Checked::Stale);
        assert_eq!(check.check(0, &data[..PART_SIZE]), Checked::Accepted);
        assert_eq!(check.check(PART_SIZE as u64, next), Checked::Accepted);
        assert_eq!(check.verified(), 2 * PART_SIZE as u64);
    }

    #[test]
    fn a_part_beyond_the_partial_checksums_is_rejected() {
        let data = image(1000);
        let mut check = PartCheck::new(&partials(&data));
        assert_eq!(check.check(0, &image(PART_SIZE)), {
            let actual = sha256_hex(&image(PART_SIZE));
            Checked::Rejected {
                index: 0,
                message: format!(
                    "part 0 (bytes 0..) has SHA-256 {actual}, expected {}",
                    sha256_hex(&data)
                ),
            }
        });
        let mut check = PartCheck::new(&[sha256_hex(&image(PART_SIZE))]);
        assert_eq!(check.check(0, &image(PART_SIZE)), Checked::Accepted);
        assert!(matches!(
            check.check(PART_SIZE as u64, &data),
            Checked::Rejected { index: 1, message } if message.contains("longer than its 1 partial")
        ));
    }

    #[test]
    fn without_partials_every_part_in_order_is_accepted() {
        let mut check = PartCheck::new(&[]);
        assert_eq!(check.check(0, &image(PART_SIZE)), Checked::Accepted);
        assert_eq!(check.check(0, &image(PART_SIZE)), Checked::Stale);
        assert_eq!(check.check(PART_SIZE as u64, b"x"), Checked::Accepted);
    }

    #[test]
    fn whole_file_and_part_count_are_checked() {
        let data = image(1000);
        let whole = |hash| {
            let mut w = WholeHash::new(hash);
            w.update(&data[..10]);
            w.update(&data[10..]);
            assert_eq!(w.released(), 1000);
            w
        };
        whole(true).check(0, Some(&sha256_hex(&data))).unwrap();
        let err = whole(true)
            .check(0, Some(&sha256_hex(b"other")))
            .unwrap_err();
        assert!(err.starts_with("the image has SHA-256"), "{err}");
        assert!(err.contains("expected"), "{err}");
        whole(false).check(1, None).unwrap();
        let err = whole(false).check(2, None).unwrap_err();
        assert!(err.contains("2 partial checksums"), "{err}");
    }
}
