//! NervesHub's semantics on top of plain Phoenix channels: what the server
//! sends after a `device` join, how it answers the `extensions` join, and
//! that device-facing topics never answer pushes
//! (nerves-hub-protocol.md sections 2.2, 2.4 and 4).

use nerves_hub_channel::message::{Message, Payload, Reply};
use serde_json::{json, Value};

use crate::state::Conn;

/// A dummy fwup public key (base64 of 32 zero bytes), the default answer to
/// `fwup_public_keys: "on_connect"`.
pub const DUMMY_PUBLIC_KEY: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";

/// Settings the control API can change; `reset` restores the defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HubSettings {
    pub fwup_public_keys: Vec<String>,
    pub archive_public_keys: Vec<String>,
    /// Extensions the "product" has enabled.
    pub extensions: Vec<String>,
}

impl Default for HubSettings {
    fn default() -> HubSettings {
        HubSettings {
            fwup_public_keys: vec![DUMMY_PUBLIC_KEY.into()],
            archive_public_keys: vec![DUMMY_PUBLIC_KEY.into()],
            extensions: ["health", "geo", "logging"].map(String::from).to_vec(),
        }
    }
}

/// Topics whose pushes get no reply, as on NervesHub.
pub(crate) fn is_silent(topic: &str) -> bool {
    matches!(topic, "device" | "extensions")
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
/// requested public keys, then `extensions:get` for API 2.2.0 and later.
pub(crate) fn after_device_join(
    conn: &Conn,
    join_ref: &Option<String>,
    join: &Payload,
    settings: &HubSettings,
) {
    let join = join.to_value().unwrap_or(Value::Null);
    let push = |event: &str, payload: Value| {
        conn.send_message(&Message {
            join_ref: join_ref.clone(),
            msg_ref: None,
            topic: "device".into(),
            event: event.into(),
            payload: Payload::json(&payload),
        });
    };
    let asked = |key: &str| join.get(key).and_then(Value::as_str) == Some("on_connect");
    if asked("fwup_public_keys") {
        push(
            "fwup_public_keys",
            json!({"keys": settings.fwup_public_keys}),
        );
    }
    if asked("archive_public_keys") {
        push(
            "archive_public_keys",
            json!({"keys": settings.archive_public_keys}),
        );
    }
    if api_version(&join) >= (2, 2, 0) {
        push("extensions:get", json!({}));
    }
}

/// The `extensions` join reply: the offered names the product has enabled.
pub(crate) fn extensions_reply(join: &Payload, settings: &HubSettings) -> Reply {
    let offered = join.to_value().unwrap_or(Value::Null);
    let attach: Vec<&String> = settings
        .extensions
        .iter()
        .filter(|name| offered.get(name.as_str()).is_some())
        .collect();
    Reply {
        status: "ok".into(),
        response: Payload::json(&json!(attach)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
