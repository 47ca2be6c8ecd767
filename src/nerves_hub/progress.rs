//! Progress throttling exactly like nerves_hub_link's `send_update?/2`: a
//! value is sent only when its integer percent is greater than the last one
//! sent and at least 500 ms have passed; the first is always sent. The
//! server persists progress, so flooding it costs database writes.

use std::time::{Duration, Instant};

/// Minimum time between two progress messages of one stage.
pub const MIN_INTERVAL: Duration = Duration::from_millis(500);

/// A time source, injectable so tests need no sleeps.
pub trait Clock: Send + Sync {
    fn now(&self) -> Instant;
}

/// The real monotonic clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
}

/// Decides which progress values of one stage are worth sending.
#[derive(Debug, Default)]
pub struct Throttle {
    last: Option<(u8, Instant)>,
}

impl Throttle {
    pub fn new() -> Throttle {
        Throttle::default()
    }

    /// Whether `percent` (clamped to 100) should be sent now; if so it is
    /// remembered as the last sent value.
    pub fn admit(&mut self, percent: u8, now: Instant) -> bool {
        let percent = percent.min(100);
        let send = match self.last {
            None => true,
            Some((last, at)) => percent > last && now.saturating_duration_since(at) >= MIN_INTERVAL,
        };
        if send {
            self.last = Some((percent, now));
        }
        send
    }

    /// The last value sent, if any.
    pub fn last_sent(&self) -> Option<u8> {
        self.last.map(|(p, _)| p)
    }
}

/// Integer percent of `done` out of `total`, rounded down, at most 100.
pub fn percent(done: u64, total: u64) -> u8 {
    if total == 0 {
        return 100;
    }
    ((u128::from(done) * 100 / u128::from(total)).min(100)) as u8
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    struct FakeClock(Mutex<Instant>);

    impl FakeClock {
        fn advance(&self, by: Duration) {
            *self.0.lock().unwrap() += by;
        }
    }

    impl Clock for FakeClock {
        fn now(&self) -> Instant {
            *self.0.lock().unwrap()
        }
    }

    #[test]
    fn sends_first_then_only_greater_values_500ms_apart() {
        let clock = FakeClock(Mutex::new(Instant::now()));
        let mut t = Throttle::new();
        let mut sent = Vec::new();
        let mut offer = |p: u8, t: &mut Throttle| {
            if t.admit(p, clock.now()) {
                sent.push(t.last_sent().unwrap_or(p));
            }
        };
        offer(0, &mut t); // first: always
        offer(5, &mut t); // too soon
        clock.advance(Duration::from_millis(499));
        offer(6, &mut t); // still too soon
        clock.advance(Duration::from_millis(1));
        offer(6, &mut t); // 500 ms: sent
        clock.advance(Duration::from_secs(2));
        offer(6, &mut t); // not greater
        offer(3, &mut t); // going back is never sent
        clock.advance(Duration::from_millis(500));
        offer(250, &mut t); // clamped to 100
        clock.advance(Duration::from_secs(1));
        offer(100, &mut t);
        assert_eq!(sent, vec![0, 6, 100]);
        assert_eq!(t.last_sent(), Some(100));
    }

    #[test]
    fn a_long_stream_of_updates_is_strictly_increasing_and_spaced() {
        let clock = FakeClock(Mutex::new(Instant::now()));
        let mut t = Throttle::new();
        let mut sent: Vec<(u8, Instant)> = Vec::new();
        for done in 0..=10_000u64 {
            clock.advance(Duration::from_millis(3));
            let p = percent(done, 10_000);
            if t.admit(p, clock.now()) {
                sent.push((p, clock.now()));
            }
        }
        assert!(sent.len() > 10 && sent.len() <= 61, "{}", sent.len());
        for pair in sent.windows(2) {
            assert!(pair[1].0 > pair[0].0);
            assert!(pair[1].1 - pair[0].1 >= MIN_INTERVAL);
        }
    }

    #[test]
    fn percent_rounds_down_and_saturates() {
        assert_eq!(percent(0, 10), 0);
        assert_eq!(percent(999, 1000), 99);
        assert_eq!(percent(1000, 1000), 100);
        assert_eq!(percent(5000, 1000), 100);
        assert_eq!(percent(0, 0), 100);
        assert_eq!(percent(u64::MAX, u64::MAX), 100);
    }
}
