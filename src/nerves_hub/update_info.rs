//! The `update` event's payload (protocol §2.3), parsed and checked before
//! anything is downloaded.
//!
//! Checksums are normalised to uppercase hex so they compare equal to the
//! digests we compute, and validated now so that a malformed value is a
//! protocol error at receipt instead of a checksum failure after a long
//! download.

use std::fmt;

use serde_json::Value;

use crate::config::redact_query;
use crate::error::{Error, Result};

/// `firmware_meta` of an update: strings or null, except the mandatory uuid.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FirmwareMeta {
    pub uuid: String,
    pub product: Option<String>,
    pub version: Option<String>,
    pub architecture: Option<String>,
    pub platform: Option<String>,
    pub author: Option<String>,
    pub description: Option<String>,
    pub vcs_identifier: Option<String>,
    pub misc: Option<String>,
}

/// A parsed `update` push. When `update_available` is false the other fields
/// may be empty: there is nothing to do.
#[derive(Clone, PartialEq)]
pub struct UpdateInfo {
    pub update_available: bool,
    /// May be a signed URL: its query string is a credential, never log it.
    pub firmware_url: String,
    pub firmware_meta: FirmwareMeta,
    /// Bytes of the file at `firmware_url` (a delta archive's size for deltas).
    pub size: Option<u64>,
    /// Uppercase hex SHA-256 of the whole file.
    pub checksum: Option<String>,
    /// Uppercase hex SHA-256 of each consecutive 1 MiB chunk (may be empty).
    pub partials_checksums: Vec<String>,
    /// `None` for manual pushes.
    pub deployment_id: Option<i64>,
    /// The payload as received, for fields this version does not know.
    pub raw: Value,
}

// Hand-written so that logging an update never prints a signed URL's query.
impl fmt::Debug for UpdateInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UpdateInfo")
            .field("update_available", &self.update_available)
            .field("firmware_url", &redact_query(&self.firmware_url))
            .field("firmware_meta", &self.firmware_meta)
            .field("size", &self.size)
            .field("checksum", &self.checksum)
            .field("partials_checksums", &self.partials_checksums.len())
            .field("deployment_id", &self.deployment_id)
            .finish_non_exhaustive()
    }
}

fn bad(message: impl fmt::Display) -> Error {
    Error::Protocol(format!("bad update payload: {message}"))
}

/// A field that must be a string or null/absent.
fn opt_string(obj: &serde_json::Map<String, Value>, key: &str) -> Result<Option<String>> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(other) => Err(bad(format!("{key} must be a string or null, got {other}"))),
    }
}

/// Uppercase hex SHA-256, or an error naming the field.
fn hex_checksum(field: &str, value: &str) -> Result<String> {
    let value = value.trim();
    if value.len() == 64 && value.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(value.to_ascii_uppercase())
    } else {
        Err(bad(format!(
            "{field} must be 64 hex digits (SHA-256), got {} characters",
            value.len()
        )))
    }
}

fn firmware_meta(value: Option<&Value>, required: bool) -> Result<FirmwareMeta> {
    let obj = match value {
        Some(Value::Object(obj)) => obj,
        None | Some(Value::Null) if !required => return Ok(FirmwareMeta::default()),
        None | Some(Value::Null) => return Err(bad("firmware_meta is missing")),
        Some(other) => return Err(bad(format!("firmware_meta must be an object, got {other}"))),
    };
    let uuid = opt_string(obj, "uuid")?.unwrap_or_default();
    if required && uuid.trim().is_empty() {
        return Err(bad("firmware_meta.uuid is missing"));
    }
    Ok(FirmwareMeta {
        uuid,
        product: opt_string(obj, "product")?,
        version: opt_string(obj, "version")?,
        architecture: opt_string(obj, "architecture")?,
        platform: opt_string(obj, "platform")?,
        author: opt_string(obj, "author")?,
        description: opt_string(obj, "description")?,
        vcs_identifier: opt_string(obj, "vcs_identifier")?,
        misc: opt_string(obj, "misc")?,
    })
}

impl UpdateInfo {
    /// Parses an `update` payload. With `update_available: true` a
    /// `firmware_url` and `firmware_meta.uuid` are required; nulls are
    /// accepted wherever NervesHub may send them.
    pub fn parse(payload: &Value) -> Result<UpdateInfo> {
        let obj = payload
            .as_object()
            .ok_or_else(|| bad(format!("expected a JSON object, got {payload}")))?;
        let update_available = match obj.get("update_available") {
            Some(Value::Bool(b)) => *b,
            None | Some(Value::Null) => false,
            Some(other) => {
                return Err(bad(format!(
                    "update_available must be a boolean, got {other}"
                )))
            }
        };
        let firmware_url = opt_string(obj, "firmware_url")?.unwrap_or_default();
        if update_available {
            if firmware_url.trim().is_empty() {
                return Err(bad("firmware_url is missing"));
            }
            let parsed = url::Url::parse(&firmware_url).map_err(|e| {
                bad(format!(
                    "firmware_url {:?}: {e}",
                    redact_query(&firmware_url)
                ))
            })?;
            if !matches!(parsed.scheme(), "http" | "https") {
                return Err(bad(format!(
                    "firmware_url must be http or https, got {:?}",
                    parsed.scheme()
                )));
            }
        }
        let firmware_meta = firmware_meta(obj.get("firmware_meta"), update_available)?;
        let size = match obj.get("size") {
            None | Some(Value::Null) => None,
            Some(v) => Some(
                v.as_u64()
                    .ok_or_else(|| bad(format!("size must be a non-negative integer, got {v}")))?,
            ),
        };
        let checksum = opt_string(obj, "checksum")?
            .filter(|s| !s.trim().is_empty())
            .map(|s| hex_checksum("checksum", &s))
            .transpose()?;
        let partials_checksums = match obj.get("partials_checksums") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, item)| match item {
                    Value::String(s) => hex_checksum(&format!("partials_checksums[{i}]"), s),
                    other => Err(bad(format!(
                        "partials_checksums[{i}] must be a string, got {other}"
                    ))),
                })
                .collect::<Result<Vec<_>>>()?,
            Some(other) => {
                return Err(bad(format!(
                    "partials_checksums must be a list, got {other}"
                )))
            }
        };
        let deployment_id = match obj.get("deployment_id") {
            None | Some(Value::Null) => None,
            Some(v) => Some(
                v.as_i64()
                    .ok_or_else(|| bad(format!("deployment_id must be an integer, got {v}")))?,
            ),
        };
        Ok(UpdateInfo {
            update_available,
            firmware_url,
            firmware_meta,
            size,
            checksum,
            partials_checksums,
            deployment_id,
            raw: payload.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const SUM: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

    fn full() -> Value {
        json!({
            "update_available": true,
            "firmware_url": "https://s3.example.com/fw/abc.fw?X-Amz-Signature=secret&X-Amz-Expires=86400",
            "firmware_meta": {
                "uuid": "6c4a0b4e-0f1e-5b9c-8e4d-3f2a1b0c9d8e", "product": "thermostat",
                "version": "1.4.2", "architecture": "arm", "platform": "rpi0",
                "author": "ACME", "description": null, "vcs_identifier": null, "misc": null,
                "fwup_version": "1.13.0"
            },
            "size": 2_097_152,
            "checksum": SUM,
            "partials_checksums": [SUM, SUM.to_uppercase()],
            "deployment_id": 12
        })
    }

    #[test]
    fn parses_a_nerves_hub_update_and_normalises_checksums() {
        let info = UpdateInfo::parse(&full()).unwrap();
        assert!(info.update_available);
        assert_eq!(
            info.firmware_meta.uuid,
            "6c4a0b4e-0f1e-5b9c-8e4d-3f2a1b0c9d8e"
        );
        assert_eq!(info.firmware_meta.version.as_deref(), Some("1.4.2"));
        assert_eq!(info.firmware_meta.description, None);
        assert_eq!(info.size, Some(2_097_152));
        let upper = SUM.to_ascii_uppercase();
        assert_eq!(info.checksum.as_deref(), Some(upper.as_str()));
        assert_eq!(info.partials_checksums, vec![upper.clone(), upper]);
        assert_eq!(info.deployment_id, Some(12));
        assert_eq!(info.raw, full());
    }

    #[test]
    fn tolerates_nulls_for_manual_pushes() {
        let mut p = full();
        for key in ["size", "checksum", "partials_checksums", "deployment_id"] {
            p[key] = Value::Null;
        }
        let info = UpdateInfo::parse(&p).unwrap();
        assert_eq!(
            (
                info.size,
                info.checksum,
                info.partials_checksums.len(),
                info.deployment_id
            ),
            (None, None, 0, None)
        );
    }

    #[test]
    fn nothing_to_do_needs_no_url() {
        let info = UpdateInfo::parse(&json!({"update_available": false})).unwrap();
        assert!(!info.update_available);
        assert!(info.firmware_url.is_empty());
    }

    #[test]
    fn rejects_missing_or_malformed_fields() {
        let cases: Vec<(Value, &str)> = vec![
            (json!([1]), "expected a JSON object"),
            (json!({"update_available": "yes"}), "update_available"),
            (
                json!({"update_available": true, "firmware_meta": {"uuid": "u"}}),
                "firmware_url is missing",
            ),
            (
                json!({"update_available": true, "firmware_url": "https://h/f"}),
                "firmware_meta is missing",
            ),
            (
                json!({"update_available": true, "firmware_url": "https://h/f", "firmware_meta": {}}),
                "uuid is missing",
            ),
            (
                json!({"update_available": true, "firmware_url": "ftp://h/f", "firmware_meta": {"uuid": "u"}}),
                "http or https",
            ),
            (
                json!({"update_available": true, "firmware_url": "not a url?sig=1", "firmware_meta": {"uuid": "u"}}),
                "firmware_url",
            ),
        ];
        for (payload, expected) in cases {
            let err = UpdateInfo::parse(&payload).unwrap_err();
            assert!(matches!(err, Error::Protocol(_)), "{err:?}");
            assert!(
                err.to_string().contains(expected),
                "{err} should mention {expected}"
            );
        }
        let mut p = full();
        p["checksum"] = json!("abc");
        assert!(UpdateInfo::parse(&p)
            .unwrap_err()
            .to_string()
            .contains("checksum must be 64 hex"));
        let mut p = full();
        p["partials_checksums"] = json!([SUM, "zz"]);
        assert!(UpdateInfo::parse(&p)
            .unwrap_err()
            .to_string()
            .contains("partials_checksums[1]"));
        let mut p = full();
        p["size"] = json!(-1);
        assert!(UpdateInfo::parse(&p)
            .unwrap_err()
            .to_string()
            .contains("size"));
        let mut p = full();
        p["firmware_meta"]["version"] = json!(3);
        assert!(UpdateInfo::parse(&p)
            .unwrap_err()
            .to_string()
            .contains("version"));
    }

    #[test]
    fn error_messages_and_debug_never_show_the_signed_query() {
        let info = UpdateInfo::parse(&full()).unwrap();
        let shown = format!("{info:?}");
        assert!(
            shown.contains("https://s3.example.com/fw/abc.fw?<redacted>"),
            "{shown}"
        );
        assert!(!shown.contains("secret"), "{shown}");
        let err = UpdateInfo::parse(&json!({
            "update_available": true, "firmware_url": "https://[bad?sig=secret", "firmware_meta": {"uuid": "u"}
        }))
        .unwrap_err();
        assert!(!err.to_string().contains("secret"), "{err}");
    }
}
