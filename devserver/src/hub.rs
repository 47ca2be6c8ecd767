//! NervesHub's semantics on top of plain Phoenix channels: what the server
//! sends after a `device` join and how it answers the `extensions` join
//! (nerves-hub-protocol.md sections 2.2, 2.4 and 4). What it does with the
//! device's own pushes is in `device_messages`.

use nerves_hub_channel::message::{Message, Payload, Reply};
use serde_json::{json, Value};

use crate::state::Conn;

pub(crate) use crate::hub_settings::HubSettings;
pub use crate::hub_settings::DUMMY_PUBLIC_KEY;

/// NervesHub's device-facing topics, whose pushes `device_messages` answers.
pub(crate) fn is_device_facing(topic: &str) -> bool {
    matches!(topic, "device" | "console" | "extensions")
}

/// `x.y.z` as numbers; like the server, anything unparsable counts as 1.0.0.
fn api_version(join: &Value) -> (u64, u64, u64) {
    let parsed = join
        .get("device_api_version")
        .and_then(Value::as_str)
        .and_then(|v| {
            let mut parts = v.trim().split('.').map(|p| p.parse::<u64>().ok());
            Some((parts.next()??, parts.next()??, parts.next()??))
        });
    parsed.unwrap_or((1, 0, 0))
}

/// What NervesHub pushes after a successful `device` join, in its order:
/// requested public keys (only when there are some, as web `main` does),
/// then `extensions:get {}` for API 2.2.0 and later. The server sends them
/// through PubSub, so they arrive as broadcasts: `join_ref` null.
pub(crate) fn after_device_join(conn: &Conn, join: &Payload, settings: &HubSettings) {
    let join = join.to_value().unwrap_or(Value::Null);
    let push = |event: &str, payload: Value| {
        conn.send_message(&Message {
            join_ref: None,
            msg_ref: None,
            topic: "device".into(),
            event: event.into(),
            payload: Payload::json(&payload),
        });
    };
    let asked = |key: &str| join.get(key).and_then(Value::as_str) == Some("on_connect");
    if asked("fwup_public_keys") && !settings.fwup_public_keys.is_empty() {
        push(
            "fwup_public_keys",
            json!({"keys": settings.fwup_public_keys}),
        );
    }
    if asked("archive_public_keys") && !settings.archive_public_keys.is_empty() {
        push(
            "archive_public_keys",
            json!({"keys": settings.archive_public_keys}),
        );
    }
    if api_version(&join) >= (2, 2, 0) {
        push("extensions:get", json!({}));
    }
}

/// What NervesHub pushes when the device confirms an attached extension
/// with `<name>:attached`: the extension's `attach` callback runs, and only
/// local_shell's pushes something, `local_shell:request_shell {}` (web
/// v2.3.0 and later, `lib/nerves_hub/extensions/local_shell.ex`). A test
/// then drives the shell with `/push` (`local_shell:shell_input`,
/// `local_shell:window_size`) and reads `local_shell:shell_output` with `/wait`.
pub(crate) fn after_extension_push(
    conn: &Conn,
    join_ref: &Option<String>,
    event: &str,
    attached: &[String],
) {
    if event == "local_shell:attached" && attached.iter().any(|n| n == "local_shell") {
        conn.send_message(&Message {
            join_ref: join_ref.clone(),
            msg_ref: None,
            topic: "extensions".into(),
            event: "local_shell:request_shell".into(),
            payload: Payload::json(&json!({})),
        });
    }
}

/// The `extensions` join reply: the offered names the product has enabled
/// and whose offered version the server implements (`~> 0.0.1`, i.e.
/// 0.0.1 <= v < 0.1.0, as web's `Extensions.module/2` checks).
pub(crate) fn extensions_reply(join: &Payload, settings: &HubSettings) -> Reply {
    let offered = join.to_value().unwrap_or(Value::Null);
    let attach: Vec<&String> = settings
        .extensions
        .iter()
        .filter(|name| {
            offered
                .get(name.as_str())
                .and_then(Value::as_str)
                .is_some_and(supported_version)
        })
        .collect();
    Reply {
        status: "ok".into(),
        response: Payload::json(&json!(attach)),
    }
}

/// Elixir's `Version.match?(v, "~> 0.0.1")`: a full `major.minor.patch`
/// with 0.0.1 <= v < 0.1.0. Build metadata (`+...`) is ignored; a
/// pre-release (`-...`) sorts before its release, so 0.0.1-rc1 is too old.
fn supported_version(version: &str) -> bool {
    let version = version.split_once('+').map_or(version, |(v, _)| v);
    let (core, pre) = match version.split_once('-') {
        Some((core, pre)) if !pre.is_empty() => (core, true),
        Some(_) => return false,
        None => (version, false),
    };
    let mut parts = core.split('.').map(|p| {
        // Elixir's parser refuses leading zeros ("01") and signs.
        let numeric = !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
        (numeric && (p == "0" || !p.starts_with('0')))
            .then(|| p.parse::<u64>().ok())
            .flatten()
    });
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(Some(0)), Some(Some(0)), Some(Some(patch)), None) => patch >= if pre { 2 } else { 1 },
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_versions_matching_tilde_0_0_1_are_supported() {
        for good in ["0.0.1", "0.0.2", "0.0.10", "0.0.1+build", "0.0.2-rc1"] {
            assert!(supported_version(good), "{good}");
        }
        for bad in [
            "0.0.0",
            "0.1.0",
            "1.0.0",
            "0.0",
            "0.0.1-rc1",
            "0.0.01",
            "x",
            "",
            "0.0.1.0",
            "0.0.1-",
        ] {
            assert!(!supported_version(bad), "{bad}");
        }
    }

    #[test]
    fn extensions_with_an_unsupported_version_are_not_attached() {
        let offer = Payload::json(&json!({"health": "0.1.0", "geo": "0.0.1", "logging": 1}));
        let reply = extensions_reply(&offer, &HubSettings::default());
        assert_eq!(reply.response.to_value(), Some(json!(["geo"])));
    }

    #[test]
    fn api_versions_compare_numerically() {
        assert_eq!(
            api_version(&json!({"device_api_version": "2.10.0"})),
            (2, 10, 0)
        );
        assert_eq!(api_version(&json!({"device_api_version": "x"})), (1, 0, 0));
        assert_eq!(api_version(&json!({})), (1, 0, 0));
        assert!(api_version(&json!({"device_api_version": "2.2.0"})) >= (2, 2, 0));
    }

    #[test]
    fn extensions_reply_is_the_enabled_subset_of_the_offer() {
        let offer =
            Payload::json(&json!({"health": "0.0.1", "local_shell": "0.0.1", "geo": "0.0.1"}));
        let reply = extensions_reply(&offer, &HubSettings::default());
        assert_eq!(reply.response.to_value(), Some(json!(["health", "geo"])));
    }
}
