//! Reading an HTTP `Date` header (RFC 9110 §5.6.7) into Unix seconds.
//!
//! Servers send IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`); recipients
//! must also accept RFC 850 (`Sunday, 06-Nov-94 08:49:37 GMT`) and asctime
//! (`Sun Nov  6 08:49:37 1994`). The three share one shape once commas and
//! dashes are spaces: a month name, a time `h:m:s`, and two other numbers,
//! day before year. Anything that does not fit gives `None`; a clock hint
//! is optional, so a strange header is ignored rather than trusted.

use crate::calendar::{days_from_civil, days_in_month};

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];

/// Unix seconds of an HTTP date, or `None` if it is not one (or before 1970).
pub fn parse_http_date(value: &str) -> Option<u64> {
    if value.len() > 64 {
        return None;
    }
    let cleaned: String = value
        .chars()
        .map(|c| if c == ',' || c == '-' { ' ' } else { c })
        .collect();
    let mut month = None;
    let mut time = None;
    let mut numbers = Vec::with_capacity(2);
    for token in cleaned.split_ascii_whitespace() {
        if token.contains(':') {
            if time.replace(parse_time(token)?).is_some() {
                return None;
            }
        } else if token.bytes().all(|b| b.is_ascii_digit()) {
            if token.len() > 4 {
                return None;
            }
            numbers.push(token.parse::<u32>().ok()?);
        } else if let Some(m) = month_number(token) {
            if month.replace(m).is_some() {
                return None;
            }
        } else if !is_known_word(token) {
            return None;
        }
    }
    let (month, (hour, minute, second)) = (month?, time?);
    let [day, year] = numbers[..] else {
        return None;
    };
    let year = match year {
        // RFC 850's two-digit years; RFC 9110 says to read them as the nearest past century.
        0..=69 => 2000 + year,
        70..=99 => 1900 + year,
        _ => year,
    };
    if year < 1970 || day == 0 || day > days_in_month(year, month) {
        return None;
    }
    let days = days_from_civil(i64::from(year), month, day);
    let secs = days * 86_400 + i64::from(hour * 3600 + minute * 60 + second);
    u64::try_from(secs).ok()
}

fn month_number(token: &str) -> Option<u32> {
    let lower = token.to_ascii_lowercase();
    MONTHS
        .iter()
        .position(|m| *m == lower)
        .map(|i| i as u32 + 1)
}

/// Weekday names (short or long) and the GMT/UTC zone.
fn is_known_word(token: &str) -> bool {
    const WORDS: [&str; 16] = [
        "mon",
        "tue",
        "wed",
        "thu",
        "fri",
        "sat",
        "sun",
        "monday",
        "tuesday",
        "wednesday",
        "thursday",
        "friday",
        "saturday",
        "sunday",
        "gmt",
        "utc",
    ];
    let lower = token.to_ascii_lowercase();
    WORDS.contains(&lower.as_str())
}

fn parse_time(token: &str) -> Option<(u32, u32, u32)> {
    let mut parts = token.split(':');
    let mut field = |max: u32| -> Option<u32> {
        let part = parts.next()?;
        if part.is_empty() || part.len() > 2 || !part.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        part.parse::<u32>().ok().filter(|v| *v <= max)
    };
    // 60 is a leap second; counting it as 59 is close enough for a clock hint.
    let time = (field(23)?, field(59)?, field(60)?.min(59));
    parts.next().is_none().then_some(time)
}
