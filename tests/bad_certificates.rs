//! The bad-certificate matrix, end to end through `Socket`: every way the
//! TLS material can be wrong gives a TLS error whose message says which one
//! it is (and no other case's message says the same).
//!
//! src/tls/tests.rs checks the same mappings against a bare TLS handshake;
//! this runs them against the dev server's PKI as a device would meet them.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::*;
use nerves_hub_channel::{Error, Event, PemSource, Socket, TlsOptions};
use nhc_devserver::DevServer;
use rcgen::{date_time_ymd, CertificateParams, DnType, ExtendedKeyUsagePurpose, Issuer, KeyPair};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// When the problem shows.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Stage {
    /// `Socket::new` refuses the configuration: nothing touches the network.
    Config,
    /// The connection attempt fails and is reported as `Event::Disconnected`.
    Connect,
}

struct Case {
    name: &'static str,
    url: String,
    tls: TlsOptions,
    stage: Stage,
    /// A phrase of the message that tells what is wrong (and what to do).
    phrase: String,
}

fn file(path: &Path) -> Option<PemSource> {
    Some(PemSource::File(path.to_owned()))
}

fn device_tls(server: &DevServer) -> TlsOptions {
    let pki = server.pki();
    TlsOptions {
        ca: file(&pki.ca),
        client_cert: file(&pki.device_cert),
        client_key: file(&pki.device_key),
        server_name: None,
        client_signer: None,
    }
}

/// A device certificate signed by the dev CA whose validity ended in 2001.
fn expired_device_cert(server: &DevServer, dir: &Path) -> (PathBuf, PathBuf) {
    let pki = server.pki();
    let ca_pem = std::fs::read_to_string(&pki.ca).expect("dev CA readable");
    let ca_key_pem = std::fs::read_to_string(pki.dir.join("ca-key.pem")).expect("dev CA key");
    let ca_key = KeyPair::from_pem(&ca_key_pem).expect("dev CA key parses");
    let issuer = Issuer::from_ca_cert_pem(&ca_pem, ca_key).expect("dev CA parses");
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params
        .distinguished_name
        .push(DnType::CommonName, "nhc-expired-0001");
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    params.not_before = date_time_ymd(2000, 1, 1);
    params.not_after = date_time_ymd(2001, 1, 1);
    let key = KeyPair::generate().expect("key");
    let cert = params.signed_by(&key, &issuer).expect("signed");
    let (cert_path, key_path) = (
        dir.join("expired-device.pem"),
        dir.join("expired-device-key.pem"),
    );
    std::fs::write(&cert_path, cert.pem()).expect("write cert");
    std::fs::write(&key_path, key.serialize_pem()).expect("write key");
    (cert_path, key_path)
}

/// A TLS listener on 127.0.0.1 presenting the dev PKI's expired server
/// certificate; the handshake is all it does. Returns its port.
async fn expired_server(server: &DevServer) -> u16 {
    let pki = server.pki();
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_file_iter(&pki.expired_server_cert)
            .expect("expired-server.pem readable")
            .collect::<Result<_, _>>()
            .expect("expired-server.pem parses");
    let key = PrivateKeyDer::from_pem_file(&pki.expired_server_key).expect("its key");
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .expect("server config");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("local addr").port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let _ = acceptor.accept(tcp).await;
            });
        }
    });
    port
}

/// The error a case ends with, at the stage it shows.
async fn failure(case: &Case) -> Error {
    let mut config = fast_config(&case.url);
    config.tls = case.tls.clone();
    let sock = match Socket::new(config) {
        Err(e) => {
            assert_eq!(
                case.stage,
                Stage::Config,
                "{}: refused early: {e}",
                case.name
            );
            return e;
        }
        Ok(sock) => sock,
    };
    assert_eq!(case.stage, Stage::Connect, "{}: config accepted", case.name);
    sock.connect().expect("connect");
    let event = wait_for(&sock, case.name, |e| {
        matches!(e, Event::Disconnected { .. } | Event::AuthError { .. })
    })
    .await;
    sock.close();
    match event {
        Event::Disconnected {
            reason,
            reconnect_in,
        } => {
            assert!(reconnect_in.is_some(), "{}: not retried", case.name);
            reason
        }
        other => panic!("{}: expected a TLS failure, got {other:?}", case.name),
    }
}

fn cases(server: &DevServer, scratch: &Path, expired_port: u16) -> Vec<Case> {
    let pki = server.pki();
    let wss = server.wss_url();
    let (expired_cert, expired_key) = expired_device_cert(server, scratch);
    let garbage = scratch.join("garbage.pem");
    std::fs::write(&garbage, "this is not a certificate\n").expect("write");
    let bad_base64 = scratch.join("bad-base64.pem");
    std::fs::write(
        &bad_base64,
        "-----BEGIN CERTIFICATE-----\n!!not base64!!\n-----END CERTIFICATE-----\n",
    )
    .expect("write");
    let missing = scratch.join("missing.pem");
    let shown = |p: &Path| p.display().to_string();

    let with = |adjust: &dyn Fn(&mut TlsOptions)| {
        let mut tls = device_tls(server);
        adjust(&mut tls);
        tls
    };
    vec![
        Case {
            name: "wrong CA",
            url: wss.clone(),
            tls: with(&|t| t.ca = file(&pki.other_ca)),
            stage: Stage::Connect,
            phrase: format!(
                "server certificate is not signed by any CA in {}",
                shown(&pki.other_ca)
            ),
        },
        Case {
            name: "expired server certificate",
            url: format!("wss://127.0.0.1:{expired_port}/socket/websocket"),
            tls: device_tls(server),
            stage: Stage::Connect,
            phrase: "server certificate has expired (valid until 2001-01-01".into(),
        },
        Case {
            name: "wrong hostname",
            url: wss.replace("localhost", "127.0.0.1"),
            tls: with(&|t| t.server_name = Some("devices.example.com".into())),
            stage: Stage::Connect,
            phrase: "server certificate is not valid for host \"devices.example.com\" (it names localhost".into(),
        },
        Case {
            name: "expired client certificate",
            url: wss.clone(),
            tls: with(&|t| {
                t.client_cert = file(&expired_cert);
                t.client_key = file(&expired_key);
            }),
            stage: Stage::Connect,
            phrase: "rejected our client certificate (alert: certificate_expired); renew".into(),
        },
        Case {
            name: "rogue client certificate",
            url: wss.clone(),
            tls: with(&|t| {
                t.client_cert = file(&pki.rogue_cert);
                t.client_key = file(&pki.rogue_key);
            }),
            stage: Stage::Connect,
            phrase: "rejected our client certificate (alert: unknown_ca); the server does not trust its issuer".into(),
        },
        Case {
            name: "unreadable CA file",
            url: wss.clone(),
            tls: with(&|t| t.ca = file(&missing)),
            stage: Stage::Config,
            phrase: format!("cannot read CA file {}: No such file", shown(&missing)),
        },
        Case {
            name: "unreadable certificate file",
            url: wss.clone(),
            tls: with(&|t| t.client_cert = file(&missing)),
            stage: Stage::Config,
            phrase: format!(
                "cannot read client certificate file {}: No such file",
                shown(&missing)
            ),
        },
        Case {
            name: "unreadable key file",
            url: wss.clone(),
            tls: with(&|t| t.client_key = file(&missing)),
            stage: Stage::Config,
            phrase: format!("cannot read private key file {}: No such file", shown(&missing)),
        },
        Case {
            name: "garbage instead of PEM",
            url: wss.clone(),
            tls: with(&|t| t.client_cert = file(&garbage)),
            stage: Stage::Config,
            phrase: format!("{} contains no PEM certificate", shown(&garbage)),
        },
        Case {
            name: "PEM with broken base64",
            url: wss.clone(),
            tls: with(&|t| t.client_cert = file(&bad_base64)),
            stage: Stage::Config,
            phrase: format!(
                "{} is not valid PEM: a PEM block contains invalid base64",
                shown(&bad_base64)
            ),
        },
        Case {
            name: "garbage instead of a key",
            url: wss.clone(),
            tls: with(&|t| t.client_key = file(&garbage)),
            stage: Stage::Config,
            phrase: format!("{} contains no private key", shown(&garbage)),
        },
        Case {
            name: "key not matching the certificate",
            url: wss.clone(),
            tls: with(&|t| t.client_key = file(&pki.rogue_key)),
            stage: Stage::Config,
            phrase: format!(
                "the private key in {} does not match the certificate in {}",
                shown(&pki.rogue_key),
                shown(&pki.device_cert)
            ),
        },
    ]
}

#[tokio::test]
async fn every_bad_certificate_gets_its_own_actionable_tls_error() {
    let server = server().await;
    let scratch = server.pki().dir.join("bad-certificates");
    std::fs::create_dir_all(&scratch).expect("scratch dir");
    let expired_port = expired_server(&server).await;
    let cases = cases(&server, &scratch, expired_port);

    let mut messages = Vec::new();
    for case in &cases {
        let error = failure(case).await;
        assert!(
            matches!(error, Error::Tls(_)),
            "{}: expected Error::Tls, got {error:?}",
            case.name
        );
        let message = error.to_string();
        println!("{:<34} {message}", case.name);
        assert!(
            message.contains(&case.phrase),
            "{}: {message:?} lacks {:?}",
            case.name,
            case.phrase
        );
        messages.push(message);
    }
    // Distinct: no case's phrase fits another case's message.
    for (i, case) in cases.iter().enumerate() {
        for (j, message) in messages.iter().enumerate() {
            assert!(
                i == j || !message.contains(&case.phrase),
                "{:?} and {:?} are indistinguishable: {message}",
                case.name,
                cases[j].name
            );
        }
    }
}
