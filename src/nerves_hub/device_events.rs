//! What a NervesHub device reports: the socket's own events passed through,
//! plus typed NervesHub events decoded from the `device` topic.

use std::fmt;

use serde_json::Value;

use super::console::ConsoleEvent;
use super::extensions::ExtensionEvent;
use super::update::Stage;
use super::update_info::UpdateInfo;
use crate::config::redact_query;
use crate::event::Event;
use crate::message::Payload;

/// One ordered stream per device, delivered like the socket's events
/// (async, blocking, polled fd or threaded handler).
#[derive(Debug, Clone)]
pub enum DeviceEvent {
    /// A core event, unchanged: connection (Connecting, Connected,
    /// Disconnected, AuthError), channel (Joined, JoinFailed, ChannelError,
    /// ChannelClosed), replies of casts that could not be sent, messages on
    /// topics the device does not decode, ProtocolError, and `Closed` last.
    Socket(Event),
    /// The server offers an update. With `UpdatePolicy::Manual` answer with
    /// `apply_update`, `ignore_update` or `reschedule_update`; with
    /// `UpdatePolicy::Auto` the device has already decided (informational).
    UpdateAvailable(UpdateInfo),
    /// An offer was skipped by the device itself; `reason` says why:
    /// with `UpdatePolicy::Auto`, the firmware already runs (`ignored` was
    /// reported); no signing key is known while `require_fwup_public_keys`
    /// is on, or `UpdatePolicy::Auto` applies into a fwup sink (`failed`
    /// was reported, and no `UpdateAvailable` comes).
    UpdateIgnored { uuid: String, reason: String },
    /// Progress of the update being applied.
    UpdateProgress { stage: Stage, percent: u8 },
    /// The update being applied ended. `ok: true`: the image is written;
    /// reboot into it when convenient.
    UpdateFinished { ok: bool, reason: Option<String> },
    /// The server asked for a reboot; `rebooting` was already sent.
    Reboot,
    /// The server asked the device to identify itself (blink a LED...).
    Identify,
    /// The deployment group has an archive (an extra signed file).
    Archive(ArchiveInfo),
    /// The organisation's firmware signing keys (requested at join).
    FwupPublicKeys(Vec<String>),
    /// The organisation's archive signing keys (requested at join).
    ArchivePublicKeys(Vec<String>),
    /// A support script to run (only with `DeviceConfig::scripts`); answer
    /// with `Device::script_result(script_ref, ...)`.
    ScriptRun { script_ref: String, text: String },
    /// The server asked which extensions the device has; the device answers
    /// by joining `extensions` itself.
    ExtensionsGet,
    /// A message on the remote console (when `DeviceConfig::console` is set);
    /// answer with `Device::console()`'s `send_output`.
    Console(ConsoleEvent),
    /// What the extensions did (when `DeviceConfig::extensions` is set); they
    /// already answered the server.
    Extension(ExtensionEvent),
    /// A known device event whose payload could not be used; nothing else
    /// was done, except for `update`: the server is told `failed` with
    /// `detail` (unless another update is being applied).
    InvalidMessage {
        event: String,
        detail: String,
        payload: Payload,
    },
    /// Any other message on the `device` topic, passed through.
    Other {
        topic: String,
        event: String,
        payload: Payload,
    },
}

/// The payload of the `archive` event.
#[derive(Clone, PartialEq)]
pub struct ArchiveInfo {
    pub uuid: String,
    /// Signed download URL; its query string is a credential (never logged).
    pub url: String,
    pub size: Option<u64>,
    pub version: Option<String>,
    pub description: Option<String>,
    pub platform: Option<String>,
    pub architecture: Option<String>,
    /// ISO-8601 upload time.
    pub uploaded_at: Option<String>,
    /// The whole payload, for fields this version does not know.
    pub raw: Value,
}

impl fmt::Debug for ArchiveInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ArchiveInfo")
            .field("uuid", &self.uuid)
            .field("url", &redact_query(&self.url))
            .field("size", &self.size)
            .field("version", &self.version)
            .field("description", &self.description)
            .field("platform", &self.platform)
            .field("architecture", &self.architecture)
            .field("uploaded_at", &self.uploaded_at)
            .finish_non_exhaustive()
    }
}

fn opt_string(value: &Value, key: &str) -> Result<Option<String>, String> {
    match value.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(format!("{key:?} must be a string, got {other}")),
    }
}

fn required_string(value: &Value, key: &str) -> Result<String, String> {
    opt_string(value, key)?.ok_or_else(|| format!("{key:?} is missing"))
}

impl ArchiveInfo {
    /// Parses an `archive` payload; the error says which field is wrong.
    pub fn parse(payload: &Value) -> Result<ArchiveInfo, String> {
        if !payload.is_object() {
            return Err("the archive payload must be a JSON object".into());
        }
        let size = match payload.get("size") {
            None | Some(Value::Null) => None,
            Some(v) => Some(
                v.as_u64()
                    .ok_or_else(|| format!("\"size\" must be a non-negative integer, got {v}"))?,
            ),
        };
        Ok(ArchiveInfo {
            uuid: required_string(payload, "uuid")?,
            url: required_string(payload, "url")?,
            size,
            version: opt_string(payload, "version")?,
            description: opt_string(payload, "description")?,
            platform: opt_string(payload, "platform")?,
            architecture: opt_string(payload, "architecture")?,
            uploaded_at: opt_string(payload, "uploaded_at")?,
            raw: payload.clone(),
        })
    }
}

/// The `keys` list of `fwup_public_keys` / `archive_public_keys`.
pub(crate) fn parse_keys(payload: &Value) -> Result<Vec<String>, String> {
    let keys = payload
        .get("keys")
        .ok_or_else(|| "\"keys\" is missing".to_owned())?
        .as_array()
        .ok_or_else(|| "\"keys\" must be a list of strings".to_owned())?;
    keys.iter()
        .map(|k| {
            k.as_str()
                .map(str::to_owned)
                .ok_or_else(|| format!("\"keys\" must be a list of strings, found {k}"))
        })
        .collect()
}

/// The `ref` and `text` of `scripts/run`.
pub(crate) fn parse_script(payload: &Value) -> Result<(String, String), String> {
    Ok((
        required_string(payload, "ref")?,
        required_string(payload, "text")?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn archive_parses_and_hides_the_signed_query() {
        let a = ArchiveInfo::parse(&json!({
            "uuid": "u", "url": "https://s3/x?X-Amz-Signature=secret", "size": 10,
            "version": "1", "uploaded_at": "2026-01-01T00:00:00Z"
        }))
        .unwrap();
        assert_eq!(a.size, Some(10));
        assert!(!format!("{a:?}").contains("secret"));
    }

    #[test]
    fn bad_archive_payloads_say_which_field() {
        let err = ArchiveInfo::parse(&json!({"uuid": "u"})).unwrap_err();
        assert!(err.contains("\"url\""), "{err}");
        let err = ArchiveInfo::parse(&json!({"uuid": "u", "url": "x", "size": -1})).unwrap_err();
        assert!(err.contains("\"size\""), "{err}");
    }

    #[test]
    fn keys_must_be_strings() {
        assert_eq!(parse_keys(&json!({"keys": ["a"]})).unwrap(), vec!["a"]);
        assert!(parse_keys(&json!({"keys": [1]})).is_err());
        assert!(parse_keys(&json!({})).is_err());
    }
}
