//! Where a resumed download starts: the bytes an earlier, suspended run of
//! the same update left in the sink are checked again (each whole part
//! against its partial checksum, or fed to the whole-file hash) before a
//! single new byte is fetched, so a resumed image is verified as fully as
//! a fresh one. Only whole parts are kept; a part that fails its check, and
//! everything after it, is fetched again.

use std::io::Read;

use super::{Checked, PartCheck, WholeHash, PART_SIZE};

/// The verification state at the download's start.
pub(crate) struct Verified {
    pub(crate) parts: PartCheck,
    pub(crate) whole: WholeHash,
}

impl Verified {
    /// Nothing stored: the download starts at byte 0.
    pub(crate) fn fresh(partials: &[String], checksum: Option<&str>) -> Verified {
        Verified {
            parts: PartCheck::new(partials),
            // See `Pipeline::start` for why partials make the whole hash moot.
            whole: WholeHash::new(checksum.is_some() && partials.is_empty()),
        }
    }

    /// Where the download continues.
    pub(crate) fn offset(&self) -> u64 {
        self.parts.verified()
    }

    /// Reads up to `stored` bytes of a stored prefix and keeps the whole
    /// parts that pass their checks. `size` (when announced) keeps at least
    /// the last part to fetch, so the end of the image is always received.
    pub(crate) fn from_stored(
        partials: &[String],
        checksum: Option<&str>,
        size: Option<u64>,
        stored: u64,
        reader: &mut dyn Read,
    ) -> Verified {
        let mut v = Verified::fresh(partials, checksum);
        let part = PART_SIZE as u64;
        let mut keep = stored / part * part;
        if let Some(size) = size {
            keep = keep.min(size.saturating_sub(1) / part * part);
        }
        let mut buf = vec![0u8; PART_SIZE];
        while v.offset() < keep {
            if reader.read_exact(&mut buf).is_err() {
                break;
            }
            match v.parts.check(v.offset(), &buf) {
                Checked::Accepted => v.whole.update(&buf),
                Checked::Stale | Checked::Rejected { .. } => break,
            }
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::super::sha256_hex;
    use super::super::tests::image;
    use super::*;

    #[test]
    fn keeps_only_whole_parts_that_verify() {
        let img = image(3 * PART_SIZE + 10);
        let partials: Vec<String> = img.chunks(PART_SIZE).map(sha256_hex).collect();
        let stored = &img[..2 * PART_SIZE + 7];
        let v = Verified::from_stored(&partials, None, None, stored.len() as u64, &mut &stored[..]);
        assert_eq!(v.offset(), 2 * PART_SIZE as u64);

        let mut bad = stored.to_vec();
        bad[PART_SIZE + 3] ^= 1;
        let v = Verified::from_stored(&partials, None, None, bad.len() as u64, &mut &bad[..]);
        assert_eq!(
            v.offset(),
            PART_SIZE as u64,
            "the bad part is fetched again"
        );
    }

    #[test]
    fn the_whole_hash_covers_the_stored_prefix() {
        let img = image(2 * PART_SIZE + 10);
        let checksum = sha256_hex(&img);
        let mut v = Verified::from_stored(
            &[],
            Some(&checksum),
            Some(img.len() as u64),
            img.len() as u64,
            &mut &img[..],
        );
        assert_eq!(v.offset(), 2 * PART_SIZE as u64, "the last part is fetched");
        v.whole.update(&img[2 * PART_SIZE..]);
        assert_eq!(v.whole.check(0, Some(&checksum)), Ok(()));
    }
}
