//! wss and mutual TLS against the dev server's own PKI.

mod common;

use common::*;
use nerves_hub_channel::{Error, Event, PemSource, Socket, SocketConfig, TlsOptions};
use nhc_devserver::DevServer;

fn wss_config(server: &DevServer, tls: TlsOptions) -> SocketConfig {
    let mut config = fast_config(&server.wss_url());
    config.tls = tls;
    config
}

#[tokio::test]
async fn mutual_tls_connects_and_identifies_the_device() {
    let server = server().await;
    let sock = Socket::new(wss_config(&server, device_tls(&server))).unwrap();
    let chan = sock.channel("device", no_params()).unwrap();
    sock.connect().unwrap();
    chan.join().unwrap().await.unwrap().unwrap();
    let connections = server.control().connections().await;
    assert_eq!(connections.len(), 1);
    assert_eq!(connections[0].identity.as_deref(), Some("nhc-demo-0001"));
}

#[tokio::test]
async fn certificates_from_memory_work_too() {
    let server = server().await;
    let pki = server.pki();
    let read = |p: &std::path::Path| PemSource::Memory(std::fs::read(p).unwrap());
    let tls = TlsOptions {
        ca: Some(read(&pki.ca)),
        client_cert: Some(read(&pki.device_cert)),
        client_key: Some(read(&pki.device_key_sec1)),
        server_name: None,
        client_signer: None,
    };
    let sock = Socket::new(wss_config(&server, tls)).unwrap();
    sock.connect().unwrap();
    wait_for(&sock, "the connection", |e| *e == Event::Connected).await;
}

#[tokio::test]
async fn a_server_signed_by_another_ca_is_refused() {
    let server = server().await;
    let mut tls = device_tls(&server);
    tls.ca = Some(PemSource::File(server.pki().other_ca.clone()));
    let sock = Socket::new(wss_config(&server, tls)).unwrap();
    sock.connect().unwrap();
    let event = wait_for(&sock, "the TLS failure", |e| {
        matches!(e, Event::Disconnected { .. })
    })
    .await;
    let Event::Disconnected { reason, .. } = event else {
        unreachable!()
    };
    assert!(
        matches!(reason, Error::Tls(ref m) if m.contains("not signed by any CA")),
        "{reason}"
    );
}

#[tokio::test]
async fn a_missing_client_certificate_is_an_auth_error() {
    let server = server().await;
    let tls = TlsOptions {
        ca: Some(PemSource::File(server.pki().ca.clone())),
        ..TlsOptions::default()
    };
    let sock = Socket::new(wss_config(&server, tls)).unwrap();
    sock.connect().unwrap();
    let event = wait_for(&sock, "the auth error", |e| {
        matches!(e, Event::AuthError { .. })
    })
    .await;
    let Event::AuthError {
        error,
        reconnect_in,
    } = event
    else {
        unreachable!()
    };
    let Error::Auth { status, reason } = &error else {
        panic!("{error}")
    };
    assert_eq!(*status, 401);
    assert!(
        reason
            .as_deref()
            .is_some_and(|r| r.contains("no certificate")),
        "{error}"
    );
    assert!(
        reconnect_in.is_some(),
        "auth errors are retried at the slow end"
    );
    assert!(
        error
            .to_string()
            .contains("HTTP 401 (nh-connection-error-reason: "),
        "{error}"
    );
}

#[tokio::test]
async fn a_rogue_client_certificate_is_refused_in_the_handshake() {
    let server = server().await;
    let pki = server.pki();
    let mut tls = device_tls(&server);
    tls.client_cert = Some(PemSource::File(pki.rogue_cert.clone()));
    tls.client_key = Some(PemSource::File(pki.rogue_key.clone()));
    let sock = Socket::new(wss_config(&server, tls)).unwrap();
    sock.connect().unwrap();
    let event = wait_for(&sock, "the refusal", |e| {
        matches!(e, Event::Disconnected { .. })
    })
    .await;
    let Event::Disconnected { reason, .. } = event else {
        unreachable!()
    };
    assert_eq!(reason.kind(), "tls", "{reason}");
}

#[tokio::test]
async fn bad_pem_is_refused_before_any_connection() {
    let server = server().await;
    let mut tls = device_tls(&server);
    tls.client_key = Some(PemSource::Memory(
        b"-----BEGIN PRIVATE KEY-----\ngarbage\n".to_vec(),
    ));
    let err = Socket::new(wss_config(&server, tls))
        .err()
        .expect("refused");
    assert_eq!(err.kind(), "tls", "{err}");
    let mut tls = device_tls(&server);
    tls.ca = Some(PemSource::File("/nonexistent/ca.pem".into()));
    let err = Socket::new(wss_config(&server, tls))
        .err()
        .expect("refused");
    assert!(err.to_string().contains("/nonexistent/ca.pem"), "{err}");
}
