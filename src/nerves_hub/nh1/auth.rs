//! [`Nh1Auth`]: NH1 headers signed afresh for every connection attempt, with
//! recovery from a device clock that is behind or ahead of the server's.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use super::{parse_http_date, sign_headers, SharedSecret};
use crate::config::HeaderProvider;
use crate::error::Result;

/// The device's wall clock in Unix seconds. Injectable so tests (and devices
/// with an RTC of their own) decide what "now" is.
pub type Clock = Arc<dyn Fn() -> u64 + Send + Sync>;

/// How far behind the (estimated) server time every signature is dated.
/// NervesHub main (plug_crypto 2.2) refuses a signature from its future,
/// compared in milliseconds against a signing time in whole seconds: a
/// clock a fraction of a second ahead would fail now and then. The estimate
/// learned from a `Date` header can also be up to 1 s too far ahead (both
/// clocks are read in whole seconds), and clocks drift apart after it was
/// learned. 5 s covers all of that and leaves 85 s of the 90 s window for
/// the TCP, TLS and upgrade handshakes.
const SIGNING_MARGIN_SECS: u64 = 5;

/// A new estimate that differs from the previous one by at most this much
/// is the rounding of the two whole-second clocks, not news about the
/// server's clock: the refusal had another cause, and the attempt after it
/// waits at the slow end of the backoff.
const CHANGE_TOLERANCE_SECS: i64 = 2;

fn system_clock() -> u64 {
    // A clock before 1970 is as wrong as a clock can be; the server's Date
    // header is what rescues that device, so signing with 0 is fine.
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The system clock shifted by `offset_secs` (negative: back), saturating.
pub fn offset_clock(offset_secs: i64) -> Clock {
    Arc::new(move || system_clock().saturating_add_signed(offset_secs))
}

/// What the server's refusals taught about its clock.
#[derive(Default)]
struct Hint {
    /// The `Date` value last learned from: the socket passes it to `headers`
    /// again after `refused` learned it, and reading it against a later
    /// device clock would skew the estimate.
    seen_date: Option<String>,
    /// Server clock minus device clock, in seconds, from the last refusal.
    offset: Option<i64>,
}

/// A [`HeaderProvider`] that signs NH1 headers immediately before each
/// connection attempt.
///
/// Clock recovery: NervesHub accepts a signature made within the last 90 s
/// of *its* clock, and servers built from nerves_hub_web main (plug_crypto
/// 2.2) also refuse one made in their future. When the server refuses an
/// attempt, the `Date` header of its 401 is compared with the device clock
/// read when the refusal arrives: the difference is the estimated offset of
/// the server's clock, behind or ahead. Every signature is dated at device
/// clock + offset - 5 s (the margin keeps it out of the server's future; see
/// `SIGNING_MARGIN_SECS`). A refusal whose `Date` changed the estimate by
/// more than 2 s reports so ([`HeaderProvider::refused`]), and the socket
/// retries at the first step of its backoff instead of the slow end. The
/// estimate is kept across reconnects, so a device with a wrong clock pays
/// for one refusal, not one per reconnect; if the device clock jumps (NTP
/// corrected it), the next refusal replaces the estimate.
///
/// Use one `Nh1Auth` per socket. Nothing secret is ever logged.
pub struct Nh1Auth {
    secret: SharedSecret,
    clock: Clock,
    hint: Mutex<Hint>,
}

impl fmt::Debug for Nh1Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Nh1Auth")
            .field("secret", &self.secret)
            .finish_non_exhaustive()
    }
}

impl Nh1Auth {
    /// Signs with the system clock. Fails if the secret is unusable.
    pub fn new(secret: SharedSecret) -> Result<Nh1Auth> {
        Nh1Auth::with_clock(secret, Arc::new(system_clock))
    }

    /// Signs with the system clock shifted by `offset_secs`: for a device
    /// that knows how wrong its clock is (negative: the system clock is
    /// ahead). The server's `Date` still corrects what is left.
    pub fn with_clock_offset(secret: SharedSecret, offset_secs: i64) -> Result<Nh1Auth> {
        Nh1Auth::with_clock(secret, offset_clock(offset_secs))
    }

    /// Signs with `clock` as the device's wall clock (Unix seconds).
    pub fn with_clock(secret: SharedSecret, clock: Clock) -> Result<Nh1Auth> {
        secret.validate()?;
        Ok(Nh1Auth {
            secret,
            clock,
            hint: Mutex::new(Hint::default()),
        })
    }

    pub fn shared_secret(&self) -> &SharedSecret {
        &self.secret
    }

    /// The estimated server clock minus the device clock, in seconds, once
    /// a refusal taught it.
    pub fn clock_offset(&self) -> Option<i64> {
        self.lock().offset
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Hint> {
        // Only bookkeeping happens under the lock; a poisoned one is still consistent.
        self.hint.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Learns the server's clock from the `Date` of a refusal that arrived
    /// just now (`again`: also when that same value was learned before, as
    /// two refusals within one second carry). True when the estimate moved
    /// by more than the tolerance.
    fn learn(&self, server_date: &str, again: bool) -> bool {
        let device = (self.clock)();
        let mut hint = self.lock();
        if !again && hint.seen_date.as_deref() == Some(server_date) {
            return false;
        }
        hint.seen_date = Some(server_date.to_owned());
        let Some(server) = parse_http_date(server_date) else {
            log::debug!("NH1: ignoring an unreadable Date header: {server_date:?}");
            return false;
        };
        let offset = i64::try_from(server)
            .unwrap_or(i64::MAX)
            .saturating_sub(i64::try_from(device).unwrap_or(i64::MAX));
        let previous = hint.offset.unwrap_or(0);
        hint.offset = Some(offset);
        let changed = offset.saturating_sub(previous).abs() > CHANGE_TOLERANCE_SECS;
        if changed {
            let (how, secs) = if offset < 0 {
                ("ahead of", offset.unsigned_abs())
            } else {
                ("behind", offset.unsigned_abs())
            };
            log::info!(
                "NH1: this device's clock is about {secs} s {how} the server's; signing with the server's time"
            );
        }
        changed
    }

    /// The Unix seconds the next signature uses.
    fn signing_time(&self) -> u64 {
        let device = (self.clock)();
        let offset = self.lock().offset.unwrap_or(0);
        device
            .saturating_add_signed(offset)
            .saturating_sub(SIGNING_MARGIN_SECS)
    }
}

impl HeaderProvider for Nh1Auth {
    fn headers(&self, server_date: Option<&str>) -> Vec<(String, String)> {
        // The socket already reported this date through `refused`; a caller
        // driving `headers` alone learns from it here.
        if let Some(date) = server_date {
            self.learn(date, false);
        }
        sign_headers(&self.secret, self.signing_time())
    }

    fn refused(&self, server_date: Option<&str>) -> bool {
        server_date.is_some_and(|date| self.learn(date, true))
    }
}
