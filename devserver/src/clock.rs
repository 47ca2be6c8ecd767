//! The server's notion of "now" for NH1 checks and the `Date` header of
//! refusals, shiftable by the control API (`POST /clock_skew`) so tests can
//! play a device whose clock is wrong without waiting.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::httpdate::imf_fixdate;

#[derive(Debug, Default)]
pub(crate) struct ServerClock {
    skew_secs: AtomicI64,
}

impl ServerClock {
    pub fn set_skew(&self, seconds: i64) {
        self.skew_secs.store(seconds, Ordering::Relaxed);
    }

    pub fn skew(&self) -> i64 {
        self.skew_secs.load(Ordering::Relaxed)
    }

    /// Unix milliseconds, skew applied.
    pub fn now_ms(&self) -> i64 {
        let real = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
        real.saturating_add(self.skew().saturating_mul(1000))
    }

    /// The `Date` header value for a response sent now.
    pub fn http_date(&self) -> String {
        imf_fixdate(u64::try_from(self.now_ms().div_euclid(1000)).unwrap_or(0))
    }
}
