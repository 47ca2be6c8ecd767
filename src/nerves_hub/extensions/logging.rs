//! The `logging` extension: log lines pushed as `logging:send` (protocol
//! section 4), rate limited on the device.
//!
//! The server keeps a token bucket of 5 lines/s with a burst of 10 per device
//! and silently drops the excess, so sending more only wastes bandwidth. The
//! device applies the same bucket first. Lines over the limit are not queued
//! (a flood must not grow memory or delay newer lines); they are counted, and
//! once the flood is over one summary line says how many were dropped:
//! `warning` "N log lines dropped by the device's rate limit (5/s, burst 10)"
//! with `meta.dropped = "N"`. The summary waits until the bucket holds two
//! tokens on a `log` call (one for the summary, one for the line), or one token
//! when the flush timer runs, so during a sustained flood real lines keep
//! getting the tokens and the summary comes after.

use std::str::FromStr;
use std::time::{Duration, Instant, SystemTime};

use serde_json::{json, Map, Value};

use super::time::{iso8601, unix_micros};

/// Lines per second the server accepts.
pub const RATE_PER_SEC: f64 = 5.0;
/// Lines the server accepts at once after a quiet period.
pub const BURST: f64 = 10.0;

/// The levels NervesHub stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    Error,
    Warning,
    Info,
    Debug,
}

impl LogLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Error => "error",
            LogLevel::Warning => "warning",
            LogLevel::Info => "info",
            LogLevel::Debug => "debug",
        }
    }
}

impl FromStr for LogLevel {
    type Err = String;

    /// Accepts NervesHub's names and the usual aliases ("warn", "err").
    fn from_str(s: &str) -> Result<LogLevel, String> {
        match s.to_ascii_lowercase().as_str() {
            "error" | "err" => Ok(LogLevel::Error),
            "warning" | "warn" => Ok(LogLevel::Warning),
            "info" => Ok(LogLevel::Info),
            "debug" => Ok(LogLevel::Debug),
            other => Err(format!(
                "unknown log level {other:?}; use error, warning, info or debug"
            )),
        }
    }
}

impl From<log::Level> for LogLevel {
    fn from(level: log::Level) -> LogLevel {
        match level {
            log::Level::Error => LogLevel::Error,
            log::Level::Warn => LogLevel::Warning,
            log::Level::Info => LogLevel::Info,
            log::Level::Debug | log::Level::Trace => LogLevel::Debug,
        }
    }
}

/// A token bucket driven by the caller's clock (`now` on every call), so
/// tests run it on fixed instants.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(rate_per_sec: f64, burst: f64, now: Instant) -> TokenBucket {
        TokenBucket {
            rate: rate_per_sec,
            burst,
            tokens: burst,
            last: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        // A clock that went backwards adds nothing (saturating).
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        self.last = self.last.max(now);
    }

    pub fn available(&mut self, now: Instant) -> f64 {
        self.refill(now);
        self.tokens
    }

    /// Takes `n` tokens if there are that many.
    pub fn try_take(&mut self, n: f64, now: Instant) -> bool {
        self.refill(now);
        if self.tokens >= n {
            self.tokens -= n;
            true
        } else {
            false
        }
    }

    /// How long until one token is available.
    pub fn until_token(&mut self, now: Instant) -> Duration {
        self.refill(now);
        let missing = (1.0 - self.tokens).max(0.0);
        Duration::from_secs_f64(missing / self.rate)
    }
}

/// What to do with one line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Send it; first send a summary of this many dropped lines, if any.
    Send { summary: Option<u64> },
    /// Over the limit: counted, not sent.
    Dropped,
}

/// The device-side limit: the bucket plus the count of dropped lines.
#[derive(Debug, Clone)]
pub struct LogLimiter {
    bucket: TokenBucket,
    dropped: u64,
}

impl LogLimiter {
    pub fn new(now: Instant) -> LogLimiter {
        LogLimiter {
            bucket: TokenBucket::new(RATE_PER_SEC, BURST, now),
            dropped: 0,
        }
    }

    pub fn admit(&mut self, now: Instant) -> Admit {
        if self.dropped > 0 && self.bucket.try_take(2.0, now) {
            let summary = std::mem::take(&mut self.dropped);
            return Admit::Send {
                summary: Some(summary),
            };
        }
        if self.bucket.try_take(1.0, now) {
            Admit::Send { summary: None }
        } else {
            self.dropped += 1;
            Admit::Dropped
        }
    }

    /// For the timer: the dropped count, if a summary can be sent now.
    pub fn flush(&mut self, now: Instant) -> Option<u64> {
        if self.dropped > 0 && self.bucket.try_take(1.0, now) {
            Some(std::mem::take(&mut self.dropped))
        } else {
            None
        }
    }

    /// Lines dropped and not yet summarised.
    pub fn dropped(&self) -> u64 {
        self.dropped
    }

    /// When the timer should try `flush` again.
    pub fn until_flush(&mut self, now: Instant) -> Duration {
        self.bucket.until_token(now)
    }

    /// Forgets dropped lines (the extension was detached).
    pub fn clear(&mut self) {
        self.dropped = 0;
    }
}

/// The `logging:send` payload for one line. `meta` values are strings (the
/// server stores a `Map(String, String)`); `meta.time` is always set, as a
/// string of microseconds since the epoch.
pub fn line_payload(
    level: LogLevel,
    message: &str,
    meta: &[(&str, &str)],
    now: SystemTime,
) -> Value {
    let mut m: Map<String, Value> = meta
        .iter()
        .map(|(k, v)| ((*k).to_owned(), Value::String((*v).to_owned())))
        .collect();
    m.insert("time".into(), Value::String(unix_micros(now).to_string()));
    json!({
        "level": level.as_str(),
        "message": message,
        "meta": m,
        "timestamp": iso8601(now),
    })
}

/// The summary line for `dropped` lines.
pub fn summary_payload(dropped: u64, now: SystemTime) -> Value {
    let message = format!(
        "{dropped} log lines dropped by the device's rate limit ({RATE_PER_SEC}/s, burst {BURST})"
    );
    let count = dropped.to_string();
    line_payload(
        LogLevel::Warning,
        &message,
        &[("dropped", count.as_str())],
        now,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_allows_a_burst_then_the_rate() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(5.0, 10.0, t0);
        for _ in 0..10 {
            assert!(b.try_take(1.0, t0));
        }
        assert!(!b.try_take(1.0, t0));
        assert_eq!(b.until_token(t0), Duration::from_millis(200));
        assert!(!b.try_take(1.0, t0 + Duration::from_millis(199)));
        assert!(b.try_take(1.0, t0 + Duration::from_millis(200)));
        // Refill stops at the burst size.
        let later = t0 + Duration::from_secs(60);
        assert_eq!(b.available(later), 10.0);
        // A clock going backwards neither adds nor panics.
        assert_eq!(b.available(t0), 10.0);
    }

    #[test]
    fn limiter_counts_drops_and_summarises_after_the_flood() {
        let t0 = Instant::now();
        let mut l = LogLimiter::new(t0);
        let sent = (0..30).filter(|_| l.admit(t0) != Admit::Dropped).count();
        assert_eq!(sent, 10);
        assert_eq!(l.dropped(), 20);
        // One token back: a line gets it, the summary waits.
        let t1 = t0 + Duration::from_millis(200);
        assert_eq!(l.admit(t1), Admit::Send { summary: None });
        assert_eq!(l.dropped(), 20);
        // Two tokens back: the summary goes first, then the line.
        let t2 = t1 + Duration::from_millis(400);
        assert_eq!(l.admit(t2), Admit::Send { summary: Some(20) });
        assert_eq!(l.dropped(), 0);
    }

    #[test]
    fn flush_sends_the_summary_when_a_token_returns() {
        let t0 = Instant::now();
        let mut l = LogLimiter::new(t0);
        for _ in 0..12 {
            l.admit(t0);
        }
        assert_eq!(l.dropped(), 2);
        assert_eq!(l.flush(t0), None);
        assert_eq!(l.until_flush(t0), Duration::from_millis(200));
        assert_eq!(l.flush(t0 + Duration::from_millis(200)), Some(2));
        assert_eq!(l.flush(t0 + Duration::from_secs(5)), None);
    }

    #[test]
    fn sustained_flood_is_bounded_to_the_rate() {
        let t0 = Instant::now();
        let mut l = LogLimiter::new(t0);
        // 100 lines/s for 10 s: 10 burst + 5/s * 10 s = 60 lines get through.
        let mut sent = 0;
        for i in 0..1000u64 {
            let now = t0 + Duration::from_millis(i * 10);
            if let Admit::Send { summary } = l.admit(now) {
                sent += 1 + u64::from(summary.is_some());
            }
        }
        assert!((59..=61).contains(&sent), "sent {sent}");
    }

    #[test]
    fn line_payload_shape() {
        let at = std::time::UNIX_EPOCH + Duration::from_micros(1_700_000_000_123_456);
        let v = line_payload(LogLevel::Info, "boot ok", &[("app", "demo")], at);
        assert_eq!(
            v,
            json!({
                "level": "info",
                "message": "boot ok",
                "meta": {"app": "demo", "time": "1700000000123456"},
                "timestamp": "2023-11-14T22:13:20.123456Z",
            })
        );
        let s = summary_payload(7, at);
        assert_eq!(s["level"], "warning");
        assert_eq!(s["meta"]["dropped"], "7");
        assert!(s["message"]
            .as_str()
            .unwrap_or("")
            .starts_with("7 log lines dropped"));
    }

    #[test]
    fn level_names() {
        assert_eq!("warn".parse::<LogLevel>(), Ok(LogLevel::Warning));
        assert_eq!("ERROR".parse::<LogLevel>(), Ok(LogLevel::Error));
        assert!("loud".parse::<LogLevel>().is_err());
        assert_eq!(LogLevel::from(log::Level::Trace), LogLevel::Debug);
    }
}
