use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig, SupportedProtocolVersion};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, UnixTime};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

use super::*;

// ---------------------------------------------------------------------------
// Test PKI

struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        let key = KeyPair::generate().expect("CA key");
        Ca {
            issuer: CertifiedIssuer::self_signed(params, key).expect("CA cert"),
        }
    }

    fn pem(&self) -> String {
        self.issuer.pem()
    }

    fn der(&self) -> CertificateDer<'static> {
        self.issuer.der().clone()
    }

    fn leaf(&self, names: &[&str], cn: &str) -> Leaf {
        self.leaf_with(names, cn, |_| {})
    }

    fn leaf_with(
        &self,
        names: &[&str],
        cn: &str,
        adjust: impl FnOnce(&mut CertificateParams),
    ) -> Leaf {
        let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        let mut params = CertificateParams::new(names).expect("leaf params");
        params.distinguished_name.push(DnType::CommonName, cn);
        adjust(&mut params);
        let key = KeyPair::generate().expect("leaf key");
        let cert = params.signed_by(&key, &self.issuer).expect("leaf cert");
        Leaf {
            cert_pem: cert.pem(),
            cert_der: cert.der().clone(),
            key,
        }
    }
}

struct Leaf {
    cert_pem: String,
    cert_der: CertificateDer<'static>,
    key: KeyPair,
}

impl Leaf {
    fn key_pem(&self) -> String {
        self.key.serialize_pem()
    }

    fn key_der(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key.serialize_der()))
    }
}

fn mem(text: &str) -> Option<PemSource> {
    Some(PemSource::Memory(text.as_bytes().to_vec()))
}

fn tls_message(result: Result<TlsClient>) -> String {
    match result {
        Ok(_) => panic!("expected an error"),
        Err(Error::Tls(m)) => format!("TLS: {m}"),
        Err(other) => panic!("expected a TLS error, got {other:?}"),
    }
}

/// A private scratch directory removed on drop (no tempfile crate in this workspace).
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Scratch {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "nhc-tls-test-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("scratch dir");
        Scratch(dir)
    }

    fn write(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, contents).expect("write scratch file");
        path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Re-encodes ring's PKCS#8 P-256 key as the SEC1 `EC PRIVATE KEY` that
/// OpenSSL's `ecparam -genkey` writes: PKCS#8 wraps the SEC1 structure in its
/// final OCTET STRING.
fn sec1_pem(key: &KeyPair) -> String {
    fn tlv(input: &[u8]) -> (u8, &[u8], &[u8]) {
        let tag = input[0];
        let first = input[1] as usize;
        let (len, header) = if first < 0x80 {
            (first, 2)
        } else {
            let n = first & 0x7f;
            let len = input[2..2 + n]
                .iter()
                .fold(0usize, |acc, b| (acc << 8) | *b as usize);
            (len, 2 + n)
        };
        (tag, &input[header..header + len], &input[header + len..])
    }
    let pkcs8 = key.serialize_der();
    let (tag, body, _) = tlv(&pkcs8);
    assert_eq!(tag, 0x30);
    let (_version, _, rest) = tlv(body);
    let (_algorithm, _, rest) = tlv(rest);
    let (tag, sec1, _) = tlv(rest);
    assert_eq!(tag, 0x04);
    pem_encode("EC PRIVATE KEY", sec1)
}

fn pem_encode(label: &str, der: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut b64 = String::new();
    for chunk in der.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                b64.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                b64.push('=');
            }
        }
    }
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

// ---------------------------------------------------------------------------
// Configuration-time errors

#[test]
fn missing_ca_file_names_the_file() {
    let path = Path::new("/nonexistent-nhc-dir/x/ca.pem");
    let options = TlsOptions {
        ca: Some(PemSource::File(path.to_path_buf())),
        ..TlsOptions::default()
    };
    assert_eq!(
        tls_message(TlsClient::new(&options)),
        "TLS: cannot read CA file /nonexistent-nhc-dir/x/ca.pem: No such file or directory"
    );
}

#[test]
fn missing_key_file_names_the_file() {
    let ca = Ca::new("ca");
    let device = ca.leaf(&["device"], "device");
    let options = TlsOptions {
        ca: mem(&ca.pem()),
        client_cert: mem(&device.cert_pem),
        client_key: Some(PemSource::File("/nonexistent-nhc-dir/key.pem".into())),
        ..TlsOptions::default()
    };
    assert_eq!(
        tls_message(TlsClient::new(&options)),
        "TLS: cannot read private key file /nonexistent-nhc-dir/key.pem: No such file or directory"
    );
}

#[test]
fn garbage_pem_is_rejected() {
    let options = TlsOptions {
        ca: mem("-----BEGIN CERTIFICATE-----\n!!!! not base64 ****\n-----END CERTIFICATE-----\n"),
        ..TlsOptions::default()
    };
    let message = tls_message(TlsClient::new(&options));
    assert!(
        message.starts_with("TLS: the in-memory CA is not valid PEM:"),
        "{message}"
    );

    // Valid base64 that is not a certificate is caught when it is added as a trust anchor.
    let options = TlsOptions {
        ca: mem("-----BEGIN CERTIFICATE-----\naGVsbG8gd29ybGQ=\n-----END CERTIFICATE-----\n"),
        ..TlsOptions::default()
    };
    let message = tls_message(TlsClient::new(&options));
    assert!(
        message.ends_with(
            "certificate #1 cannot be used as a trusted CA: it is not a valid X.509 certificate"
        ),
        "{message}"
    );
}

#[test]
fn garbage_key_does_not_leak_into_the_message() {
    let ca = Ca::new("ca");
    let device = ca.leaf(&["device"], "device");
    let secret = "c2VjcmV0LWtleS1tYXRlcmlhbA@@@";
    let options = TlsOptions {
        ca: mem(&ca.pem()),
        client_cert: mem(&device.cert_pem),
        client_key: mem(&format!(
            "-----BEGIN PRIVATE KEY-----\n{secret}\n-----END PRIVATE KEY-----\n"
        )),
        ..TlsOptions::default()
    };
    let message = tls_message(TlsClient::new(&options));
    assert!(
        message.starts_with("TLS: the in-memory private key is not a valid PEM private key"),
        "{message}"
    );
    assert!(!message.contains("c2Vj"), "{message}");
}

#[test]
fn ca_file_without_certificate() {
    let scratch = Scratch::new();
    let key = KeyPair::generate().expect("key");
    let path = scratch.write("ca.pem", &key.serialize_pem());
    let options = TlsOptions {
        ca: Some(PemSource::File(path.clone())),
        ..TlsOptions::default()
    };
    let message = tls_message(TlsClient::new(&options));
    assert!(
        message.starts_with(&format!(
            "TLS: {} contains no PEM certificate",
            path.display()
        )),
        "{message}"
    );
    assert!(!message.contains("PRIVATE"), "{message}");
}

#[test]
fn key_file_without_key() {
    let scratch = Scratch::new();
    let ca = Ca::new("ca");
    let device = ca.leaf(&["device"], "device");
    let cert = scratch.write("device.pem", &device.cert_pem);
    let key = scratch.write("key.pem", &device.cert_pem);
    let options = TlsOptions {
        ca: mem(&ca.pem()),
        client_cert: Some(PemSource::File(cert)),
        client_key: Some(PemSource::File(key.clone())),
        ..TlsOptions::default()
    };
    assert_eq!(
        tls_message(TlsClient::new(&options)),
        format!(
            "TLS: {} contains no private key (expected PKCS#8, SEC1 EC or PKCS#1 RSA PEM)",
            key.display()
        )
    );
}

#[test]
fn encrypted_key_gets_its_own_message() {
    let ca = Ca::new("ca");
    let device = ca.leaf(&["device"], "device");
    let options = TlsOptions {
        ca: mem(&ca.pem()),
        client_cert: mem(&device.cert_pem),
        client_key: mem(
            "-----BEGIN ENCRYPTED PRIVATE KEY-----\naGVsbG8=\n-----END ENCRYPTED PRIVATE KEY-----\n",
        ),
        ..TlsOptions::default()
    };
    let message = tls_message(TlsClient::new(&options));
    assert!(message.contains("encrypted private key"), "{message}");
}

#[test]
fn key_without_cert() {
    let ca = Ca::new("ca");
    let device = ca.leaf(&["device"], "device");
    let options = TlsOptions {
        ca: mem(&ca.pem()),
        client_key: mem(&device.key_pem()),
        ..TlsOptions::default()
    };
    let message = tls_message(TlsClient::new(&options));
    assert!(
        message.starts_with("TLS: private key given without a client certificate"),
        "{message}"
    );
}

#[test]
fn cert_without_key() {
    let ca = Ca::new("ca");
    let device = ca.leaf(&["device"], "device");
    let options = TlsOptions {
        ca: mem(&ca.pem()),
        client_cert: mem(&device.cert_pem),
        ..TlsOptions::default()
    };
    let message = tls_message(TlsClient::new(&options));
    assert!(
        message.starts_with("TLS: client certificate given without a private key"),
        "{message}"
    );
}

#[test]
fn mismatched_key_names_both_files() {
    let scratch = Scratch::new();
    let ca = Ca::new("ca");
    let device = ca.leaf(&["device"], "device");
    let other = ca.leaf(&["other"], "other");
    let cert = scratch.write("device.pem", &device.cert_pem);
    let key = scratch.write("key.pem", &other.key_pem());
    let options = TlsOptions {
        ca: mem(&ca.pem()),
        client_cert: Some(PemSource::File(cert.clone())),
        client_key: Some(PemSource::File(key.clone())),
        ..TlsOptions::default()
    };
    let message = tls_message(TlsClient::new(&options));
    assert!(
        message.starts_with(&format!(
            "TLS: the private key in {} does not match the certificate in {}",
            key.display(),
            cert.display()
        )),
        "{message}"
    );
}

#[test]
fn pkcs8_key_from_files_is_accepted() {
    let scratch = Scratch::new();
    let ca = Ca::new("ca");
    let device = ca.leaf(&["device"], "device");
    assert!(device.key_pem().contains("BEGIN PRIVATE KEY"));
    let options = TlsOptions {
        ca: Some(PemSource::File(scratch.write("ca.pem", &ca.pem()))),
        client_cert: Some(PemSource::File(
            scratch.write("device.pem", &device.cert_pem),
        )),
        client_key: Some(PemSource::File(scratch.write("key.pem", &device.key_pem()))),
        ..TlsOptions::default()
    };
    let client = TlsClient::new(&options).expect("PKCS#8 key accepted");
    assert!(client.has_client_cert);
}

#[test]
fn sec1_key_is_accepted() {
    let ca = Ca::new("ca");
    let device = ca.leaf(&["device"], "device");
    let sec1 = sec1_pem(&device.key);
    assert!(sec1.contains("BEGIN EC PRIVATE KEY"));
    let options = TlsOptions {
        ca: mem(&ca.pem()),
        client_cert: mem(&device.cert_pem),
        client_key: mem(&sec1),
        ..TlsOptions::default()
    };
    TlsClient::new(&options).expect("SEC1 key accepted");
}

#[test]
fn combined_cert_and_key_file_and_chain() {
    let ca = Ca::new("ca");
    let device = ca.leaf(&["device"], "device");
    let combined = format!("{}{}{}", device.cert_pem, ca.pem(), device.key_pem());
    let options = TlsOptions {
        ca: mem(&ca.pem()),
        client_cert: mem(&combined),
        client_key: mem(&combined),
        ..TlsOptions::default()
    };
    TlsClient::new(&options).expect("chain plus key in one PEM");
}

#[test]
fn invalid_server_name_is_an_invalid_argument() {
    let ca = Ca::new("ca");
    let options = TlsOptions {
        ca: mem(&ca.pem()),
        server_name: Some("not a host name!".into()),
        ..TlsOptions::default()
    };
    match TlsClient::new(&options) {
        Err(Error::InvalidArgument(m)) => assert!(m.contains("not a host name!"), "{m}"),
        other => panic!("expected InvalidArgument, got {:?}", other.map(|_| ())),
    }
}

#[test]
fn server_names_accept_ips_and_bracketed_ipv6() {
    for name in ["127.0.0.1", "::1", "[::1]", "device.nerves-hub.org"] {
        parse_server_name(name).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

#[test]
fn presented_names_are_shown_bare() {
    assert_eq!(presented_name("DnsName(\"a.example\")"), "a.example");
    assert_eq!(presented_name("IpAddress(10.0.0.1)"), "10.0.0.1");
    assert_eq!(presented_name("DirectoryName"), "DirectoryName");
    assert_eq!(presented_name("odd)"), "odd)");
}

#[test]
fn debug_output_hides_in_memory_pem() {
    let options = TlsOptions {
        client_key: Some(PemSource::Memory(b"SECRET KEY BYTES".to_vec())),
        ..TlsOptions::default()
    };
    let shown = format!("{options:?}");
    assert!(shown.contains("Memory(<16 bytes>)"), "{shown}");
    assert!(!shown.contains("SECRET"), "{shown}");
}

#[test]
fn times_are_formatted_as_utc_dates() {
    let at = |secs| {
        format_time(UnixTime::since_unix_epoch(std::time::Duration::from_secs(
            secs,
        )))
    };
    assert_eq!(at(0), "1970-01-01 00:00:00 UTC");
    assert_eq!(at(951_782_400), "2000-02-29 00:00:00 UTC");
    assert_eq!(at(1_700_000_000), "2023-11-14 22:13:20 UTC");
    assert_eq!(at(4_102_444_799), "2099-12-31 23:59:59 UTC");
}

// ---------------------------------------------------------------------------
// Handshakes against an in-process server

const BOTH: &[&SupportedProtocolVersion] = &[&rustls::version::TLS13, &rustls::version::TLS12];
const TLS12: &[&SupportedProtocolVersion] = &[&rustls::version::TLS12];
const TLS13: &[&SupportedProtocolVersion] = &[&rustls::version::TLS13];

fn server_config(
    server: &Leaf,
    client_ca: Option<&Ca>,
    versions: &[&'static SupportedProtocolVersion],
) -> Arc<ServerConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .expect("server versions");
    let builder = match client_ca {
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            roots.add(ca.der()).expect("client CA");
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .expect("client verifier");
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    Arc::new(
        builder
            .with_single_cert(vec![server.cert_der.clone()], server.key_der())
            .expect("server cert"),
    )
}

/// What the server saw: the client's certificate chain when the handshake succeeded.
type ServerOutcome = std::io::Result<Option<Vec<CertificateDer<'static>>>>;

/// Accepts one connection, completes the handshake and writes "ok".
async fn serve_once(config: Arc<ServerConfig>) -> (SocketAddr, JoinHandle<ServerOutcome>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let task = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await?;
        let mut tls = TlsAcceptor::from(config).accept(tcp).await?;
        let peer = tls
            .get_ref()
            .1
            .peer_certificates()
            .map(|certs| certs.to_vec());
        tls.write_all(b"ok").await?;
        tls.shutdown().await?;
        Ok(peer)
    });
    (addr, task)
}

fn client(ca: &Ca, device: Option<&Leaf>, server_name: Option<&str>) -> TlsClient {
    TlsClient::new(&TlsOptions {
        ca: mem(&ca.pem()),
        client_cert: device.and_then(|d| mem(&d.cert_pem)),
        client_key: device.and_then(|d| mem(&d.key_pem())),
        server_name: server_name.map(str::to_owned),
        client_signer: None,
    })
    .expect("client config")
}

async fn handshake(client: &TlsClient, addr: SocketAddr) -> Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await.expect("tcp connect");
    client.connect("127.0.0.1", tcp).await
}

fn handshake_message(result: Result<TlsStream<TcpStream>>) -> String {
    match result {
        Ok(_) => panic!("expected the handshake to fail"),
        Err(Error::Tls(m)) => format!("TLS: {m}"),
        Err(other) => panic!("expected a TLS error, got {other:?}"),
    }
}

async fn mutual_tls_succeeds(versions: &[&'static SupportedProtocolVersion], sec1: bool) {
    let ca = Ca::new("nerves-hub test CA");
    let server = ca.leaf(&["127.0.0.1", "localhost"], "server");
    let device = ca.leaf(&["device-1234"], "device-1234");
    let (addr, server_task) = serve_once(server_config(&server, Some(&ca), versions)).await;

    let key_pem = if sec1 {
        sec1_pem(&device.key)
    } else {
        device.key_pem()
    };
    let client = TlsClient::new(&TlsOptions {
        ca: mem(&ca.pem()),
        client_cert: mem(&device.cert_pem),
        client_key: mem(&key_pem),
        server_name: None,
        client_signer: None,
    })
    .expect("client config");
    let mut stream = handshake(&client, addr).await.expect("handshake");
    let mut reply = Vec::new();
    stream.read_to_end(&mut reply).await.expect("read");
    assert_eq!(reply, b"ok");

    let peer = server_task
        .await
        .expect("server task")
        .expect("server handshake");
    let peer = peer.expect("server saw a client certificate");
    assert_eq!(peer.first(), Some(&device.cert_der));
}

#[tokio::test]
async fn handshake_with_client_auth_succeeds() {
    mutual_tls_succeeds(BOTH, false).await;
}

#[tokio::test]
async fn handshake_with_client_auth_succeeds_over_tls12_with_sec1_key() {
    mutual_tls_succeeds(TLS12, true).await;
}

#[tokio::test]
async fn client_chain_is_sent_whole() {
    let root = Ca::new("root");
    let intermediate_key = KeyPair::generate().expect("key");
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(DnType::CommonName, "intermediate");
    let intermediate = Ca {
        issuer: CertifiedIssuer::signed_by(params, intermediate_key, &root.issuer)
            .expect("intermediate"),
    };
    let server = root.leaf(&["127.0.0.1"], "server");
    let device = intermediate.leaf(&["device"], "device");
    // The server trusts only the root, so it needs the intermediate from us.
    let (addr, server_task) = serve_once(server_config(&server, Some(&root), TLS12)).await;
    let chain = format!("{}{}", device.cert_pem, intermediate.pem());
    let client = TlsClient::new(&TlsOptions {
        ca: mem(&root.pem()),
        client_cert: mem(&chain),
        client_key: mem(&device.key_pem()),
        server_name: None,
        client_signer: None,
    })
    .expect("client config");
    let mut stream = handshake(&client, addr).await.expect("handshake");
    let mut reply = Vec::new();
    stream.read_to_end(&mut reply).await.expect("read");
    let peer = server_task
        .await
        .expect("server task")
        .expect("server handshake")
        .expect("client chain");
    assert_eq!(peer.len(), 2);
}

#[tokio::test]
async fn server_signed_by_another_ca_is_reported() {
    let ours = Ca::new("ours");
    let theirs = Ca::new("theirs");
    let server = theirs.leaf(&["127.0.0.1"], "server");
    let (addr, _server_task) = serve_once(server_config(&server, None, BOTH)).await;

    let scratch = Scratch::new();
    let ca_path = scratch.write("ca.pem", &ours.pem());
    let client = TlsClient::new(&TlsOptions {
        ca: Some(PemSource::File(ca_path.clone())),
        ..TlsOptions::default()
    })
    .expect("client config");
    assert_eq!(
        handshake_message(handshake(&client, addr).await),
        format!(
            "TLS: server certificate is not signed by any CA in {}",
            ca_path.display()
        )
    );
}

#[tokio::test]
async fn wrong_host_name_is_reported() {
    let ca = Ca::new("ca");
    let server = ca.leaf(&["device.example.com"], "server");
    let (addr, _server_task) = serve_once(server_config(&server, None, BOTH)).await;

    let client = client(&ca, None, Some("wrong.example.com"));
    let message = handshake_message(handshake(&client, addr).await);
    assert!(
        message.starts_with("TLS: server certificate is not valid for host \"wrong.example.com\""),
        "{message}"
    );
    assert!(
        message.contains("(it names device.example.com;"),
        "{message}"
    );
}

#[tokio::test]
async fn expired_server_certificate_is_reported() {
    let ca = Ca::new("ca");
    let server = ca.leaf_with(&["127.0.0.1"], "server", |params| {
        params.not_before = rcgen::date_time_ymd(2001, 1, 1);
        params.not_after = rcgen::date_time_ymd(2002, 1, 1);
    });
    let (addr, _server_task) = serve_once(server_config(&server, None, BOTH)).await;

    let client = client(&ca, None, None);
    let message = handshake_message(handshake(&client, addr).await);
    assert!(
        message.starts_with(
            "TLS: server certificate has expired (valid until 2002-01-01 00:00:00 UTC;"
        ),
        "{message}"
    );
}

#[tokio::test]
async fn missing_client_certificate_is_reported_over_tls12() {
    let ca = Ca::new("ca");
    let server = ca.leaf(&["127.0.0.1"], "server");
    let (addr, _server_task) = serve_once(server_config(&server, Some(&ca), TLS12)).await;

    let client = client(&ca, None, None);
    let message = handshake_message(handshake(&client, addr).await);
    assert!(
        message.starts_with("TLS: the server requires a client certificate"),
        "{message}"
    );
    assert!(message.contains("(alert: "), "{message}");
}

#[tokio::test]
async fn missing_client_certificate_is_reported_after_a_tls13_handshake() {
    let ca = Ca::new("ca");
    let server = ca.leaf(&["127.0.0.1"], "server");
    let (addr, _server_task) = serve_once(server_config(&server, Some(&ca), TLS13)).await;

    // In TLS 1.3 the client is done before the server judges its certificate.
    let client = client(&ca, None, None);
    let mut stream = handshake(&client, addr)
        .await
        .expect("client side completes");
    let mut buf = Vec::new();
    let err = stream
        .read_to_end(&mut buf)
        .await
        .expect_err("server rejects us");
    match client.stream_error(&err) {
        Some(Error::Tls(m)) => {
            assert!(m.contains("requires a client certificate"), "{m}");
            assert!(m.contains("(alert: certificate_required)"), "{m}");
        }
        other => panic!("expected a TLS error, got {other:?}"),
    }
    let plain = std::io::Error::other("unrelated");
    assert!(client.stream_error(&plain).is_none());
}

#[tokio::test]
async fn untrusted_client_certificate_is_rejected() {
    let ca = Ca::new("ca");
    let stranger = Ca::new("stranger");
    let server = ca.leaf(&["127.0.0.1"], "server");
    let device = stranger.leaf(&["device"], "device");
    let (addr, _server_task) = serve_once(server_config(&server, Some(&ca), TLS12)).await;

    let client = client(&ca, Some(&device), None);
    let message = handshake_message(handshake(&client, addr).await);
    assert!(
        message.starts_with("TLS: the server rejected our client certificate (alert: "),
        "{message}"
    );
}

#[tokio::test]
async fn connection_closed_during_handshake_is_retryable() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr");
    // Like NervesHub's rate limiter: accept, then close without a TLS alert.
    let server_task = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.expect("accept");
        drop(tcp);
    });
    let ca = Ca::new("ca");
    let client = client(&ca, None, None);
    let tcp = TcpStream::connect(addr).await.expect("tcp connect");
    server_task.await.expect("server task");
    assert_eq!(
        handshake_message(client.connect("127.0.0.1", tcp).await),
        "TLS: connection closed during handshake (server rate limit or TLS mismatch; will retry)"
    );
}

#[tokio::test]
async fn invalid_url_host_is_an_invalid_argument() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let ca = Ca::new("ca");
    let client = client(&ca, None, None);
    let tcp = TcpStream::connect(addr).await.expect("tcp connect");
    match client.connect("bad host", tcp).await {
        Err(Error::InvalidArgument(m)) => assert!(m.contains("bad host"), "{m}"),
        other => panic!("expected InvalidArgument, got {:?}", other.map(|_| ())),
    }
}

#[test]
fn client_certificate_alerts_say_what_to_fix() {
    let ca = Ca::new("ca");
    let device = ca.leaf(&["device"], "device");
    let client = client(&ca, Some(&device), None);
    let expired = client.describe_alert(AlertDescription::CertificateExpired);
    let untrusted = client.describe_alert(AlertDescription::UnknownCA);
    let other = client.describe_alert(AlertDescription::BadCertificate);
    assert!(
        expired.contains("renew the device certificate"),
        "{expired}"
    );
    assert!(
        untrusted.contains("does not trust its issuer"),
        "{untrusted}"
    );
    assert!(
        other.contains("check that the device or its CA is registered"),
        "{other}"
    );
    for message in [&expired, &untrusted, &other] {
        assert!(
            message.starts_with("the server rejected our client certificate (alert: "),
            "{message}"
        );
    }
}
