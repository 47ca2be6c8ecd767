//! Which step of the backoff the next connection attempt waits, and when a
//! run of short sessions means that the identity is in use elsewhere.
//!
//! The rule: the backoff restarts from its first step only after a session
//! stayed joined for `stable_after`. A session that ends sooner (NervesHub
//! closes the older socket whenever another one authenticates with the same
//! certificate or NH1 identifier) counts as one more failure. Two devices
//! sharing an identity cut each other's sessions to the length of the other
//! one's reconnect delay, so with `stable_after` above the slowest delay
//! (backoff max plus jitter: 90 s by default) they escalate to the slow end
//! of the backoff and stay there: one kick per 60-90 s instead of one per
//! second. A device that was up a while still reconnects at the first step.

use std::time::Duration;

use crate::backoff::Backoff;

/// Consecutive sessions closed by the server before they were stable after
/// which the identity is reported as in use elsewhere.
pub(crate) const IDENTITY_IN_USE_AFTER: u32 = 3;

/// How the next attempt should be timed after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Retry {
    /// The normal schedule.
    Backoff,
    /// Credentials refused: the slow end, since only a clock or the server can change.
    Slow,
    /// Credentials refused, but the refusal taught something new: the first step.
    Soon,
}

#[derive(Debug, Default)]
pub(crate) struct Reconnects {
    /// Consecutive failures (attempts and short sessions) since the last
    /// stable session; indexes the backoff.
    failures: u32,
    /// Consecutive sessions that the server closed before they were stable.
    short_closes: u32,
}

impl Reconnects {
    /// The number of the next attempt, counting from 1.
    pub fn attempt(&self) -> u32 {
        self.failures.saturating_add(1)
    }

    /// A session ended: `joined_for` is how long it had been joined (`None`:
    /// it never joined), `by_server` whether the server closed it. Returns
    /// the length of the run of short server-closed sessions when it just
    /// reached [`IDENTITY_IN_USE_AFTER`] (reported once per run).
    pub fn session_ended(
        &mut self,
        joined_for: Option<Duration>,
        by_server: bool,
        stable_after: Duration,
    ) -> Option<u32> {
        match joined_for {
            Some(up) if up >= stable_after => {
                self.failures = 0;
                self.short_closes = 0;
                None
            }
            Some(_) if by_server => {
                self.short_closes = self.short_closes.saturating_add(1);
                (self.short_closes == IDENTITY_IN_USE_AFTER).then_some(self.short_closes)
            }
            _ => None,
        }
    }

    /// The delay before the next attempt; counts the failure.
    pub fn next_delay(&mut self, backoff: &Backoff, retry: Retry) -> Duration {
        let delay = match retry {
            Retry::Backoff => backoff.delay(self.failures),
            Retry::Slow => backoff.slowest(),
            Retry::Soon => backoff.delay(0),
        };
        self.failures = self.failures.saturating_add(1);
        delay
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STABLE: Duration = Duration::from_secs(120);

    /// The default schedule without jitter.
    fn exact() -> Backoff {
        Backoff {
            jitter: 0.0,
            ..Backoff::default()
        }
    }

    #[test]
    fn a_device_up_a_while_reconnects_at_the_first_step() {
        let b = Backoff::default();
        let mut r = Reconnects::default();
        for _ in 0..5 {
            r.next_delay(&b, Retry::Backoff);
        }
        assert_eq!(r.session_ended(Some(STABLE), true, STABLE), None);
        assert_eq!(r.attempt(), 1);
        assert!(r.next_delay(&b, Retry::Backoff) <= Duration::from_millis(1500));
    }

    #[test]
    fn short_sessions_escalate_and_report_the_identity_once() {
        let b = exact();
        let mut r = Reconnects::default();
        let mut reported = Vec::new();
        let mut delays = Vec::new();
        for _ in 0..6 {
            reported.push(r.session_ended(Some(Duration::from_secs(2)), true, STABLE));
            delays.push(r.next_delay(&b, Retry::Backoff).as_secs());
        }
        assert_eq!(delays, [1, 2, 4, 8, 16, 32]);
        assert_eq!(reported, [None, None, Some(3), None, None, None]);
        // Lost by the network (not closed by the server): escalates, never reported.
        let mut r = Reconnects::default();
        for _ in 0..6 {
            assert_eq!(r.session_ended(Some(Duration::ZERO), false, STABLE), None);
            r.next_delay(&b, Retry::Backoff);
        }
        assert_eq!(r.attempt(), 7);
    }

    #[test]
    fn a_refusal_with_news_retries_at_the_first_step() {
        let b = exact();
        let mut r = Reconnects::default();
        assert_eq!(r.next_delay(&b, Retry::Slow), Duration::from_secs(60));
        assert_eq!(r.next_delay(&b, Retry::Soon), Duration::from_secs(1));
        assert_eq!(r.next_delay(&b, Retry::Backoff), Duration::from_secs(4));
    }

    /// Two devices with one identity in virtual time: whenever one connects,
    /// the server closes the other (joins are taken as instant). Returns the
    /// kick times in seconds.
    fn simulate_clones(backoff: &Backoff, stable_after: Duration, until: f64) -> Vec<f64> {
        struct Clone {
            reconnects: Reconnects,
            joined_at: Option<f64>,
            connect_at: Option<f64>,
        }
        // Device 0 has been up for an hour; device 1 boots at 0.
        let mut d = [
            Clone {
                reconnects: Reconnects::default(),
                joined_at: Some(-3600.0),
                connect_at: None,
            },
            Clone {
                reconnects: Reconnects::default(),
                joined_at: None,
                connect_at: Some(0.0),
            },
        ];
        let mut kicks = Vec::new();
        loop {
            let (who, now) = match (d[0].connect_at, d[1].connect_at) {
                (Some(a), Some(b)) if b < a => (1, b),
                (Some(a), _) => (0, a),
                (None, Some(b)) => (1, b),
                (None, None) => unreachable!("one device is always waiting"),
            };
            if now > until {
                return kicks;
            }
            let other = 1 - who;
            d[who].connect_at = None;
            d[who].joined_at = Some(now);
            if let Some(since) = d[other].joined_at.take() {
                kicks.push(now);
                let up = Duration::from_secs_f64(now - since);
                let r = &mut d[other].reconnects;
                r.session_ended(Some(up), true, stable_after);
                let delay = r.next_delay(backoff, Retry::Backoff);
                d[other].connect_at = Some(now + delay.as_secs_f64());
            }
        }
    }

    fn max_kicks_per_minute_after(kicks: &[f64], from: f64) -> usize {
        kicks
            .iter()
            .filter(|&&t| t >= from)
            .map(|&start| {
                kicks
                    .iter()
                    .filter(|&&t| t >= start && t < start + 60.0)
                    .count()
            })
            .max()
            .unwrap_or(0)
    }

    #[test]
    fn two_devices_with_one_identity_settle_within_five_minutes() {
        let stable = crate::config::SocketConfig::new("ws://x").stable_after;
        // Jitter drawn at random, many times, and the extremes of no jitter.
        for jitter in [0.0, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5] {
            let b = Backoff {
                jitter,
                ..Backoff::default()
            };
            let kicks = simulate_clones(&b, stable, 3600.0);
            let worst = max_kicks_per_minute_after(&kicks, 300.0);
            assert!(
                worst <= 2,
                "jitter {jitter}: {worst} kicks in a minute: {kicks:?}"
            );
            assert!(kicks.len() > 30, "they keep taking turns: {kicks:?}");
        }
    }

    #[test]
    fn resetting_at_every_join_would_storm() {
        // The old rule (any join resets the backoff) in the same simulation.
        let b = Backoff::default();
        let kicks = simulate_clones(&b, Duration::ZERO, 600.0);
        assert!(max_kicks_per_minute_after(&kicks, 300.0) > 30, "{kicks:?}");
    }
}
