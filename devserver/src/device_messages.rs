//! What NervesHub's device-facing channels do with a device's own pushes
//! (nerves_hub_web v2.4.0 and main, nerves-hub-protocol.md "Decisions and
//! corrections" 5):
//! - `device` never replies (`{:noreply, socket}`), but a `status_update`
//!   status outside the inflight-update enum, a non-integer progress or
//!   `delay_for`, or a `fwup_progress` stage outside that enum or a
//!   non-integer value raise in the channel process, which Phoenix reports
//!   as `phx_error`;
//! - `rescheduled` blocks updates for `delay_for` milliseconds
//!   (`NaiveDateTime.add(delay_for, :millisecond)`);
//! - `console` never replies to `up` or the file-data events, and has no
//!   clause for anything else (a crash);
//! - `extensions` answers `{:error, "detach"}` to events of an extension it
//!   did not attach, and nothing to the others.

use std::time::{Duration, SystemTime};

use nerves_hub_channel::message::{Payload, Reply};
use serde_json::{json, Value};

/// How the channel answers one push.
#[derive(Debug, PartialEq)]
pub(crate) enum Answer {
    Silent,
    Reply(Reply),
    /// The channel process raised: `phx_error`, and the channel is gone.
    Crash(String),
    /// `rescheduled`: silent, and updates are blocked until then.
    Block(SystemTime),
}

/// `InflightUpdate`'s `status` enum (web main); a `status_update` or a
/// `fwup_progress` stage outside it fails the changeset cast and crashes.
const STATUSES: [&str; 10] = [
    "requested",
    "rescheduled",
    "ignored",
    "received",
    "started",
    "downloading",
    "updating",
    "completed",
    "failed",
    "expired",
];

const CONSOLE_EVENTS: [&str; 4] = ["up", "file-data/start", "file-data", "file-data/stop"];

/// The answer of `topic`'s channel to `event`; `attached` are the
/// extensions this connection's `extensions` join attached.
pub(crate) fn answer(topic: &str, event: &str, payload: &Payload, attached: &[String]) -> Answer {
    let value = payload.to_value().unwrap_or(Value::Null);
    match topic {
        "device" => device(event, &value),
        "console" if CONSOLE_EVENTS.contains(&event) => Answer::Silent,
        "console" => Answer::Crash(format!("the console channel has no clause for {event:?}")),
        "extensions" => extension(event, attached),
        _ => Answer::Silent,
    }
}

fn device(event: &str, value: &Value) -> Answer {
    let checked = match event {
        "status_update" => status_update(value),
        "fwup_progress" => fwup_progress(value),
        _ => Ok(None),
    };
    match checked {
        Ok(Some(until)) => Answer::Block(until),
        Ok(None) => Answer::Silent,
        Err(reason) => Answer::Crash(reason),
    }
}

fn is_integer(value: &Value) -> bool {
    value.is_i64() || value.is_u64()
}

/// `Ok(Some(until))` for a `rescheduled` that blocks updates.
fn status_update(value: &Value) -> Result<Option<SystemTime>, String> {
    // Without a "status" no handle_in clause of v2.4.0 matches but the
    // catch-all, which ignores it.
    let Some(status) = value.get("status") else {
        return Ok(None);
    };
    let Some(status) = status.as_str() else {
        return Err(format!("status_update status {status} is not a string"));
    };
    if status.to_lowercase().contains("fwup error") {
        // Old links' failure text: web maps it to `failed`.
        return Ok(None);
    }
    if !STATUSES.contains(&status) {
        return Err(format!(
            "status_update status {status:?} is not a known status"
        ));
    }
    if let Some(progress) = value.get("progress").filter(|p| !p.is_null()) {
        if matches!(status, "downloading" | "updating") && !is_integer(progress) {
            return Err(format!(
                "status_update progress {progress} is not an integer"
            ));
        }
    }
    if status != "rescheduled" {
        return Ok(None);
    }
    match value.get("delay_for") {
        // The clause matching `delay_for` is skipped; the generic one stores the status.
        None => Ok(None),
        Some(delay) => match delay.as_i64() {
            Some(ms) => Ok(Some(blocked_until(ms))),
            None => Err(format!("rescheduled delay_for {delay} is not an integer")),
        },
    }
}

fn blocked_until(delay_ms: i64) -> SystemTime {
    let now = SystemTime::now();
    let delay = Duration::from_millis(delay_ms.unsigned_abs());
    let until = if delay_ms >= 0 {
        now.checked_add(delay)
    } else {
        now.checked_sub(delay)
    };
    until.unwrap_or(now)
}

fn fwup_progress(value: &Value) -> Result<Option<SystemTime>, String> {
    // Without a "value" no progress clause matches; the catch-all ignores it.
    let Some(progress) = value.get("value") else {
        return Ok(None);
    };
    if !is_integer(progress) {
        return Err(format!("fwup_progress value {progress} is not an integer"));
    }
    match value.get("stage") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(stage)) if STATUSES.contains(&stage.as_str()) => Ok(None),
        Some(stage) => Err(format!("fwup_progress stage {stage} is not a known stage")),
    }
}

fn extension(event: &str, attached: &[String]) -> Answer {
    let attached_key = event
        .split_once(':')
        .is_some_and(|(key, _)| attached.iter().any(|name| name == key));
    if attached_key {
        Answer::Silent
    } else {
        Answer::Reply(Reply {
            status: "error".into(),
            response: Payload::json(&json!("detach")),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn device_answer(event: &str, payload: Value) -> Answer {
        answer("device", event, &Payload::json(&payload), &[])
    }

    #[test]
    fn known_statuses_and_integer_progress_are_taken_silently() {
        for payload in [
            json!({"status": "received"}),
            json!({"status": "downloading", "progress": 40}),
            json!({"status": "failed", "reason": "x"}),
            json!({"status": "fwup error: bad"}),
            json!({"other": 1}),
        ] {
            assert_eq!(device_answer("status_update", payload), Answer::Silent);
        }
        assert_eq!(
            device_answer("fwup_progress", json!({"stage": "updating", "value": 3})),
            Answer::Silent
        );
        assert_eq!(
            device_answer("report_network_interface", json!({"interface": "eth0"})),
            Answer::Silent
        );
    }

    #[test]
    fn unknown_statuses_stages_and_non_integers_crash_the_channel() {
        for (event, payload) in [
            ("status_update", json!({"status": "done"})),
            ("status_update", json!({"status": 3})),
            (
                "status_update",
                json!({"status": "updating", "progress": "50"}),
            ),
            (
                "status_update",
                json!({"status": "rescheduled", "delay_for": 1.5}),
            ),
            ("fwup_progress", json!({"stage": "flashing", "value": 1})),
            ("fwup_progress", json!({"stage": "updating", "value": 1.5})),
        ] {
            assert!(
                matches!(device_answer(event, payload.clone()), Answer::Crash(_)),
                "{event} {payload}"
            );
        }
    }

    #[test]
    fn rescheduled_blocks_for_delay_for_milliseconds() {
        let before = SystemTime::now();
        let Answer::Block(until) = device_answer(
            "status_update",
            json!({"status": "rescheduled", "delay_for": 90_000}),
        ) else {
            panic!("rescheduled blocks updates");
        };
        let after = SystemTime::now();
        assert!(until >= before + Duration::from_secs(90));
        assert!(until <= after + Duration::from_secs(90));
    }

    #[test]
    fn console_and_extensions_answer_like_nerves_hub() {
        let empty = Payload::empty();
        assert_eq!(answer("console", "up", &empty, &[]), Answer::Silent);
        assert!(matches!(
            answer("console", "shout", &empty, &[]),
            Answer::Crash(_)
        ));
        let attached = ["health".to_owned()];
        assert_eq!(
            answer("extensions", "health:report", &empty, &attached),
            Answer::Silent
        );
        let detach = Answer::Reply(Reply {
            status: "error".into(),
            response: Payload::json(&json!("detach")),
        });
        assert_eq!(
            answer("extensions", "geo:location", &empty, &attached),
            detach
        );
        assert_eq!(answer("extensions", "health", &empty, &attached), detach);
    }
}
