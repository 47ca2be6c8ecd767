//! TLS for `wss://` connections: loading CAs, the device certificate and key,
//! and turning handshake failures into messages a firmware engineer can act on.
//!
//! Server verification is always on. The configured client certificate chain
//! is always sent, whatever issuers the server advertises: NervesHub's TLS 1.2
//! CertificateRequest lists public Web PKI roots, so filtering by issuer would
//! silently drop the device certificate (protocol notes, section 1.4).

use std::borrow::Cow;
use std::fmt;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use rustls::{AlertDescription, CertificateError, ClientConfig, InconsistentKeys, RootCertStore};
use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use crate::error::{Error, Result};

pub mod pkcs11;
pub mod pkcs11_uri;
pub mod signer;

pub use signer::ExternalKey;

/// Where PEM data comes from.
#[derive(Clone)]
pub enum PemSource {
    File(PathBuf),
    Memory(Vec<u8>),
}

// Hand-written so that logging a configuration never prints an in-memory key.
impl fmt::Debug for PemSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PemSource::File(path) => f.debug_tuple("File").field(path).finish(),
            PemSource::Memory(bytes) => write!(f, "Memory(<{} bytes>)", bytes.len()),
        }
    }
}

/// TLS settings for wss:// connections. TLS is always verified; there is no
/// switch to turn verification off.
#[derive(Debug, Clone, Default)]
pub struct TlsOptions {
    /// Trusted CAs; `None` means the system roots (an error if none load).
    pub ca: Option<PemSource>,
    /// Certificate chain, leaf first (may include intermediates).
    pub client_cert: Option<PemSource>,
    /// PKCS#8, SEC1 EC or PKCS#1 RSA private key.
    pub client_key: Option<PemSource>,
    /// SNI and verified hostname override (default: the URL host).
    pub server_name: Option<String>,
    /// A key that never leaves its chip (PKCS#11 token, signing callback);
    /// used with `client_cert` instead of `client_key`.
    pub client_signer: Option<ExternalKey>,
}

/// A validated, ready-to-use TLS client (cheap to clone).
#[derive(Clone)]
pub struct TlsClient {
    connector: TlsConnector,
    /// Validated override: the name to send and verify, and its text for messages.
    server_name: Option<(ServerName<'static>, Arc<str>)>,
    /// Where the trusted CAs came from, to say which bundle lacks the server's CA.
    ca_label: Arc<str>,
    has_client_cert: bool,
    /// Handshakes sign through an external key, which may block: run them
    /// off the I/O thread.
    external_key: bool,
}

impl fmt::Debug for TlsClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsClient")
            .field("ca", &self.ca_label)
            .field("server_name", &self.server_name.as_ref().map(|(_, s)| s))
            .field("client_cert", &self.has_client_cert)
            .finish_non_exhaustive()
    }
}

impl TlsClient {
    /// Loads and checks everything now, so that bad PEM, a missing file, a
    /// cert without key (or key without cert) or a key that does not match the
    /// certificate is reported at configuration time, not at the first
    /// connection.
    pub fn new(options: &TlsOptions) -> Result<TlsClient> {
        let server_name = match &options.server_name {
            Some(name) => Some((parse_server_name(name)?, Arc::from(name.as_str()))),
            None => None,
        };
        let (roots, ca_label) = load_roots(options.ca.as_ref())?;
        if options.client_key.is_some() && options.client_signer.is_some() {
            return Err(Error::Tls(
                "both a private key and an external key are configured; set only one".into(),
            ));
        }
        let key_given = options.client_key.is_some() || options.client_signer.is_some();
        match (&options.client_cert, key_given) {
            (Some(_), false) => {
                return Err(Error::Tls(
                    "client certificate given without a private key; set the client key too".into(),
                ))
            }
            (None, true) => return Err(Error::Tls(
                "private key given without a client certificate; set the client certificate too"
                    .into(),
            )),
            _ => {}
        }

        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(|e| Error::Tls(format!("cannot enable TLS 1.2 and 1.3: {e}")))?
            .with_root_certificates(roots);
        let config = match (
            &options.client_cert,
            &options.client_key,
            &options.client_signer,
        ) {
            (Some(cert_source), Some(key_source), _) => {
                let cert_label = label(cert_source, "the in-memory client certificate");
                let key_label = label(key_source, "the in-memory private key");
                let chain = load_client_chain(cert_source, &cert_label)?;
                let key = load_key(key_source, &key_label)?;
                // with_client_auth_cert installs a resolver that ignores the
                // server's acceptable-issuer hints, which is what NervesHub needs.
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|e| identity_error(&e, &cert_label, &key_label))?
            }
            (Some(cert_source), None, Some(external)) => {
                let cert_label = label(cert_source, "the in-memory client certificate");
                let chain = load_client_chain(cert_source, &cert_label)?;
                if external.signer.probe_at_configuration() {
                    signer::check_key_matches(external, &chain[0], &cert_label)?;
                }
                builder.with_client_cert_resolver(signer::client_cert_resolver(chain, external))
            }
            _ => builder.with_no_client_auth(),
        };

        Ok(TlsClient {
            connector: TlsConnector::from(Arc::new(config)),
            server_name,
            ca_label: Arc::from(ca_label),
            has_client_cert: options.client_cert.is_some(),
            external_key: options.client_signer.is_some(),
        })
    }

    /// TLS handshake over an already connected TCP stream; `host` is the URL
    /// host (overridden by `server_name`). Handshake failures are mapped to
    /// actionable messages.
    pub async fn connect(&self, host: &str, tcp: TcpStream) -> Result<TlsStream<TcpStream>> {
        let (name, shown) = match &self.server_name {
            Some((name, shown)) => (name.clone(), &**shown),
            None => (parse_server_name(host)?, host),
        };
        let result = if self.external_key {
            // rustls signs synchronously inside the handshake; a secure element
            // takes 50-200 ms, which must not stall the other sockets on this
            // I/O thread. A blocking-pool thread drives the handshake while the
            // I/O thread keeps driving the socket's readiness and timers.
            let connector = self.connector.clone();
            let handle = tokio::runtime::Handle::current();
            tokio::task::spawn_blocking(move || handle.block_on(connector.connect(name, tcp)))
                .await
                .map_err(|_| Error::Tls("the TLS handshake thread stopped".into()))?
        } else {
            self.connector.connect(name, tcp).await
        };
        result.map_err(|e| self.handshake_error(&e, shown))
    }

    /// Maps an I/O error from an established TLS stream to a TLS error when
    /// TLS caused it, `None` otherwise.
    ///
    /// With TLS 1.3 the client finishes its handshake before the server has
    /// checked the client certificate, so a rejection arrives as an alert on
    /// the first read after [`TlsClient::connect`] succeeded.
    pub fn stream_error(&self, err: &io::Error) -> Option<Error> {
        find_rustls_error(err).map(|e| Error::Tls(self.describe_rustls_error(e, None)))
    }

    fn handshake_error(&self, err: &io::Error, host: &str) -> Error {
        if let Some(e) = find_rustls_error(err) {
            let message = self.describe_rustls_error(e, Some(host));
            log::debug!("TLS handshake with {host} failed: {e:?}");
            return Error::Tls(message);
        }
        match err.kind() {
            io::ErrorKind::UnexpectedEof
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe => Error::Tls(
                "connection closed during handshake (server rate limit or TLS mismatch; will retry)"
                    .into(),
            ),
            _ => Error::Tls(format!("handshake failed: {}", io_detail(err))),
        }
    }

    fn describe_rustls_error(&self, err: &rustls::Error, host: Option<&str>) -> String {
        match err {
            rustls::Error::InvalidCertificate(cert_err) => {
                self.describe_server_cert(cert_err, host)
            }
            rustls::Error::AlertReceived(alert) => self.describe_alert(*alert),
            // Our own signer's failure (see signer.rs): already a full sentence.
            rustls::Error::General(message) if message.starts_with("signing with ") => {
                format!("handshake failed: {message}")
            }
            other => format!("handshake failed: {other}"),
        }
    }

    fn describe_server_cert(&self, err: &CertificateError, host: Option<&str>) -> String {
        match err {
            CertificateError::UnknownIssuer => format!(
                "server certificate is not signed by any CA in {}",
                self.ca_label
            ),
            CertificateError::Expired => "server certificate has expired".into(),
            CertificateError::ExpiredContext { time, not_after } => format!(
                "server certificate has expired (valid until {}; this device's clock says {})",
                format_time(*not_after),
                format_time(*time)
            ),
            CertificateError::NotValidYet => {
                "server certificate is not valid yet; check this device's clock".into()
            }
            CertificateError::NotValidYetContext { time, not_before } => format!(
                "server certificate is not valid yet (valid from {}; this device's clock says {}); check the clock",
                format_time(*not_before),
                format_time(*time)
            ),
            CertificateError::NotValidForName => {
                format!("server certificate is not valid for host {:?}", host.unwrap_or("?"))
            }
            CertificateError::NotValidForNameContext { expected, presented } => {
                let host: Cow<'_, str> = match host {
                    Some(h) => Cow::Borrowed(h),
                    None => expected.to_str(),
                };
                let mut message = format!("server certificate is not valid for host {host:?}");
                if !presented.is_empty() {
                    message.push_str(&format!(
                        " (it names {}; set server_name if you connect by another name)",
                        presented
                            .iter()
                            .map(|name| presented_name(name))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                }
                message
            }
            other => format!("handshake failed: server certificate rejected: {other:?}"),
        }
    }

    fn describe_alert(&self, alert: AlertDescription) -> String {
        let name = alert_name(alert);
        let about_client_cert = matches!(
            alert,
            AlertDescription::BadCertificate
                | AlertDescription::UnsupportedCertificate
                | AlertDescription::CertificateRevoked
                | AlertDescription::CertificateExpired
                | AlertDescription::CertificateUnknown
                | AlertDescription::UnknownCA
                | AlertDescription::AccessDenied
                | AlertDescription::CertificateRequired
                | AlertDescription::NoCertificate
        );
        match (about_client_cert, self.has_client_cert) {
            // Expired and untrusted certificates need different fixes, so say which.
            (true, true) if alert == AlertDescription::CertificateExpired => format!(
                "the server rejected our client certificate (alert: {name}); renew the device certificate (it has expired or is not valid yet by the server's clock)"
            ),
            (true, true) if alert == AlertDescription::UnknownCA => format!(
                "the server rejected our client certificate (alert: {name}); the server does not trust its issuer: register the device's CA on the server or use a certificate it issued"
            ),
            (true, true) => format!(
                "the server rejected our client certificate (alert: {name}); check that the device or its CA is registered on the server"
            ),
            (true, false) => format!(
                "the server requires a client certificate and none is configured (alert: {name})"
            ),
            // Servers that insist on a client certificate often say only handshake_failure in TLS 1.2.
            (false, false) if alert == AlertDescription::HandshakeFailure => format!(
                "handshake failed: the server sent alert {name} (it may require a client certificate)"
            ),
            _ => format!("handshake failed: the server sent alert {name}"),
        }
    }
}

/// webpki reports names in Debug form (`DnsName("a.example")`, `IpAddress(10.0.0.1)`);
/// people compare them against a URL, so show the bare name.
fn presented_name(name: &str) -> &str {
    let inner = match (name.find('('), name.strip_suffix(')')) {
        (Some(open), Some(body)) if open < body.len() => &body[open + 1..],
        _ => return name,
    };
    inner
        .strip_prefix('"')
        .and_then(|n| n.strip_suffix('"'))
        .unwrap_or(inner)
}

fn parse_server_name(name: &str) -> Result<ServerName<'static>> {
    // URL hosts keep IPv6 literals in brackets; ServerName wants the bare address.
    let bare = name
        .strip_prefix('[')
        .and_then(|n| n.strip_suffix(']'))
        .unwrap_or(name);
    ServerName::try_from(bare.to_owned()).map_err(|_| {
        Error::InvalidArgument(format!(
            "invalid TLS server name {name:?}: expected a DNS name or an IP address"
        ))
    })
}

fn label(source: &PemSource, memory_label: &str) -> String {
    match source {
        PemSource::File(path) => path.display().to_string(),
        PemSource::Memory(_) => memory_label.to_owned(),
    }
}

fn read_source<'a>(source: &'a PemSource, what: &str) -> Result<Cow<'a, [u8]>> {
    match source {
        PemSource::Memory(bytes) => Ok(Cow::Borrowed(bytes)),
        PemSource::File(path) => std::fs::read(path).map(Cow::Owned).map_err(|e| {
            Error::Tls(format!(
                "cannot read {what} file {}: {}",
                path.display(),
                io_detail(&e)
            ))
        }),
    }
}

/// The OS error text without the trailing "(os error N)", which helps nobody.
fn io_detail(err: &io::Error) -> String {
    let text = err.to_string();
    match text.find(" (os error ") {
        Some(at) if text.ends_with(')') => text[..at].to_owned(),
        _ => text,
    }
}

/// A fixed description of a PEM syntax error: the library's own text can
/// quote bytes from the input, which may be key material.
fn pem_problem(err: &pem::Error) -> &'static str {
    match err {
        pem::Error::MissingSectionEnd { .. } => "a PEM block has no END line",
        pem::Error::IllegalSectionStart { .. } => "a PEM BEGIN line is malformed",
        pem::Error::Base64Decode(_) => "a PEM block contains invalid base64",
        pem::Error::SectionTooLarge => "a PEM block is too large",
        pem::Error::NoItemsFound => "no PEM block of the expected type",
        _ => "the PEM data cannot be parsed",
    }
}

fn load_certificates(
    source: &PemSource,
    what: &str,
    label: &str,
) -> Result<Vec<CertificateDer<'static>>> {
    let bytes = read_source(source, what)?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| Error::Tls(format!("{label} is not valid PEM: {}", pem_problem(&e))))?;
    if certs.is_empty() {
        return Err(Error::Tls(format!(
            "{label} contains no PEM certificate (expected -----BEGIN CERTIFICATE----- blocks)"
        )));
    }
    Ok(certs)
}

fn load_roots(source: Option<&PemSource>) -> Result<(RootCertStore, String)> {
    let mut roots = RootCertStore::empty();
    let Some(source) = source else {
        let found = rustls_native_certs::load_native_certs();
        for err in &found.errors {
            log::warn!("TLS: while loading the system trust store: {err}");
        }
        let (added, ignored) = roots.add_parsable_certificates(found.certs);
        if added == 0 {
            return Err(Error::Tls(
                "no trusted CA certificates found in the system trust store; configure a CA file"
                    .into(),
            ));
        }
        log::debug!("TLS: {added} system CA certificates loaded, {ignored} unusable ones skipped");
        return Ok((roots, "the system trust store".into()));
    };
    let label = label(source, "the in-memory CA");
    for (index, cert) in load_certificates(source, "CA", &label)?
        .into_iter()
        .enumerate()
    {
        roots.add(cert).map_err(|e| {
            let why = match e {
                rustls::Error::InvalidCertificate(CertificateError::BadEncoding) => {
                    "it is not a valid X.509 certificate".to_owned()
                }
                other => other.to_string(),
            };
            Error::Tls(format!(
                "{label}: certificate #{} cannot be used as a trusted CA: {why}",
                index + 1
            ))
        })?;
    }
    Ok((roots, label))
}

fn load_client_chain(source: &PemSource, label: &str) -> Result<Vec<CertificateDer<'static>>> {
    load_certificates(source, "client certificate", label)
}

fn load_key(source: &PemSource, label: &str) -> Result<PrivateKeyDer<'static>> {
    let bytes = read_source(source, "private key")?;
    match PrivateKeyDer::from_pem_slice(&bytes) {
        Ok(key) => Ok(key),
        Err(pem::Error::NoItemsFound) if contains(&bytes, b"ENCRYPTED PRIVATE KEY") => {
            Err(Error::Tls(format!(
                "{label} holds an encrypted private key; decrypt it first (openssl pkey -in KEY -out PLAIN_KEY)"
            )))
        }
        Err(pem::Error::NoItemsFound) => Err(Error::Tls(format!(
            "{label} contains no private key (expected PKCS#8, SEC1 EC or PKCS#1 RSA PEM)"
        ))),
        Err(e) => Err(Error::Tls(format!(
            "{label} is not a valid PEM private key: {}",
            pem_problem(&e)
        ))),
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn identity_error(err: &rustls::Error, cert_label: &str, key_label: &str) -> Error {
    Error::Tls(match err {
        rustls::Error::InconsistentKeys(InconsistentKeys::KeyMismatch) => format!(
            "the private key in {key_label} does not match the certificate in {cert_label} (if the file holds a chain, the device certificate must come first)"
        ),
        rustls::Error::InvalidCertificate(_) | rustls::Error::InconsistentKeys(_) => format!(
            "the first certificate in {cert_label} cannot be parsed as an X.509 certificate: {err}"
        ),
        // rustls's key-loading messages name the key type, never its bytes.
        other => format!(
            "cannot use the private key in {key_label}: {other} (supported: ECDSA P-256/P-384, Ed25519, RSA of 2048 bits or more)"
        ),
    })
}

/// Finds the rustls error behind an I/O error. `io::Error::source()` skips
/// the error it wraps, so wrapped I/O errors are unwrapped with `get_ref()`.
fn find_rustls_error(err: &io::Error) -> Option<&rustls::Error> {
    let mut current: Option<&(dyn std::error::Error + 'static)> = err
        .get_ref()
        .map(|e| e as &(dyn std::error::Error + 'static));
    while let Some(e) = current {
        if let Some(found) = e.downcast_ref::<rustls::Error>() {
            return Some(found);
        }
        current = match e.downcast_ref::<io::Error>() {
            Some(inner) => inner
                .get_ref()
                .map(|e| e as &(dyn std::error::Error + 'static)),
            None => e.source(),
        };
    }
    None
}

/// The IANA name, as people see it in server logs and Wireshark.
fn alert_name(alert: AlertDescription) -> Cow<'static, str> {
    Cow::Borrowed(match alert {
        AlertDescription::CloseNotify => "close_notify",
        AlertDescription::UnexpectedMessage => "unexpected_message",
        AlertDescription::BadRecordMac => "bad_record_mac",
        AlertDescription::RecordOverflow => "record_overflow",
        AlertDescription::HandshakeFailure => "handshake_failure",
        AlertDescription::NoCertificate => "no_certificate",
        AlertDescription::BadCertificate => "bad_certificate",
        AlertDescription::UnsupportedCertificate => "unsupported_certificate",
        AlertDescription::CertificateRevoked => "certificate_revoked",
        AlertDescription::CertificateExpired => "certificate_expired",
        AlertDescription::CertificateUnknown => "certificate_unknown",
        AlertDescription::IllegalParameter => "illegal_parameter",
        AlertDescription::UnknownCA => "unknown_ca",
        AlertDescription::AccessDenied => "access_denied",
        AlertDescription::DecodeError => "decode_error",
        AlertDescription::DecryptError => "decrypt_error",
        AlertDescription::ProtocolVersion => "protocol_version",
        AlertDescription::InsufficientSecurity => "insufficient_security",
        AlertDescription::InternalError => "internal_error",
        AlertDescription::InappropriateFallback => "inappropriate_fallback",
        AlertDescription::UserCanceled => "user_canceled",
        AlertDescription::MissingExtension => "missing_extension",
        AlertDescription::UnsupportedExtension => "unsupported_extension",
        AlertDescription::UnrecognisedName => "unrecognized_name",
        AlertDescription::CertificateRequired => "certificate_required",
        AlertDescription::NoApplicationProtocol => "no_application_protocol",
        other => return Cow::Owned(format!("{other:?}")),
    })
}

/// `YYYY-MM-DD HH:MM:SS UTC`, computed by hand because the crate has no date library.
fn format_time(time: UnixTime) -> String {
    let secs = time.as_secs();
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests;
