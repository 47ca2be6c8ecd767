//! The `device` join payload, rebuilt at every (re)join because the update
//! in progress and the validation state change between connections.

use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::{json, Map, Value};

use super::device_config::{DeviceConfig, UpdatePolicy};
use super::metadata::FirmwareMetadata;
use crate::message::Payload;
use crate::JoinParams;

/// What the join payload is built from; shared by the device handle, the
/// agent and the channel's params callback (which must not own the device).
pub(crate) struct JoinState {
    device_api_version: String,
    fwup_version: Option<String>,
    update_tool: String,
    request_fwup_keys: bool,
    request_archive_keys: bool,
    /// Extra static keys (e.g. `console_version` when a console is enabled).
    extra: Mutex<Map<String, Value>>,
    metadata: Mutex<FirmwareMetadata>,
    /// Last known answer of the firmware-validated provider.
    validated: Mutex<Option<bool>>,
    /// UUID of the update being applied.
    downloading: Mutex<Option<String>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Whether updates are applied automatically into a fwup sink.
fn auto_fwup(config: &DeviceConfig) -> bool {
    matches!(&config.update_policy, UpdatePolicy::Auto(o) if o.sink.runs_fwup())
}

impl JoinState {
    pub fn new(config: &DeviceConfig, validated: Option<bool>) -> Arc<JoinState> {
        Arc::new(JoinState {
            device_api_version: config.device_api_version.clone(),
            fwup_version: config.fwup_version.clone(),
            update_tool: config.update_tool.clone(),
            // As link: ask when told to, or when keys are needed (required,
            // or for automatic updates into fwup) and none are configured.
            request_fwup_keys: config.request_fwup_public_keys
                || (config.fwup_public_keys.is_empty()
                    && (config.require_fwup_public_keys
                        || (!config.allow_unverified_firmware && auto_fwup(config)))),
            request_archive_keys: config.request_archive_public_keys,
            extra: Mutex::new(Map::new()),
            metadata: Mutex::new(config.metadata.clone()),
            validated: Mutex::new(validated),
            downloading: Mutex::new(None),
        })
    }

    pub fn params(self: &Arc<Self>) -> JoinParams {
        let state = self.clone();
        JoinParams::Dynamic(Arc::new(move || Payload::json(&state.payload())))
    }

    pub fn payload(&self) -> Value {
        let mut p = Map::new();
        let metadata = lock(&self.metadata);
        for (k, v) in metadata.entries() {
            p.insert(k.clone(), Value::String(v.clone()));
        }
        for (k, v) in lock(&self.extra).iter() {
            p.insert(k.clone(), v.clone());
        }
        p.insert("device_api_version".into(), json!(self.device_api_version));
        p.insert("update_tool".into(), json!(self.update_tool));
        if let Some(v) = &self.fwup_version {
            p.insert("fwup_version".into(), json!(v));
        }
        p.insert(
            "currently_downloading_uuid".into(),
            json!(*lock(&self.downloading)),
        );
        let mut meta = Map::new();
        if let Some(validated) = *lock(&self.validated) {
            meta.insert("firmware_validated".into(), json!(validated));
        }
        meta.insert(
            "firmware_auto_revert_detected".into(),
            json!(metadata.auto_revert_detected),
        );
        p.insert("meta".into(), Value::Object(meta));
        if self.request_fwup_keys {
            p.insert("fwup_public_keys".into(), json!("on_connect"));
        }
        if self.request_archive_keys {
            p.insert("archive_public_keys".into(), json!("on_connect"));
        }
        Value::Object(p)
    }

    pub fn set_extra(&self, key: &str, value: Value) {
        lock(&self.extra).insert(key.to_owned(), value);
    }

    pub fn set_metadata(&self, metadata: FirmwareMetadata) {
        *lock(&self.metadata) = metadata;
    }

    pub fn running_uuid(&self) -> Option<String> {
        lock(&self.metadata).uuid().map(str::to_owned)
    }

    pub fn validated(&self) -> Option<bool> {
        *lock(&self.validated)
    }

    pub fn set_validated(&self, validated: Option<bool>) {
        *lock(&self.validated) = validated;
    }

    pub fn set_downloading(&self, uuid: Option<String>) {
        *lock(&self.downloading) = uuid;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SocketConfig;

    #[test]
    fn protocol_keys_win_over_metadata_and_meta_is_complete() {
        let mut config = DeviceConfig::new(SocketConfig::new("ws://h/socket/websocket"));
        config.metadata = FirmwareMetadata::from_pairs([
            ("nerves_fw_uuid", "u1"),
            ("device_api_version", "9.9.9"),
        ]);
        config.fwup_version = Some("1.13.2".into());
        config.request_fwup_public_keys = true;
        let state = JoinState::new(&config, Some(false));
        let p = state.payload();
        assert_eq!(p["device_api_version"], "2.3.0");
        assert_eq!(p["nerves_fw_uuid"], "u1");
        assert_eq!(p["fwup_version"], "1.13.2");
        assert_eq!(p["update_tool"], "fwup");
        assert_eq!(p["currently_downloading_uuid"], Value::Null);
        assert_eq!(
            p["meta"],
            json!({"firmware_validated": false, "firmware_auto_revert_detected": false})
        );
        assert_eq!(p["fwup_public_keys"], "on_connect");
        assert!(p.get("archive_public_keys").is_none());

        let mut needs = DeviceConfig::new(SocketConfig::new("ws://h/socket/websocket"));
        needs.require_fwup_public_keys = true;
        assert_eq!(
            JoinState::new(&needs, None).payload()["fwup_public_keys"],
            "on_connect"
        );
        needs.fwup_public_keys = vec!["k".into()];
        assert!(JoinState::new(&needs, None)
            .payload()
            .get("fwup_public_keys")
            .is_none());

        state.set_validated(None);
        state.set_downloading(Some("u2".into()));
        let p = state.payload();
        assert!(p["meta"].get("firmware_validated").is_none());
        assert_eq!(p["currently_downloading_uuid"], "u2");
    }
}
