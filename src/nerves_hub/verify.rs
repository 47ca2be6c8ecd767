//! Checks the image as it arrives: SHA-256 of each consecutive 1 MiB part
//! against `partials_checksums` (when the server sent them) and of the whole
//! file against `checksum`. A part is released to the sink only once it
//! verified, so with partial checksums a corrupt byte never reaches it.

use ring::digest::{Context, SHA256};

/// NervesHub's partial checksum granularity.
pub const PART_SIZE: usize = 1 << 20;

/// Uppercase hex, as NervesHub writes checksums.
pub fn hex_upper(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
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

/// Assembles parts from bytes in download order.
pub struct Verifier {
    partials: Vec<String>,
    checksum: Option<String>,
    /// Bytes of the part being assembled.
    part: Vec<u8>,
    /// Bytes released (verified, or unchecked without partials).
    released: u64,
    whole: Context,
}

impl Verifier {
    pub fn new(partials: &[String], checksum: Option<&str>) -> Verifier {
        Verifier {
            partials: partials.to_vec(),
            checksum: checksum.map(str::to_owned),
            part: Vec::with_capacity(PART_SIZE),
            released: 0,
            whole: Context::new(&SHA256),
        }
    }

    /// Where the download must continue: everything before was received.
    pub fn offset(&self) -> u64 {
        self.released + self.part.len() as u64
    }

    fn index(&self) -> usize {
        (self.released / PART_SIZE as u64) as usize
    }

    /// Checks and releases the current part (which may be the short last one).
    fn release(&mut self) -> Result<Vec<u8>, String> {
        let index = self.index();
        if !self.partials.is_empty() {
            let Some(expected) = self.partials.get(index) else {
                return Err(format!(
                    "the image is longer than its {} partial checksums cover",
                    self.partials.len()
                ));
            };
            let actual = sha256_hex(&self.part);
            if actual != *expected {
                let mismatch = PartMismatch {
                    index,
                    expected: expected.clone(),
                    actual,
                };
                self.part.clear();
                return Err(mismatch.to_string());
            }
        }
        self.whole.update(&self.part);
        self.released += self.part.len() as u64;
        Ok(std::mem::replace(
            &mut self.part,
            Vec::with_capacity(PART_SIZE),
        ))
    }

    /// Adds downloaded bytes; returns the complete parts now verified. On a
    /// mismatch the bad part is dropped and [`Verifier::offset`] goes back
    /// to its start, so the caller re-fetches it.
    pub fn push(&mut self, mut bytes: &[u8]) -> Result<Vec<Vec<u8>>, Rejected> {
        let mut ready = Vec::new();
        while !bytes.is_empty() {
            let take = (PART_SIZE - self.part.len()).min(bytes.len());
            self.part.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
            if self.part.len() == PART_SIZE {
                let index = self.index();
                match self.release() {
                    Ok(part) => ready.push(part),
                    Err(message) => {
                        return Err(Rejected {
                            index,
                            message,
                            ready,
                        })
                    }
                }
            }
        }
        Ok(ready)
    }

    /// At the end of the download: verifies and returns the last (short)
    /// part, then checks the partial count and the whole-file checksum.
    pub fn finish(&mut self) -> Result<Vec<u8>, Rejected> {
        let index = self.index();
        let last = if self.part.is_empty() {
            Vec::new()
        } else {
            self.release().map_err(|message| Rejected {
                index,
                message,
                ready: Vec::new(),
            })?
        };
        Ok(last)
    }

    /// Whole-file checksum, once every part was released.
    pub fn check_whole(&self) -> Result<(), String> {
        let parts = self.released.div_ceil(PART_SIZE as u64) as usize;
        if !self.partials.is_empty() && parts != self.partials.len() {
            return Err(format!(
                "the image has {parts} part(s) but {} partial checksums were given",
                self.partials.len()
            ));
        }
        let Some(expected) = &self.checksum else {
            return Ok(());
        };
        let actual = hex_upper(self.whole.clone().finish().as_ref());
        if actual == *expected {
            Ok(())
        } else {
            Err(format!(
                "the image has SHA-256 {actual}, expected {expected}"
            ))
        }
    }

    /// Bytes released so far.
    pub fn released(&self) -> u64 {
        self.released
    }
}

/// A part failed its check; `ready` holds the parts verified before it in
/// the same push, which still belong to the image.
#[derive(Debug)]
pub struct Rejected {
    pub index: usize,
    pub message: String,
    pub ready: Vec<Vec<u8>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 31 % 251) as u8).collect()
    }

    fn partials(data: &[u8]) -> Vec<String> {
        data.chunks(PART_SIZE).map(sha256_hex).collect()
    }

    #[test]
    fn known_digest() {
        assert_eq!(
            sha256_hex(b"test"),
            "9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08"
        );
    }

    #[test]
    fn releases_verified_parts_and_the_short_last_one() {
        let data = image(2 * PART_SIZE + 123);
        let mut v = Verifier::new(&partials(&data), Some(&sha256_hex(&data)));
        let mut out = Vec::new();
        for piece in data.chunks(70_000) {
            for part in v.push(piece).unwrap() {
                assert_eq!(part.len(), PART_SIZE);
                out.extend_from_slice(&part);
            }
        }
        assert_eq!(out.len(), 2 * PART_SIZE);
        out.extend_from_slice(&v.finish().unwrap());
        assert_eq!(out, data);
        v.check_whole().unwrap();
    }

    #[test]
    fn a_corrupt_part_is_dropped_and_refetched_from_its_start() {
        let data = image(PART_SIZE + 10);
        let mut v = Verifier::new(&partials(&data), None);
        let mut bad = data.clone();
        bad[PART_SIZE - 1] ^= 0xFF;
        let rejected = v.push(&bad[..PART_SIZE]).unwrap_err();
        assert_eq!(rejected.index, 0);
        assert!(rejected.message.contains("part 0"), "{}", rejected.message);
        assert!(rejected.ready.is_empty());
        assert_eq!(v.offset(), 0);
        let good = v.push(&data).unwrap();
        assert_eq!(good, vec![data[..PART_SIZE].to_vec()]);
        assert_eq!(v.finish().unwrap(), data[PART_SIZE..]);
        v.check_whole().unwrap();
    }

    #[test]
    fn whole_file_and_part_count_are_checked() {
        let data = image(1000);
        let mut v = Verifier::new(&[], Some(&sha256_hex(b"other")));
        assert!(v.push(&data).unwrap().is_empty());
        assert_eq!(v.finish().unwrap(), data);
        assert!(v.check_whole().unwrap_err().contains("expected"));

        let mut v = Verifier::new(&partials(&data), None);
        v.push(&data).unwrap();
        v.push(&image(PART_SIZE)).unwrap_err();
        let mut v = Verifier::new(&[sha256_hex(&data), sha256_hex(&data)], None);
        v.push(&data).unwrap();
        v.finish().unwrap();
        assert!(v.check_whole().unwrap_err().contains("2 partial checksums"));
    }
}
