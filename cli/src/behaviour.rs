//! How each simulated device answers update offers: accept (download through
//! the verifying pipeline into a discarding sink), decline (`ignored`) or
//! reschedule (`rescheduled`). The choice is a pure function of the seed,
//! the fleet size and the device's global number, so every shard computes
//! its own devices' choices without talking to the others, and the fleet
//! as a whole has exactly the asked fractions (rounded to whole devices).

use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Behaviour {
    Accept,
    Decline,
    Reschedule,
}

impl Behaviour {
    pub const ALL: [Behaviour; 3] = [Behaviour::Accept, Behaviour::Decline, Behaviour::Reschedule];

    pub fn as_str(self) -> &'static str {
        match self {
            Behaviour::Accept => "accept",
            Behaviour::Decline => "decline",
            Behaviour::Reschedule => "reschedule",
        }
    }
}

/// `--mix accept=0.7,decline=0.2,reschedule=0.1`: fractions of the fleet.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Mix {
    pub accept: f64,
    pub decline: f64,
    pub reschedule: f64,
}

impl Default for Mix {
    fn default() -> Mix {
        Mix {
            accept: 1.0,
            decline: 0.0,
            reschedule: 0.0,
        }
    }
}

impl FromStr for Mix {
    type Err = String;

    /// Missing names are 0; the fractions must add up to 1.
    fn from_str(s: &str) -> Result<Mix, String> {
        let mut mix = Mix {
            accept: 0.0,
            decline: 0.0,
            reschedule: 0.0,
        };
        for item in s.split(',').filter(|i| !i.is_empty()) {
            let (name, value) = item
                .split_once('=')
                .ok_or_else(|| format!("wants NAME=FRACTION, got {item:?}"))?;
            let value: f64 = value
                .parse()
                .ok()
                .filter(|v: &f64| (0.0..=1.0).contains(v))
                .ok_or_else(|| format!("{name} wants a fraction 0..=1, got {value:?}"))?;
            match name {
                "accept" => mix.accept = value,
                "decline" => mix.decline = value,
                "reschedule" => mix.reschedule = value,
                _ => return Err(format!("{name:?} is not accept, decline or reschedule")),
            }
        }
        let sum = mix.accept + mix.decline + mix.reschedule;
        if (sum - 1.0).abs() > 1e-9 {
            return Err(format!("the fractions add up to {sum}, not 1"));
        }
        Ok(mix)
    }
}

/// The behaviour of every device of a fleet of `devices`.
#[derive(Debug, Clone, Copy)]
pub struct Plan {
    devices: u64,
    /// A permutation of the device numbers, `n -> (mul*n + add) % devices`
    /// (`mul` coprime with `devices`, `add` from the seed), spreads each
    /// behaviour over all shards.
    mul: u64,
    add: u64,
    /// Positions below `accept_until` accept, below `decline_until` decline,
    /// the rest reschedule.
    accept_until: u64,
    decline_until: u64,
}

impl Plan {
    pub fn new(mix: Mix, seed: u64, devices: u64) -> Plan {
        let devices = devices.max(1);
        // The golden ratio's step spreads any contiguous slice (a shard)
        // evenly over the positions (the three-gap theorem); the seed
        // rotates which positions, hence devices, do what.
        let mut mul = ((devices as f64 * 0.618_033_988_75).round() as u64).max(1) % devices;
        while gcd(mul, devices) != 1 {
            mul = (mul + 1) % devices;
            if devices == 1 {
                break;
            }
        }
        let at = |fraction: f64| ((fraction * devices as f64).round() as u64).min(devices);
        Plan {
            devices,
            mul,
            add: splitmix64(seed) % devices,
            accept_until: at(mix.accept),
            decline_until: at(mix.accept + mix.decline),
        }
    }

    /// The behaviour of device number `n` (0-based, global).
    pub fn behaviour(&self, n: u64) -> Behaviour {
        let d = u128::from(self.devices);
        let position = ((u128::from(self.mul) * u128::from(n) + u128::from(self.add)) % d) as u64;
        if position < self.accept_until {
            Behaviour::Accept
        } else if position < self.decline_until {
            Behaviour::Decline
        } else {
            Behaviour::Reschedule
        }
    }
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// A well-mixed 64-bit hash (SplitMix64's finaliser), for seeds.
pub fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(plan: &Plan, range: std::ops::Range<u64>) -> [u64; 3] {
        let mut c = [0; 3];
        for n in range {
            c[plan.behaviour(n) as usize] += 1;
        }
        c
    }

    #[test]
    fn the_fleet_has_exactly_the_asked_fractions_for_any_seed() {
        let mix: Mix = "accept=0.5,decline=0.3,reschedule=0.2".parse().unwrap();
        for (devices, seed) in [(10, 1), (1000, 7), (999, 42), (1, 3), (24, 0)] {
            let plan = Plan::new(mix, seed, devices);
            let expect = |f: f64| (f * devices as f64).round() as u64;
            let c = counts(&plan, 0..devices);
            assert_eq!(c[0], expect(0.5), "{devices}/{seed}");
            assert_eq!(c[0] + c[1], expect(0.8), "{devices}/{seed}");
            assert_eq!(c.iter().sum::<u64>(), devices);
        }
    }

    #[test]
    fn the_seed_decides_who_does_what_and_shards_get_a_fair_share() {
        let mix: Mix = "accept=0.5,decline=0.5".parse().unwrap();
        let a = Plan::new(mix, 1, 1000);
        let b = Plan::new(mix, 2, 1000);
        let same = Plan::new(mix, 1, 1000);
        let who = |p: &Plan| (0..1000).map(|n| p.behaviour(n)).collect::<Vec<_>>();
        assert_eq!(who(&a), who(&same));
        assert_ne!(who(&a), who(&b));
        // Not all of one behaviour in one shard: for any seed, each
        // quarter gets 45-55%.
        for seed in 0..50 {
            let plan = Plan::new(mix, seed, 1000);
            for quarter in 0..4 {
                let c = counts(&plan, quarter * 250..(quarter + 1) * 250);
                assert!((112..=138).contains(&c[0]), "seed {seed}: {c:?}");
            }
        }
    }

    #[test]
    fn a_mix_must_name_known_behaviours_and_add_up_to_one() {
        assert_eq!("accept=1".parse::<Mix>().unwrap(), Mix::default());
        assert!("accept=0.5".parse::<Mix>().unwrap_err().contains("add up"));
        assert!("accept=0.5,ignore=0.5"
            .parse::<Mix>()
            .unwrap_err()
            .contains("\"ignore\""));
        assert!("accept=2".parse::<Mix>().unwrap_err().contains("0..=1"));
        assert!("accept"
            .parse::<Mix>()
            .unwrap_err()
            .contains("NAME=FRACTION"));
    }
}
