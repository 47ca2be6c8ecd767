//! The firmware signing keys a device knows: configured by the user, then
//! replaced by what the server sends in `fwup_public_keys`.
//!
//! Like nerves_hub_link (PR #464, "fail closed"), a device that requires
//! keys refuses an update while it knows none, and a key list the server
//! sends empty never clears the known keys. The keys are handed to `fwup`
//! sinks as `--public-key` arguments, which is what makes fwup check the
//! image's signature.

use std::sync::{Mutex, PoisonError};

use base64::engine::general_purpose::STANDARD;
use base64::Engine;

use super::sink::SinkSpec;
use crate::error::{Error, Result};

/// The `failed` reason of a refused update (nerves_hub_link's wording).
pub const REFUSED_NO_KEYS: &str = "Refusing unverified firmware : no public keys available";

/// Checks a user-supplied key: fwup public keys are base64 of 32 bytes (Ed25519).
pub fn validate_key(key: &str) -> Result<()> {
    match STANDARD.decode(key.trim()) {
        Ok(bytes) if bytes.len() == 32 => Ok(()),
        Ok(bytes) => Err(Error::InvalidArgument(format!(
            "a fwup public key is base64 of 32 bytes (fwup-key.pub), this one decodes to {} bytes",
            bytes.len()
        ))),
        Err(_) => Err(Error::InvalidArgument(
            "a fwup public key is base64 of 32 bytes (the content of fwup-key.pub), this one is not base64".into(),
        )),
    }
}

/// A key that can stand for a signature check: a non-blank string.
fn usable(key: &str) -> bool {
    !key.trim().is_empty()
}

/// The device's current keys.
#[derive(Debug, Default)]
pub(crate) struct FwupKeys {
    keys: Mutex<Vec<String>>,
}

impl FwupKeys {
    pub fn new(configured: &[String]) -> FwupKeys {
        FwupKeys {
            keys: Mutex::new(
                configured
                    .iter()
                    .map(|k| k.trim().to_owned())
                    .filter(|k| usable(k))
                    .collect(),
            ),
        }
    }

    pub fn get(&self) -> Vec<String> {
        self.keys
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub fn available(&self) -> bool {
        !self
            .keys
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_empty()
    }

    /// The server's list replaces the known keys, unless it holds no usable
    /// key (then the known keys stay). True if the keys were replaced.
    pub fn replace(&self, received: &[String]) -> bool {
        let keys: Vec<String> = received
            .iter()
            .map(|k| k.trim().to_owned())
            .filter(|k| usable(k))
            .collect();
        if keys.is_empty() {
            log::warn!(
                "the server sent no fwup public key; keeping the {} known",
                self.get().len()
            );
            return false;
        }
        log::info!("fwup public keys updated: {} key(s)", keys.len());
        *self.keys.lock().unwrap_or_else(PoisonError::into_inner) = keys;
        true
    }
}

/// `sink` with `--public-key K` appended for each key when it is a fwup
/// command whose arguments name no key yet; other sinks are unchanged.
pub(crate) fn with_keys(sink: SinkSpec, keys: &[String]) -> SinkSpec {
    match sink {
        SinkSpec::Fwup { command, mut args }
            if !keys.is_empty() && !args.iter().any(|a| a == "--public-key") =>
        {
            for key in keys {
                args.push("--public-key".into());
                args.push(key.clone());
            }
            SinkSpec::Fwup { command, args }
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";

    #[test]
    fn user_keys_are_validated() {
        assert!(validate_key(KEY).is_ok());
        assert!(validate_key("AAAA")
            .unwrap_err()
            .to_string()
            .contains("3 bytes"));
        assert!(validate_key("not base64!")
            .unwrap_err()
            .to_string()
            .contains("not base64"));
    }

    #[test]
    fn an_empty_server_list_never_clears_known_keys() {
        let keys = FwupKeys::new(&["  ".into()]);
        assert!(!keys.available(), "blank keys do not count");
        assert!(!keys.replace(&[]));
        assert!(keys.replace(&["k1".into(), "".into()]));
        assert_eq!(keys.get(), vec!["k1"]);
        assert!(!keys.replace(&["".into()]));
        assert_eq!(keys.get(), vec!["k1"]);
    }

    #[test]
    fn fwup_sinks_get_the_keys_unless_they_name_some() {
        let fwup = |args: &[&str]| SinkSpec::Fwup {
            command: "fwup".into(),
            args: args.iter().map(|s| s.to_string()).collect(),
        };
        let args = |s: SinkSpec| match s {
            SinkSpec::Fwup { args, .. } => args,
            _ => panic!("not fwup"),
        };
        let keys = vec!["k1".to_owned(), "k2".to_owned()];
        assert_eq!(
            args(with_keys(fwup(&["--apply"]), &keys)),
            ["--apply", "--public-key", "k1", "--public-key", "k2"]
        );
        assert_eq!(
            args(with_keys(fwup(&["--public-key", "mine"]), &keys)),
            ["--public-key", "mine"]
        );
        assert!(args(with_keys(fwup(&[]), &[])).is_empty());
        assert!(matches!(
            with_keys(SinkSpec::File("/x".into()), &keys),
            SinkSpec::File(_)
        ));
    }
}
