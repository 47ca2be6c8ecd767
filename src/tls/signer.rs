//! The seam between TLS client authentication and whatever holds the private
//! key. A [`KeySigner`] signs; the library never sees the key's bytes.
//!
//! Schemes offered to the server (first one the server also offers wins):
//! - EC P-256 keys: `ecdsa_secp256r1_sha256`.
//! - RSA keys: `rsa_pss_rsae_sha256`, then `rsa_pkcs1_sha256` (TLS 1.2 only;
//!   TLS 1.3 requires PSS for handshake signatures).

use std::fmt;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Duration;

use rustls::client::ResolvesClientCert;
use rustls::sign::{CertifiedKey, Signer, SigningKey};
use rustls::SignatureScheme;
use rustls_pki_types::CertificateDer;

use crate::error::{Error, Result};

/// The kind of key a signer holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyAlgorithm {
    /// ECDSA on NIST P-256 (ATECC608, most TPMs and HSMs).
    EcdsaP256,
    /// RSA, 2048 bits or more.
    Rsa,
}

/// What a signature is requested for. The numeric values are the C ABI's
/// `NHC_SIGN_*` constants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum SignatureAlgorithm {
    /// ECDSA P-256 over SHA-256. The signature is raw `r || s` (64 bytes),
    /// as secure elements and PKCS#11 `CKM_ECDSA` return it.
    EcdsaP256Sha256 = 1,
    /// RSASSA-PKCS1-v1_5 with SHA-256 (TLS 1.2 only).
    RsaPkcs1Sha256 = 2,
    /// RSASSA-PSS with SHA-256, MGF1-SHA-256, 32-byte salt.
    RsaPssSha256 = 3,
}

impl SignatureAlgorithm {
    fn tls_scheme(self) -> SignatureScheme {
        match self {
            SignatureAlgorithm::EcdsaP256Sha256 => SignatureScheme::ECDSA_NISTP256_SHA256,
            SignatureAlgorithm::RsaPkcs1Sha256 => SignatureScheme::RSA_PKCS1_SHA256,
            SignatureAlgorithm::RsaPssSha256 => SignatureScheme::RSA_PSS_SHA256,
        }
    }

    /// The name used in messages and documentation.
    pub fn name(self) -> &'static str {
        match self {
            SignatureAlgorithm::EcdsaP256Sha256 => "ecdsa_secp256r1_sha256",
            SignatureAlgorithm::RsaPkcs1Sha256 => "rsa_pkcs1_sha256",
            SignatureAlgorithm::RsaPssSha256 => "rsa_pss_rsae_sha256",
        }
    }
}

impl KeyAlgorithm {
    /// Schemes offered, in order of preference.
    fn schemes(self) -> &'static [SignatureAlgorithm] {
        match self {
            KeyAlgorithm::EcdsaP256 => &[SignatureAlgorithm::EcdsaP256Sha256],
            KeyAlgorithm::Rsa => &[
                SignatureAlgorithm::RsaPssSha256,
                SignatureAlgorithm::RsaPkcs1Sha256,
            ],
        }
    }
}

/// One signature to make.
#[derive(Debug)]
pub struct SignRequest<'a> {
    pub algorithm: SignatureAlgorithm,
    /// The bytes TLS signs (for signers that hash themselves).
    pub message: &'a [u8],
    /// SHA-256 of `message` (for signers that sign a digest, like ATECC608).
    pub digest: &'a [u8],
}

/// Something that holds a private key and signs with it: a PKCS#11 token, a
/// secure element behind an application callback, ...
///
/// `sign` may block (a secure element takes 50–200 ms); the library calls it
/// on a helper thread, never on an I/O thread. Errors are plain text and must
/// not contain secrets: they end up in the connection's TLS error.
pub trait KeySigner: Send + Sync {
    fn algorithm(&self) -> KeyAlgorithm;
    fn sign(&self, request: &SignRequest<'_>) -> std::result::Result<Vec<u8>, String>;
    /// Names the key for messages ("PKCS#11 key 'device' on token 'nerves'").
    fn describe(&self) -> String;
    /// Whether configuring a socket signs a probe to check the key against
    /// the certificate. Tokens say yes (a wrong key is then a configuration
    /// error); application callbacks say no, so they are first called by a
    /// handshake, on a helper thread, never from the configuring call.
    fn probe_at_configuration(&self) -> bool {
        false
    }
}

/// A configured external key: the signer plus how long one signature may take.
#[derive(Clone)]
pub struct ExternalKey {
    pub signer: Arc<dyn KeySigner>,
    /// A signature that takes longer fails that connection attempt.
    pub timeout: Duration,
}

impl ExternalKey {
    /// Default bound on one signature: generous for slow secure elements,
    /// short enough that a wedged one shows up as an error.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

    pub fn new(signer: Arc<dyn KeySigner>) -> ExternalKey {
        ExternalKey {
            signer,
            timeout: ExternalKey::DEFAULT_TIMEOUT,
        }
    }
}

impl fmt::Debug for ExternalKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExternalKey")
            .field("signer", &self.signer.describe())
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// Runs one signature and converts the result into what TLS puts on the wire.
fn sign_for_tls(
    signer: &dyn KeySigner,
    algorithm: SignatureAlgorithm,
    message: &[u8],
) -> std::result::Result<Vec<u8>, String> {
    let digest = ring::digest::digest(&ring::digest::SHA256, message);
    let request = SignRequest {
        algorithm,
        message,
        digest: digest.as_ref(),
    };
    let signature = signer.sign(&request)?;
    match algorithm {
        SignatureAlgorithm::EcdsaP256Sha256 => {
            let raw: &[u8; 64] = signature.as_slice().try_into().map_err(|_| {
                format!(
                    "the signer returned {} bytes for an ECDSA P-256 signature; expected 64 (raw r || s)",
                    signature.len()
                )
            })?;
            Ok(ecdsa_raw_to_der(raw))
        }
        SignatureAlgorithm::RsaPkcs1Sha256 | SignatureAlgorithm::RsaPssSha256 => {
            if signature.is_empty() {
                return Err("the signer returned an empty RSA signature".into());
            }
            Ok(signature)
        }
    }
}

/// Runs `sign_for_tls` on its own thread so a signer that never returns
/// fails the attempt after `timeout` instead of wedging the handshake. A
/// late signer finishes on its thread; its result is dropped.
fn sign_with_timeout(
    key: &ExternalKey,
    algorithm: SignatureAlgorithm,
    message: &[u8],
) -> std::result::Result<Vec<u8>, String> {
    let (tx, rx) = mpsc::sync_channel(1);
    let signer = key.signer.clone();
    let message = message.to_vec();
    std::thread::Builder::new()
        .name("nhc-sign".into())
        .spawn(move || {
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                sign_for_tls(&*signer, algorithm, &message)
            }))
            .unwrap_or_else(|_| Err("the signer panicked".into()));
            let _ = tx.send(outcome);
        })
        .map_err(|e| format!("cannot start the signing thread: {e}"))?;
    match rx.recv_timeout(key.timeout) {
        Ok(outcome) => outcome,
        Err(mpsc::RecvTimeoutError::Timeout) => Err(format!(
            "no signature within {} ms",
            key.timeout.as_millis()
        )),
        Err(mpsc::RecvTimeoutError::Disconnected) => Err("the signer gave no result".into()),
    }
}

/// DER `ECDSA-Sig-Value ::= SEQUENCE { r INTEGER, s INTEGER }` from raw r || s.
fn ecdsa_raw_to_der(raw: &[u8; 64]) -> Vec<u8> {
    fn integer(out: &mut Vec<u8>, bytes: &[u8]) {
        let start = bytes
            .iter()
            .position(|b| *b != 0)
            .unwrap_or(bytes.len() - 1);
        let trimmed = &bytes[start..];
        let pad = trimmed[0] & 0x80 != 0;
        out.push(0x02);
        out.push((trimmed.len() + usize::from(pad)) as u8);
        if pad {
            out.push(0);
        }
        out.extend_from_slice(trimmed);
    }
    let mut body = Vec::with_capacity(72);
    integer(&mut body, &raw[..32]);
    integer(&mut body, &raw[32..]);
    let mut der = Vec::with_capacity(body.len() + 2);
    der.push(0x30);
    der.push(body.len() as u8);
    der.extend_from_slice(&body);
    der
}

/// rustls's view of an external key.
#[derive(Debug)]
struct TlsSigningKey(ExternalKey);

struct TlsSigner {
    key: ExternalKey,
    algorithm: SignatureAlgorithm,
}

impl fmt::Debug for TlsSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsSigner")
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

impl SigningKey for TlsSigningKey {
    fn choose_scheme(&self, offered: &[SignatureScheme]) -> Option<Box<dyn Signer>> {
        let algorithm = self
            .0
            .signer
            .algorithm()
            .schemes()
            .iter()
            .find(|a| offered.contains(&a.tls_scheme()))?;
        Some(Box::new(TlsSigner {
            key: self.0.clone(),
            algorithm: *algorithm,
        }))
    }

    fn algorithm(&self) -> rustls::SignatureAlgorithm {
        match self.0.signer.algorithm() {
            KeyAlgorithm::EcdsaP256 => rustls::SignatureAlgorithm::ECDSA,
            KeyAlgorithm::Rsa => rustls::SignatureAlgorithm::RSA,
        }
    }
}

impl Signer for TlsSigner {
    fn sign(&self, message: &[u8]) -> std::result::Result<Vec<u8>, rustls::Error> {
        sign_with_timeout(&self.key, self.algorithm, message).map_err(|e| {
            rustls::Error::General(format!(
                "signing with {} ({}) failed: {e}",
                self.key.signer.describe(),
                self.algorithm.name()
            ))
        })
    }

    fn scheme(&self) -> SignatureScheme {
        self.algorithm.tls_scheme()
    }
}

/// Always presents the configured chain, whatever issuers the server lists
/// (NervesHub's CertificateRequest names Web PKI roots; see tls.rs).
#[derive(Debug)]
struct FixedClientCert(Arc<CertifiedKey>);

impl ResolvesClientCert for FixedClientCert {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// The resolver rustls needs for a chain whose key is external.
pub(crate) fn client_cert_resolver(
    chain: Vec<CertificateDer<'static>>,
    key: &ExternalKey,
) -> Arc<dyn ResolvesClientCert> {
    let signing_key: Arc<dyn SigningKey> = Arc::new(TlsSigningKey(key.clone()));
    Arc::new(FixedClientCert(Arc::new(CertifiedKey::new(
        chain,
        signing_key,
    ))))
}

/// Signs a fixed probe and checks it against the device certificate, so a
/// key that does not match the certificate (or a token that cannot sign) is
/// reported at configuration time rather than as a server alert.
pub(crate) fn check_key_matches(
    key: &ExternalKey,
    leaf: &CertificateDer<'_>,
    cert_label: &str,
) -> Result<()> {
    let algorithm = key.signer.algorithm().schemes()[0];
    let probe = b"nerves_hub_channel: does this key match the device certificate?";
    let signature = sign_with_timeout(key, algorithm, probe)
        .map_err(|e| Error::Tls(format!("cannot sign with {}: {e}", key.signer.describe())))?;
    let cert = webpki::EndEntityCert::try_from(leaf).map_err(|e| {
        Error::Tls(format!(
            "the first certificate in {cert_label} cannot be parsed as an X.509 certificate: {e}"
        ))
    })?;
    let verifier: &dyn rustls_pki_types::SignatureVerificationAlgorithm = match algorithm {
        SignatureAlgorithm::EcdsaP256Sha256 => webpki::ring::ECDSA_P256_SHA256,
        SignatureAlgorithm::RsaPkcs1Sha256 => webpki::ring::RSA_PKCS1_2048_8192_SHA256,
        SignatureAlgorithm::RsaPssSha256 => webpki::ring::RSA_PSS_2048_8192_SHA256_LEGACY_KEY,
    };
    cert.verify_signature(verifier, probe, &signature)
        .map_err(|_| {
            Error::Tls(format!(
                "{} does not match the certificate in {cert_label} (or is not a {} key; if the file holds a chain, the device certificate must come first)",
                key.signer.describe(),
                match key.signer.algorithm() {
                    KeyAlgorithm::EcdsaP256 => "EC P-256",
                    KeyAlgorithm::Rsa => "RSA",
                }
            ))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_ecdsa_signatures_become_der_integers() {
        let mut raw = [0u8; 64];
        raw[0] = 0x80; // r needs a leading zero to stay positive
        raw[63] = 0x01; // s is 1 after trimming
        let der = ecdsa_raw_to_der(&raw);
        assert_eq!(&der[..5], &[0x30, 38, 0x02, 33, 0x00]);
        assert_eq!(&der[der.len() - 3..], &[0x02, 0x01, 0x01]);
    }
}
