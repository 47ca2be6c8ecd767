//! Which devices of the fleet this process runs: shard `index` of `count`
//! takes the contiguous slice `[devices*index/count, devices*(index+1)/count)`
//! of the global numbers, so the shards of one run are disjoint, cover the
//! fleet, and differ in size by at most one device. A Kubernetes Indexed
//! Job gives each pod its index in `JOB_COMPLETION_INDEX`.

use std::ops::Range;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

impl Shard {
    /// From `--shards` and `--shard` (or `JOB_COMPLETION_INDEX`), checked
    /// against the fleet size.
    pub fn new(count: u32, index: Option<u32>, devices: u64) -> Result<Shard, String> {
        let index = match (count, index) {
            (_, Some(i)) if i >= count => {
                return Err(format!(
                    "--shard {i} is out of range: --shards {count} numbers them 0..={}",
                    count - 1
                ))
            }
            (_, Some(i)) => i,
            (1, None) => 0,
            (_, None) => {
                return Err(format!(
                    "--shards {count} needs --shard I (or JOB_COMPLETION_INDEX) for this process"
                ))
            }
        };
        if u64::from(count) > devices {
            return Err(format!(
                "--shards {count} is more than --devices {devices}: some shards would be empty"
            ));
        }
        Ok(Shard { index, count })
    }

    /// The global device numbers of this shard.
    pub fn range(&self, devices: u64) -> Range<u64> {
        let bound = |i: u32| (u128::from(devices) * u128::from(i) / u128::from(self.count)) as u64;
        bound(self.index)..bound(self.index + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_are_disjoint_cover_the_fleet_and_are_balanced() {
        for (devices, count) in [(1, 1), (10, 3), (1000, 7), (1_000_003, 1000), (5, 5)] {
            let mut next = 0;
            for index in 0..count {
                let r = Shard::new(count, Some(index), devices)
                    .unwrap()
                    .range(devices);
                assert_eq!(r.start, next, "{devices}/{count}");
                let len = r.end - r.start;
                assert!(len == devices / u64::from(count) || len == devices / u64::from(count) + 1);
                next = r.end;
            }
            assert_eq!(next, devices);
        }
    }

    #[test]
    fn bad_shard_settings_say_what_is_wrong() {
        assert!(Shard::new(4, Some(4), 100).unwrap_err().contains("0..=3"));
        assert!(Shard::new(4, None, 100)
            .unwrap_err()
            .contains("JOB_COMPLETION_INDEX"));
        assert!(Shard::new(8, Some(0), 5).unwrap_err().contains("empty"));
        assert_eq!(Shard::new(1, None, 5).unwrap().range(5), 0..5);
    }
}
