//! NH1 shared-secret verification with NervesHub's semantics (protocol notes
//! §1.5/§1.6; `web:lib/nerves_hub/device_link/authentication.ex` and
//! Plug.Crypto `verify/4`), written independently of the client's signing
//! code so that each checks the other.
//!
//! Every failure is a plain 401 with an empty body on the wire; the reason
//! only goes to the log (never the key or the secret).

use std::collections::HashMap;
use std::fmt;
use std::num::NonZeroU32;
use std::sync::{Mutex, PoisonError};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::{hmac, pbkdf2};
use tokio_tungstenite::tungstenite::http::HeaderMap;

mod etf;
#[cfg(test)]
mod tests;

use etf::Term;

/// NervesHub's default `max_age` for NH1 signatures; it overrides the one in the token.
pub(crate) const MAX_AGE_MS: i64 = 90_000;
/// Bounds on what a client may make the server compute per handshake.
const MAX_ITERATIONS: i64 = 1_000_000;
const MAX_KEY_LENGTH: i64 = 1024;
const SALT_PREFIX: &str = "NH1:device-socket:shared-secret:connect\n\n";

/// A shared secret the server accepts. A product key (`nhp_...`) takes any
/// identifier (NervesHub registers the device just in time) and must have
/// no `identifier` here; any other key is a device key and needs the
/// identifier of its device. `Debug` hides the key and the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct SharedSecretEntry {
    pub key: String,
    pub secret: String,
    pub identifier: Option<String>,
}

impl fmt::Debug for SharedSecretEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = if is_product_key(&self.key) {
            "product"
        } else {
            "device"
        };
        f.debug_struct("SharedSecretEntry")
            .field("kind", &kind)
            .field("identifier", &self.identifier)
            .finish_non_exhaustive()
    }
}

impl SharedSecretEntry {
    pub fn new(
        key: impl Into<String>,
        secret: impl Into<String>,
        identifier: Option<String>,
    ) -> SharedSecretEntry {
        SharedSecretEntry {
            key: key.into(),
            secret: secret.into(),
            identifier,
        }
    }

    /// Parses the `--shared-secret KEY:SECRET[:IDENTIFIER]` form. Errors never echo the value.
    pub fn parse_cli(value: &str) -> Result<SharedSecretEntry, String> {
        let mut parts = value.splitn(3, ':');
        match (parts.next(), parts.next(), parts.next()) {
            (Some(key), Some(secret), identifier) => {
                let entry = SharedSecretEntry::new(key, secret, identifier.map(str::to_owned));
                entry.validate()?;
                Ok(entry)
            }
            _ => Err("--shared-secret takes KEY:SECRET or KEY:SECRET:IDENTIFIER".into()),
        }
    }

    pub fn validate(&self) -> Result<(), String> {
        if self.key.is_empty() || !self.key.bytes().all(|b| b.is_ascii_graphic()) {
            return Err("a shared key must be non-empty printable ASCII without spaces".into());
        }
        if self.secret.is_empty() {
            return Err("a shared secret must not be empty".into());
        }
        match (is_product_key(&self.key), &self.identifier) {
            (true, Some(_)) => {
                Err("a product key (nhp_...) accepts any identifier; give it no identifier".into())
            }
            (false, None) => Err(
                "a device key (any key not starting with nhp_) needs its device's identifier"
                    .into(),
            ),
            (false, Some(id)) if id.is_empty() => Err("the device identifier is empty".into()),
            _ => Ok(()),
        }
    }
}

fn is_product_key(key: &str) -> bool {
    key.starts_with("nhp_")
}

/// Why a signature was refused (for the log only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    MissingHeader(&'static str),
    BadAlg,
    UnknownKey,
    BadToken,
    BadSignature,
    BadPayload,
    Expired,
    FromTheFuture,
    BadIdentifier,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::MissingHeader(name) => write!(f, "missing or unreadable {name} header"),
            Refusal::BadAlg => f.write_str("x-nh-alg is not NH1-HMAC-<sha256|sha384|sha512>-<iterations>-<key length> within limits"),
            Refusal::UnknownKey => f.write_str("unknown shared key"),
            Refusal::BadToken => f.write_str("x-nh-signature is not a Plug.Crypto token"),
            Refusal::BadSignature => f.write_str("signature does not match the secret"),
            Refusal::BadPayload => f.write_str("token payload is not {identifier, signed_at, max_age}"),
            Refusal::Expired => f.write_str("signature expired (older than 90 s by the server's clock)"),
            Refusal::FromTheFuture => f.write_str("signature made in the server's future (device clock ahead)"),
            Refusal::BadIdentifier => f.write_str("identifier does not match the device key"),
        }
    }
}

/// The shared secrets the server accepts, changeable at runtime.
#[derive(Default)]
pub(crate) struct Nh1Store {
    /// key -> entry
    secrets: Mutex<HashMap<String, SharedSecretEntry>>,
}

impl Nh1Store {
    pub fn new(entries: &[SharedSecretEntry]) -> Result<Nh1Store, String> {
        let store = Nh1Store::default();
        for entry in entries {
            store.add(entry.clone())?;
        }
        Ok(store)
    }

    /// Adds (or replaces, for a known key) a shared secret.
    pub fn add(&self, entry: SharedSecretEntry) -> Result<(), String> {
        entry.validate()?;
        let mut secrets = self.secrets.lock().unwrap_or_else(PoisonError::into_inner);
        secrets.insert(entry.key.clone(), entry);
        Ok(())
    }

    fn lookup(&self, key: &str) -> Option<SharedSecretEntry> {
        let secrets = self.secrets.lock().unwrap_or_else(PoisonError::into_inner);
        secrets.get(key).cloned()
    }

    /// The device identifier, if the `x-nh-*` headers carry a signature
    /// valid at `now_ms` (server clock).
    pub fn verify(&self, headers: &HeaderMap, now_ms: i64) -> Result<String, Refusal> {
        let alg_header = last(headers, "x-nh-alg").ok_or(Refusal::MissingHeader("x-nh-alg"))?;
        let alg = Alg::parse(alg_header)?;
        let signed_at = last(headers, "x-nh-time")
            .and_then(elixir_integer)
            .ok_or(Refusal::MissingHeader("x-nh-time"))?;
        let key = last(headers, "x-nh-key").ok_or(Refusal::MissingHeader("x-nh-key"))?;
        let entry = self.lookup(key).ok_or(Refusal::UnknownKey)?;
        let token =
            last(headers, "x-nh-signature").ok_or(Refusal::MissingHeader("x-nh-signature"))?;
        // The salt has the alg header verbatim but the time as the integer read from it.
        let salt =
            format!("{SALT_PREFIX}x-nh-alg={alg_header}\nx-nh-key={key}\nx-nh-time={signed_at}\n");
        let mut derived = vec![0u8; alg.key_length];
        pbkdf2::derive(
            alg.digest,
            alg.iterations,
            salt.as_bytes(),
            entry.secret.as_bytes(),
            &mut derived,
        );
        let message = verify_token(token, &derived)?;
        let (identifier, signed_ms) = decode_payload(&message)?;
        if signed_ms > i128::from(now_ms) {
            return Err(Refusal::FromTheFuture);
        }
        if signed_ms + i128::from(MAX_AGE_MS) < i128::from(now_ms) {
            return Err(Refusal::Expired);
        }
        match &entry.identifier {
            Some(registered) if *registered != identifier => Err(Refusal::BadIdentifier),
            // NervesHub cannot register a device without an identifier.
            None if identifier.is_empty() => Err(Refusal::BadIdentifier),
            _ => Ok(identifier),
        }
    }
}

/// Phoenix collects headers into a map, so a repeated header's last value counts.
fn last<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get_all(name).iter().next_back()?.to_str().ok()
}

/// Elixir's `Integer.parse/1` with nothing left over: optional sign, decimal digits.
fn elixir_integer(text: &str) -> Option<i64> {
    let digits = text.strip_prefix(['+', '-']).unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

struct Alg {
    digest: pbkdf2::Algorithm,
    iterations: NonZeroU32,
    key_length: usize,
}

impl Alg {
    /// `NH1-HMAC-<digest>-<iterations>-<key length>`, the digest in any case.
    fn parse(header: &str) -> Result<Alg, Refusal> {
        let rest = header.strip_prefix("NH1-HMAC-").ok_or(Refusal::BadAlg)?;
        let parts: Vec<&str> = rest.split('-').collect();
        let [digest, iterations, key_length] = parts[..] else {
            return Err(Refusal::BadAlg);
        };
        let digest = match digest.to_ascii_lowercase().as_str() {
            "sha256" => pbkdf2::PBKDF2_HMAC_SHA256,
            "sha384" => pbkdf2::PBKDF2_HMAC_SHA384,
            "sha512" => pbkdf2::PBKDF2_HMAC_SHA512,
            _ => return Err(Refusal::BadAlg),
        };
        let in_range =
            |text: &str, max: i64| elixir_integer(text).filter(|n| (1..=max).contains(n));
        let iterations = in_range(iterations, MAX_ITERATIONS)
            .and_then(|n| u32::try_from(n).ok())
            .and_then(NonZeroU32::new)
            .ok_or(Refusal::BadAlg)?;
        let key_length = in_range(key_length, MAX_KEY_LENGTH).ok_or(Refusal::BadAlg)? as usize;
        Ok(Alg {
            digest,
            iterations,
            key_length,
        })
    }
}

/// Plug.Crypto.MessageVerifier: `protected.payload.mac`, all base64url
/// without padding, `protected` one of HS256/HS384/HS512.
fn verify_token(token: &str, key: &[u8]) -> Result<Vec<u8>, Refusal> {
    let mut parts = token.splitn(3, '.');
    let (Some(protected_b64), Some(payload_b64), Some(mac_b64)) =
        (parts.next(), parts.next(), parts.next())
    else {
        return Err(Refusal::BadToken);
    };
    let decode = |part: &str| URL_SAFE_NO_PAD.decode(part).map_err(|_| Refusal::BadToken);
    let algorithm = match decode(protected_b64)?.as_slice() {
        b"HS256" => hmac::HMAC_SHA256,
        b"HS384" => hmac::HMAC_SHA384,
        b"HS512" => hmac::HMAC_SHA512,
        _ => return Err(Refusal::BadToken),
    };
    let payload = decode(payload_b64)?;
    let mac = decode(mac_b64)?;
    let plain_text = format!("{protected_b64}.{payload_b64}");
    hmac::verify(&hmac::Key::new(algorithm, key), plain_text.as_bytes(), &mac)
        .map_err(|_| Refusal::BadSignature)?;
    Ok(payload)
}

/// `{data, signed, max_age}`, the legacy `{data, signed}`, or
/// `%{data: data, signed: signed}`; `data` must be a UTF-8 binary.
fn decode_payload(bytes: &[u8]) -> Result<(String, i128), Refusal> {
    let term = etf::decode(bytes).ok_or(Refusal::BadPayload)?;
    let (data, signed) = match term {
        Term::Tuple(items) if items.len() == 2 || items.len() == 3 => {
            let mut items = items.into_iter();
            match (items.next(), items.next()) {
                (Some(data), Some(signed)) => (data, signed),
                _ => return Err(Refusal::BadPayload),
            }
        }
        Term::Map(pairs) => {
            let field = |name: &str| {
                pairs
                    .iter()
                    .find(|(k, _)| matches!(k, Term::Atom(a) if a == name))
                    .map(|(_, v)| v.clone())
            };
            match (field("data"), field("signed")) {
                (Some(data), Some(signed)) => (data, signed),
                _ => return Err(Refusal::BadPayload),
            }
        }
        _ => return Err(Refusal::BadPayload),
    };
    match (data, signed) {
        (Term::Binary(id), Term::Int(signed)) => {
            let id = String::from_utf8(id).map_err(|_| Refusal::BadPayload)?;
            Ok((id, signed))
        }
        _ => Err(Refusal::BadPayload),
    }
}
