//! How `nhc device` and `nhc agent` show device events: one JSON object per
//! event (`--json`, the agent's default), log records (the agent under
//! journald), or the text lines `nhc device` always printed.
//!
//! Nothing secret is shown: firmware URLs (signed queries) are left out and
//! console keystrokes are counted, never echoed.

use nerves_hub_channel::event::identity_in_use_reason;
use nerves_hub_channel::nerves_hub::console::ConsoleEvent;
use nerves_hub_channel::nerves_hub::DeviceEvent;
use nerves_hub_channel::Event;
use serde_json::{json, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    Text,
    Json,
    Log,
}

impl Output {
    /// Shows one event; `text` is the line of the text form.
    pub fn show(self, value: &Value, text: &str) {
        match self {
            Output::Text => println!("{text}"),
            Output::Json => println!("{value}"),
            Output::Log => log::info!("{text}"),
        }
    }

    /// Shows a device event.
    pub fn event(self, event: &DeviceEvent) {
        let (value, text) = describe(event);
        self.show(&value, &text);
    }
}

/// The JSON object and the text line of one device event.
pub fn describe(event: &DeviceEvent) -> (Value, String) {
    match event {
        DeviceEvent::Socket(e) => socket(e),
        DeviceEvent::UpdateAvailable(info) => {
            let m = &info.firmware_meta;
            (
                json!({"event": "update_available", "uuid": m.uuid, "version": m.version,
                       "size": info.size}),
                format!("update: {} offered", m.uuid),
            )
        }
        DeviceEvent::UpdateIgnored { uuid, reason } => (
            json!({"event": "update_ignored", "uuid": uuid, "reason": reason}),
            format!("update: {uuid} not applied: {reason}"),
        ),
        DeviceEvent::UpdateProgress { stage, percent } => (
            json!({"event": "update_progress", "stage": stage.as_str(), "percent": percent}),
            format!("update: {} {percent}%", stage.as_str()),
        ),
        DeviceEvent::UpdateFinished { ok, reason } => (
            json!({"event": "update_finished", "ok": ok, "reason": reason}),
            match reason {
                Some(r) => format!("update: finished ok={ok}: {r}"),
                None => format!("update: finished ok={ok}"),
            },
        ),
        DeviceEvent::Reboot => (
            json!({"event": "reboot_requested"}),
            "reboot requested".into(),
        ),
        DeviceEvent::Identify => (json!({"event": "identify"}), "identify requested".into()),
        DeviceEvent::Archive(a) => (
            json!({"event": "archive", "uuid": a.uuid, "version": a.version, "size": a.size}),
            format!("archive: {} offered", a.uuid),
        ),
        DeviceEvent::FwupPublicKeys(keys) => (
            json!({"event": "fwup_public_keys", "count": keys.len()}),
            format!("fwup public keys: {} from the server", keys.len()),
        ),
        DeviceEvent::ArchivePublicKeys(keys) => (
            json!({"event": "archive_public_keys", "count": keys.len()}),
            format!("archive public keys: {} from the server", keys.len()),
        ),
        DeviceEvent::ScriptRun { script_ref, text } => (
            json!({"event": "script_run", "ref": script_ref, "bytes": text.len()}),
            format!("script {script_ref} received ({} bytes)", text.len()),
        ),
        DeviceEvent::ExtensionsGet => (
            json!({"event": "extensions_get"}),
            "extensions requested".into(),
        ),
        DeviceEvent::Console(c) => console(c),
        DeviceEvent::Extension(e) => (
            json!({"event": "extension", "detail": format!("{e:?}")}),
            format!("extension: {e:?}"),
        ),
        DeviceEvent::InvalidMessage { event, detail, .. } => (
            json!({"event": "invalid_message", "message": event, "detail": detail}),
            format!("invalid {event}: {detail}"),
        ),
        DeviceEvent::Other { topic, event, .. } => (
            json!({"event": "message", "topic": topic, "message": event}),
            format!("{topic} {event}"),
        ),
    }
}

fn socket(e: &Event) -> (Value, String) {
    let value = match e {
        Event::Connecting { attempt } => json!({"event": "connecting", "attempt": attempt}),
        Event::Connected => json!({"event": "connected"}),
        Event::Disconnected {
            reason,
            reconnect_in,
        } => json!({"event": "disconnected", "reason": reason.to_string(),
                    "reconnect_in_ms": reconnect_in.map(|d| d.as_millis() as u64)}),
        Event::AuthError {
            error,
            reconnect_in,
        } => json!({"event": "auth_error", "reason": error.to_string(),
                    "reconnect_in_ms": reconnect_in.map(|d| d.as_millis() as u64)}),
        Event::IdentityInUse { sessions } => {
            let reason = identity_in_use_reason(*sessions);
            return (
                json!({"event": "identity_in_use", "reason": reason}),
                format!("identity in use: {reason}"),
            );
        }
        Event::Joined { topic, .. } => json!({"event": "joined", "topic": topic}),
        Event::JoinFailed { topic, failure, .. } => {
            json!({"event": "join_failed", "topic": topic, "reason": format!("{failure:?}")})
        }
        Event::ChannelError { topic, reason, .. } => {
            json!({"event": "channel_error", "topic": topic, "reason": reason})
        }
        Event::ChannelClosed { topic, reason, .. } => {
            json!({"event": "channel_closed", "topic": topic, "reason": reason})
        }
        Event::Closed => json!({"event": "closed"}),
        other => json!({"event": "socket", "detail": format!("{other:?}")}),
    };
    (value, format!("{e:?}"))
}

fn console(c: &ConsoleEvent) -> (Value, String) {
    let value = match c {
        ConsoleEvent::Input(data) => json!({"event": "console_input", "bytes": data.len()}),
        ConsoleEvent::WindowSize { width, height } => {
            json!({"event": "console_window_size", "width": width, "height": height})
        }
        ConsoleEvent::Restart => json!({"event": "console_restart"}),
        ConsoleEvent::File { event, .. } => json!({"event": "console_file", "message": event}),
        ConsoleEvent::Other { event, .. } => json!({"event": "console_message", "message": event}),
    };
    let text = value.to_string();
    (value, text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use nerves_hub_channel::nerves_hub::update::Stage;

    #[test]
    fn events_become_one_json_object_each_and_keystrokes_are_not_shown() {
        let (v, t) = describe(&DeviceEvent::UpdateProgress {
            stage: Stage::Downloading,
            percent: 40,
        });
        assert_eq!(
            v,
            json!({"event": "update_progress", "stage": "downloading", "percent": 40})
        );
        assert_eq!(t, "update: downloading 40%");
        let (v, t) = describe(&DeviceEvent::Console(ConsoleEvent::Input(
            "hunter2\n".into(),
        )));
        assert_eq!(v, json!({"event": "console_input", "bytes": 8}));
        assert!(!t.contains("hunter2"));
        let (v, _) = describe(&DeviceEvent::Socket(Event::Closed));
        assert_eq!(v["event"], "closed");
    }
}
