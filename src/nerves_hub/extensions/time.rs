//! Wall-clock formats the extensions send: ISO-8601 UTC timestamps and
//! microseconds since the Unix epoch.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::calendar::civil_from_days;

/// Microseconds since the Unix epoch (0 for a clock set before 1970).
pub fn unix_micros(at: SystemTime) -> u128 {
    at.duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros())
        .unwrap_or(0)
}

/// `YYYY-MM-DDTHH:MM:SS.ffffffZ`, as Elixir's `DateTime.to_iso8601/1` writes a
/// microsecond UTC time.
pub fn iso8601(at: SystemTime) -> String {
    let micros = unix_micros(at);
    let secs = micros / 1_000_000;
    let frac = micros % 1_000_000;
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{frac:06}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn formats_known_instants() {
        assert_eq!(iso8601(UNIX_EPOCH), "1970-01-01T00:00:00.000000Z");
        // 2024-02-29T12:34:56.789012Z (a leap day).
        let at = UNIX_EPOCH + Duration::from_micros(1_709_210_096_789_012);
        assert_eq!(iso8601(at), "2024-02-29T12:34:56.789012Z");
        let at = UNIX_EPOCH + Duration::from_secs(4_102_444_799);
        assert_eq!(iso8601(at), "2099-12-31T23:59:59.000000Z");
    }

    #[test]
    fn micros_since_epoch() {
        assert_eq!(
            unix_micros(UNIX_EPOCH + Duration::from_millis(1500)),
            1_500_000
        );
        assert_eq!(unix_micros(UNIX_EPOCH - Duration::from_secs(1)), 0);
    }
}
