//! The wss listener's TLS: TLS 1.2 and 1.3, the PKI's server certificate,
//! and an optional client certificate that must chain to the dev CA.

use std::io;
use std::path::Path;
use std::sync::Arc;

use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::pki::Pki;

fn tls_err(context: &str, e: impl std::fmt::Display) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("{context}: {e}"))
}

fn certs(path: &Path) -> io::Result<Vec<CertificateDer<'static>>> {
    let pem = std::fs::read(path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| tls_err(&path.display().to_string(), e))?;
    if certs.is_empty() {
        return Err(tls_err(&path.display().to_string(), "no certificate"));
    }
    Ok(certs)
}

/// Builds the server config. Unauthenticated clients complete the handshake
/// (as on NervesHub, where `fail_if_no_peer_cert` is false) and are refused
/// at the HTTP upgrade instead, with NervesHub's 401.
pub(crate) fn server_config(pki: &Pki) -> io::Result<Arc<ServerConfig>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = RootCertStore::empty();
    for cert in certs(&pki.ca)? {
        roots.add(cert).map_err(|e| tls_err("dev CA", e))?;
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .allow_unauthenticated()
        .build()
        .map_err(|e| tls_err("client verifier", e))?;
    let key_pem = std::fs::read(&pki.server_key)?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| tls_err("server key", e))?;
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| tls_err("protocol versions", e))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs(&pki.server_cert)?, key)
        .map_err(|e| tls_err("server certificate", e))?;
    // No TLS 1.3 session tickets, as Erlang's ssl server (NervesHub) by
    // default: every TLS 1.3 connection is a full handshake in which the
    // device proves its key again (what a removed secure element fails).
    config.send_tls13_tickets = 0;
    Ok(Arc::new(config))
}

/// The subject CN of a client certificate, if it has a readable one.
pub(crate) fn common_name(cert: &CertificateDer<'_>) -> Option<String> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    let cn = parsed.subject().iter_common_name().next()?;
    cn.as_str().ok().map(str::to_owned)
}
