//! [`Nh1Auth`]: NH1 headers signed afresh for every connection attempt, with
//! recovery from a device clock that is behind the server's.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use super::{parse_http_date, sign_headers, SharedSecret};
use crate::config::HeaderProvider;
use crate::error::Result;

/// The device's wall clock in Unix seconds. Injectable so tests (and devices
/// with an RTC of their own) decide what "now" is.
pub type Clock = Arc<dyn Fn() -> u64 + Send + Sync>;

/// How far behind the server's time a hinted signature is dated: the middle
/// of NervesHub's 90 s window. The refusal's `Date` was produced somewhere
/// between the start of the refused attempt and its answer, so dating from
/// the attempt's start could run ahead of the server by up to the handshake
/// time (and a signature from the server's future is refused). Half the
/// window absorbs handshakes of up to 45 s (the default connect timeout is
/// 15 s) while leaving 45 s for the rest.
const HINT_MARGIN_SECS: u64 = 45;

fn system_clock() -> u64 {
    // A clock before 1970 is as wrong as a clock can be; the server's Date
    // header is what rescues that device, so signing with 0 is fine.
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// What the server's last refusal taught about its clock.
#[derive(Default)]
struct Hint {
    /// When the previous attempt was signed: its refusal is what the next
    /// call's `server_date` reports.
    last_attempt: Option<Instant>,
    /// The `Date` value already learned from, so a repeated one is not re-learned.
    seen_date: Option<String>,
    /// Server Unix seconds at a monotonic instant; the server's "now" is
    /// extrapolated from it with the monotonic clock.
    anchor: Option<(u64, Instant)>,
}

/// A [`HeaderProvider`] that signs NH1 headers immediately before each
/// connection attempt.
///
/// Clock recovery (nerves_hub_link PR #434, refined): NervesHub accepts a
/// signature made within the last 90 s of *its* clock. When a refusal carried
/// a `Date` header, the server's time is estimated as that date plus the
/// monotonic time elapsed since the refused attempt started, minus a 45 s
/// safety margin, and the next signature uses `max(device clock, estimate)`.
/// Using the elapsed time matters: after a 401 the socket waits the slow end
/// of its backoff (60-90 s by default), and a signature dated at the refusal
/// itself would then be about to expire. The margin keeps the estimate out
/// of the server's future (see `HINT_MARGIN_SECS`). The estimate is kept
/// across reconnects, so a device without a real-time clock pays for one
/// refusal, not one per reconnect; if it drifts out of the window, the next
/// refusal's `Date` replaces it. A device clock *ahead* of the server is not
/// corrected (as in nerves_hub_link): keep it in sync.
///
/// Use one `Nh1Auth` per socket: the estimate relies on seeing that socket's
/// attempts in order. Nothing secret is ever logged.
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

    /// The Unix seconds the next signature uses, learning from `server_date`.
    fn signing_time(&self, server_date: Option<&str>) -> u64 {
        let device = (self.clock)();
        let now = Instant::now();
        // Only bookkeeping happens under the lock; a poisoned one is still consistent.
        let mut hint = self.hint.lock().unwrap_or_else(PoisonError::into_inner);
        let mut learned = false;
        if let Some(date) = server_date {
            if hint.seen_date.as_deref() != Some(date) {
                hint.seen_date = Some(date.to_owned());
                match parse_http_date(date) {
                    Some(server) => {
                        let refused_attempt = hint.last_attempt.unwrap_or(now);
                        hint.anchor = Some((server, refused_attempt));
                        learned = true;
                    }
                    None => log::debug!("NH1: ignoring an unreadable Date header: {date:?}"),
                }
            }
        }
        hint.last_attempt = Some(now);
        let estimate = hint.anchor.map(|(server, at)| {
            server
                .saturating_add(now.duration_since(at).as_secs())
                .saturating_sub(HINT_MARGIN_SECS)
        });
        match estimate {
            Some(server) if server > device => {
                if learned {
                    log::info!(
                        "NH1: this device's clock is at least {} s behind the server's; signing with the server's time",
                        server - device
                    );
                }
                server
            }
            _ => device,
        }
    }
}

impl HeaderProvider for Nh1Auth {
    fn headers(&self, server_date: Option<&str>) -> Vec<(String, String)> {
        sign_headers(&self.secret, self.signing_time(server_date))
    }
}
