//! Reconnect delays: exponential with jitter, as nerves_hub_link does, so that a
//! fleet disconnected at once does not reconnect in lockstep.

use std::time::Duration;

/// Delay schedule: `initial` doubling up to `max`, each delay multiplied by
/// `1 + jitter * U(0, 1)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    pub initial: Duration,
    pub max: Duration,
    pub jitter: f64,
}

impl Default for Backoff {
    fn default() -> Backoff {
        Backoff {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(60),
            jitter: 0.5,
        }
    }
}

impl Backoff {
    /// The base delay (before jitter) of attempt `n` (0-based).
    pub fn base(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.min(31));
        self.initial.saturating_mul(factor).min(self.max)
    }

    /// The jittered delay of attempt `n` (0-based).
    pub fn delay(&self, attempt: u32) -> Duration {
        self.jittered(self.base(attempt))
    }

    /// The slow end of the schedule, used after an authentication failure.
    pub fn slowest(&self) -> Duration {
        self.jittered(self.max)
    }

    fn jittered(&self, base: Duration) -> Duration {
        let jitter = self.jitter.clamp(0.0, 10.0);
        if jitter == 0.0 {
            return base;
        }
        let factor = 1.0 + jitter * rand::random::<f64>();
        base.mul_f64(factor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_max() {
        let b = Backoff::default();
        let secs: Vec<u64> = (0..9).map(|n| b.base(n).as_secs()).collect();
        assert_eq!(secs, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
        assert_eq!(b.base(u32::MAX), Duration::from_secs(60));
    }

    #[test]
    fn jitter_stays_within_half_above_base() {
        let b = Backoff::default();
        for n in 0..8 {
            let d = b.delay(n);
            assert!(
                d >= b.base(n) && d <= b.base(n).mul_f64(1.5),
                "attempt {n}: {d:?}"
            );
        }
    }

    #[test]
    fn no_jitter_is_exact() {
        let b = Backoff {
            jitter: 0.0,
            ..Backoff::default()
        };
        assert_eq!(b.delay(3), Duration::from_secs(8));
        assert_eq!(b.slowest(), Duration::from_secs(60));
    }
}
