//! RFC 7512 `pkcs11:` URIs: which token and which private key to use.
//!
//! Path attributes understood: `token`, `manufacturer`, `serial`, `model`,
//! `slot-id` (token selection) and `object`, `id`, `type` (key selection;
//! `type` must be `private` when given). Query attributes: `pin-value`,
//! `pin-source` (a file path or `file:` URI) and `module-path`. Anything
//! else is refused rather than ignored, so a typo cannot select another key.

use std::fmt;

use crate::error::{Error, Result};

#[derive(Clone, Default, PartialEq, Eq)]
pub struct Pkcs11Uri {
    pub token: Option<String>,
    pub manufacturer: Option<String>,
    pub serial: Option<String>,
    pub model: Option<String>,
    pub slot_id: Option<u64>,
    pub object: Option<String>,
    pub id: Option<Vec<u8>>,
    pub pin_value: Option<String>,
    pub pin_source: Option<String>,
    pub module_path: Option<String>,
}

// The PIN may be in the URI; never print it.
impl fmt::Debug for Pkcs11Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pkcs11Uri")
            .field("token", &self.token)
            .field("serial", &self.serial)
            .field("slot_id", &self.slot_id)
            .field("object", &self.object)
            .field("id", &self.id.as_ref().map(|id| hex(id)))
            .field("pin_value", &self.pin_value.as_ref().map(|_| "<hidden>"))
            .field("module_path", &self.module_path)
            .finish_non_exhaustive()
    }
}

/// The URI with the value of any `pin-value` attribute hidden, for Debug output.
pub(crate) fn redacted(uri: &str) -> String {
    let Some((path, query)) = uri.split_once('?') else {
        return uri.to_owned();
    };
    let query: Vec<&str> = query
        .split('&')
        .map(|attr| {
            if attr.starts_with("pin-value=") {
                "pin-value=<hidden>"
            } else {
                attr
            }
        })
        .collect();
    format!("{path}?{}", query.join("&"))
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Pkcs11Uri {
    pub fn parse(text: &str) -> Result<Pkcs11Uri> {
        let bad = |why: String| {
            // Messages quote attribute names, never values (the PIN may be one).
            Error::InvalidArgument(format!("invalid PKCS#11 URI: {why}"))
        };
        let rest = text
            .strip_prefix("pkcs11:")
            .ok_or_else(|| bad("it must start with \"pkcs11:\"".into()))?;
        let (path, query) = match rest.split_once('?') {
            Some((p, q)) => (p, Some(q)),
            None => (rest, None),
        };
        let mut uri = Pkcs11Uri::default();
        for attr in path.split(';').filter(|a| !a.is_empty()) {
            let (name, value) = attr
                .split_once('=')
                .ok_or_else(|| bad(format!("path attribute {attr:?} has no '='")))?;
            let value =
                percent_decode(value).map_err(|why| bad(format!("attribute {name:?}: {why}")))?;
            let text = || {
                String::from_utf8(value.clone())
                    .map_err(|_| bad(format!("attribute {name:?} is not UTF-8")))
            };
            let slot = match name {
                "token" => &mut uri.token,
                "manufacturer" => &mut uri.manufacturer,
                "serial" => &mut uri.serial,
                "model" => &mut uri.model,
                "object" => &mut uri.object,
                "id" => {
                    set_once(&mut uri.id, value.clone(), name).map_err(bad)?;
                    continue;
                }
                "slot-id" => {
                    let n = text()?.parse::<u64>().map_err(|_| {
                        bad("attribute \"slot-id\" must be a decimal number".into())
                    })?;
                    set_once(&mut uri.slot_id, n, name).map_err(bad)?;
                    continue;
                }
                "type" => {
                    if text()? != "private" {
                        return Err(bad(
                            "attribute \"type\" must be \"private\" (the key used to sign)".into(),
                        ));
                    }
                    continue;
                }
                other => {
                    return Err(bad(format!(
                        "unsupported path attribute {other:?} (supported: token, manufacturer, serial, model, slot-id, object, id, type)"
                    )))
                }
            };
            let value = text()?;
            set_once(slot, value, name).map_err(bad)?;
        }
        for attr in query.unwrap_or("").split('&').filter(|a| !a.is_empty()) {
            let (name, value) = attr.split_once('=').ok_or_else(|| {
                bad(format!(
                    "query attribute {:?} has no '='",
                    attr.split('=').next().unwrap_or("")
                ))
            })?;
            let value = percent_decode(value)
                .ok()
                .and_then(|v| String::from_utf8(v).ok())
                .ok_or_else(|| {
                    bad(format!(
                        "query attribute {name:?} is not valid percent-encoded UTF-8"
                    ))
                })?;
            let slot = match name {
                "pin-value" => &mut uri.pin_value,
                "pin-source" => &mut uri.pin_source,
                "module-path" => &mut uri.module_path,
                other => {
                    return Err(bad(format!(
                        "unsupported query attribute {other:?} (supported: pin-value, pin-source, module-path)"
                    )))
                }
            };
            set_once(slot, value, name).map_err(bad)?;
        }
        if uri.object.is_none() && uri.id.is_none() {
            return Err(bad(
                "it names no key: give \"object\" (the key's label) or \"id\"".into(),
            ));
        }
        Ok(uri)
    }
}

fn set_once<T>(slot: &mut Option<T>, value: T, name: &str) -> std::result::Result<(), String> {
    if slot.is_some() {
        return Err(format!("attribute {name:?} is given twice"));
    }
    *slot = Some(value);
    Ok(())
}

fn percent_decode(text: &str) -> std::result::Result<Vec<u8>, String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let pair = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| "bad percent escape".to_owned())?;
            out.push(pair);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_token_key_and_query() {
        let uri = Pkcs11Uri::parse(
            "pkcs11:token=nerves%20hub;object=device;id=%01%A0;type=private?pin-source=/run/pin&module-path=/usr/lib/softhsm/libsofthsm2.so",
        )
        .unwrap();
        assert_eq!(uri.token.as_deref(), Some("nerves hub"));
        assert_eq!(uri.object.as_deref(), Some("device"));
        assert_eq!(uri.id.as_deref(), Some(&[0x01, 0xa0][..]));
        assert_eq!(uri.pin_source.as_deref(), Some("/run/pin"));
        assert_eq!(
            uri.module_path.as_deref(),
            Some("/usr/lib/softhsm/libsofthsm2.so")
        );
    }

    #[test]
    fn refuses_what_it_cannot_honour_without_quoting_values() {
        let cases = [
            ("token=a;object=b", "must start with \"pkcs11:\""),
            ("pkcs11:token=a", "names no key"),
            (
                "pkcs11:object=a;colour=red",
                "unsupported path attribute \"colour\"",
            ),
            ("pkcs11:object=a;type=cert", "must be \"private\""),
            ("pkcs11:object=a;object=b", "\"object\" is given twice"),
            ("pkcs11:object=a%zz", "bad percent escape"),
            (
                "pkcs11:object=a?pin-value=1234&pin=5678",
                "unsupported query attribute \"pin\"",
            ),
        ];
        for (text, expected) in cases {
            let message = Pkcs11Uri::parse(text).unwrap_err().to_string();
            assert!(message.contains(expected), "{text}: {message}");
            assert!(
                !message.contains("1234") && !message.contains("5678"),
                "{message}"
            );
        }
    }

    #[test]
    fn debug_hides_the_pin() {
        let uri = Pkcs11Uri::parse("pkcs11:object=k?pin-value=s3cret").unwrap();
        assert!(!format!("{uri:?}").contains("s3cret"));
        assert_eq!(
            redacted("pkcs11:object=k?module-path=/m.so&pin-value=s3cret"),
            "pkcs11:object=k?module-path=/m.so&pin-value=<hidden>"
        );
    }
}
