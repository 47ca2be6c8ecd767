//! NH1 shared-secret authentication: the `x-nh-*` headers NervesHub accepts
//! instead of a client certificate (protocol notes §1.5).
//!
//! The signature is a Plug.Crypto token: PBKDF2 derives a key from the
//! secret and a salt naming the other headers, and that key HMACs an Erlang
//! term `{identifier, signed_at_ms, 86400}`. The server accepts it for 90 s
//! and refuses one signed in its future, so the device clock matters; see
//! [`Nh1Auth`] for the recovery from a wrong clock.

use std::fmt;
use std::num::NonZeroU32;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::{hmac, pbkdf2};

use crate::error::{Error, Result};

mod auth;
mod date;
mod etf;
#[cfg(test)]
mod tests;

pub use auth::{offset_clock, Clock, Nh1Auth};
pub use date::parse_http_date;

/// The salt's first lines; the header lines follow.
const SALT_PREFIX: &str = "NH1:device-socket:shared-secret:connect\n\n";
/// base64url("HS256"): the token's MAC is HMAC-SHA256 whatever the PBKDF2 digest.
const PROTECTED_HS256: &str = "SFMyNTY";
/// Plug.Crypto's default token lifetime; the server overrides it with 90 s.
const TOKEN_MAX_AGE_SECS: i64 = 86_400;
/// Bounds a misconfiguration (a key length near u32::MAX) to a sane allocation.
pub const MAX_KEY_LENGTH: u32 = 1024;

pub const HEADER_ALG: &str = "x-nh-alg";
pub const HEADER_KEY: &str = "x-nh-key";
pub const HEADER_TIME: &str = "x-nh-time";
pub const HEADER_SIGNATURE: &str = "x-nh-signature";

/// The PBKDF2 digest named in `x-nh-alg`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Nh1Digest {
    #[default]
    Sha256,
    Sha384,
    Sha512,
}

impl Nh1Digest {
    /// The lowercase name used in `x-nh-alg`, as nerves_hub_link writes it.
    pub fn name(self) -> &'static str {
        match self {
            Nh1Digest::Sha256 => "sha256",
            Nh1Digest::Sha384 => "sha384",
            Nh1Digest::Sha512 => "sha512",
        }
    }

    /// Case-insensitive, like the server (`sha256`, `SHA256`...).
    pub fn parse(name: &str) -> Option<Nh1Digest> {
        match name.to_ascii_lowercase().as_str() {
            "sha256" => Some(Nh1Digest::Sha256),
            "sha384" => Some(Nh1Digest::Sha384),
            "sha512" => Some(Nh1Digest::Sha512),
            _ => None,
        }
    }

    fn pbkdf2(self) -> pbkdf2::Algorithm {
        match self {
            Nh1Digest::Sha256 => pbkdf2::PBKDF2_HMAC_SHA256,
            Nh1Digest::Sha384 => pbkdf2::PBKDF2_HMAC_SHA384,
            Nh1Digest::Sha512 => pbkdf2::PBKDF2_HMAC_SHA512,
        }
    }
}

/// A NervesHub shared secret: a product key (`nhp_...`, the device is
/// registered just in time under `identifier`) or a device key (`nhd_...`,
/// `identifier` must be that device's).
///
/// `Debug` never shows the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct SharedSecret {
    pub key: String,
    /// Used as given (the UTF-8 bytes of the string), not base64-decoded.
    pub secret: String,
    /// The device identifier (nerves_hub_link uses the serial number).
    pub identifier: String,
    pub digest: Nh1Digest,
    pub iterations: u32,
    pub key_length: u32,
}

impl fmt::Debug for SharedSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedSecret")
            .field("key", &self.key)
            .field("secret", &"<redacted>")
            .field("identifier", &self.identifier)
            .field("digest", &self.digest)
            .field("iterations", &self.iterations)
            .field("key_length", &self.key_length)
            .finish()
    }
}

impl SharedSecret {
    /// SHA-256, 1000 iterations, 32-byte key: nerves_hub_link's defaults.
    pub fn new(
        key: impl Into<String>,
        secret: impl Into<String>,
        identifier: impl Into<String>,
    ) -> SharedSecret {
        SharedSecret {
            key: key.into(),
            secret: secret.into(),
            identifier: identifier.into(),
            digest: Nh1Digest::Sha256,
            iterations: 1000,
            key_length: 32,
        }
    }

    /// A product key: any identifier is accepted and registered on first use.
    pub fn is_product_key(&self) -> bool {
        self.key.starts_with("nhp_")
    }

    /// The `x-nh-alg` value, e.g. `NH1-HMAC-sha256-1000-32`.
    ///
    /// The digest is written in lowercase, as nerves_hub_link (the reference
    /// client every NervesHub release is used with) writes it. The server
    /// lower-cases the digest before looking it up and puts the header into
    /// the salt verbatim, so `NH1-HMAC-SHA256-1000-32` (the Rust agent's
    /// spelling, and the server-verified vector of §1.5) verifies as well;
    /// both are covered by the tests. Lowercase is the spelling a server
    /// could never have failed to accept, whatever its version.
    pub fn alg(&self) -> String {
        format!(
            "NH1-HMAC-{}-{}-{}",
            self.digest.name(),
            self.iterations,
            self.key_length
        )
    }

    /// Checks what can be checked locally, with messages that never show the secret.
    pub fn validate(&self) -> Result<()> {
        if self.key.is_empty() {
            return Err(Error::InvalidArgument(
                "NH1: the shared key is empty".into(),
            ));
        }
        if !self.key.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(Error::InvalidArgument(
                "NH1: the shared key must be printable ASCII without spaces".into(),
            ));
        }
        if self.secret.is_empty() {
            return Err(Error::InvalidArgument(
                "NH1: the shared secret is empty".into(),
            ));
        }
        if self.identifier.is_empty() {
            return Err(Error::InvalidArgument(
                "NH1: the device identifier is empty".into(),
            ));
        }
        if self.iterations == 0 {
            return Err(Error::InvalidArgument(
                "NH1: iterations must be at least 1".into(),
            ));
        }
        if self.key_length == 0 || self.key_length > MAX_KEY_LENGTH {
            return Err(Error::InvalidArgument(format!(
                "NH1: key_length must be between 1 and {MAX_KEY_LENGTH}, got {}",
                self.key_length
            )));
        }
        Ok(())
    }
}

/// The four NH1 headers for a connection attempt signed at `unix_secs`:
/// `x-nh-alg`, `x-nh-key`, `x-nh-time`, `x-nh-signature`.
pub fn sign_headers(secret: &SharedSecret, unix_secs: u64) -> Vec<(String, String)> {
    let alg = secret.alg();
    let signature = token(secret, &alg, unix_secs);
    vec![
        (HEADER_ALG.to_owned(), alg),
        (HEADER_KEY.to_owned(), secret.key.clone()),
        (HEADER_TIME.to_owned(), unix_secs.to_string()),
        (HEADER_SIGNATURE.to_owned(), signature),
    ]
}

/// The `x-nh-signature` token for the `x-nh-alg` value `alg` (written into
/// the salt verbatim; its digest, iterations and key length are taken from
/// `secret`).
pub fn token(secret: &SharedSecret, alg: &str, unix_secs: u64) -> String {
    let key = derive_key(secret, alg, unix_secs);
    let signed_at_ms = i64::try_from(unix_secs)
        .unwrap_or(i64::MAX)
        .saturating_mul(1000);
    let payload = payload(&secret.identifier, signed_at_ms);
    let plain_text = format!("{PROTECTED_HS256}.{}", URL_SAFE_NO_PAD.encode(payload));
    let mac = hmac::sign(
        &hmac::Key::new(hmac::HMAC_SHA256, &key),
        plain_text.as_bytes(),
    );
    format!("{plain_text}.{}", URL_SAFE_NO_PAD.encode(mac.as_ref()))
}

fn salt(alg: &str, key: &str, unix_secs: u64) -> String {
    format!("{SALT_PREFIX}x-nh-alg={alg}\nx-nh-key={key}\nx-nh-time={unix_secs}\n")
}

fn derive_key(secret: &SharedSecret, alg: &str, unix_secs: u64) -> Vec<u8> {
    // validate() refuses these; clamping keeps a bad struct from panicking ring.
    let iterations = NonZeroU32::new(secret.iterations).unwrap_or(NonZeroU32::MIN);
    let length = secret.key_length.clamp(1, MAX_KEY_LENGTH) as usize;
    let mut key = vec![0u8; length];
    pbkdf2::derive(
        secret.digest.pbkdf2(),
        iterations,
        salt(alg, &secret.key, unix_secs).as_bytes(),
        secret.secret.as_bytes(),
        &mut key,
    );
    key
}

/// `:erlang.term_to_binary({identifier, signed_at_ms, 86400})`.
fn payload(identifier: &str, signed_at_ms: i64) -> Vec<u8> {
    let mut out = Vec::with_capacity(identifier.len() + 32);
    etf::version(&mut out);
    etf::small_tuple(&mut out, 3);
    etf::binary(&mut out, identifier.as_bytes());
    etf::integer(&mut out, signed_at_ms);
    etf::integer(&mut out, TOKEN_MAX_AGE_SECS);
    out
}
