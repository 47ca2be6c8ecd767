//! The wss listener and the generated PKI.

mod common;

use common::*;
use nhc_devserver::{Config, DevServer, DEVICE_CN, NO_CREDENTIALS};
use tokio_tungstenite::tungstenite::Error as WsError;

#[tokio::test]
async fn mutual_tls_identifies_the_device_by_its_cn() {
    let server = start().await;
    let pki = server.pki();
    for tls12_only in [false, true] {
        let config = tls_config(
            &pki.ca,
            Some((&pki.device_cert, &pki.device_key)),
            tls12_only,
        );
        let tls = tls_connect(&server, config).await.expect("TLS handshake");
        let (ws, _) = tokio_tungstenite::client_async(with_vsn(&server.wss_url()), tls)
            .await
            .expect("upgrade");
        let mut c = Client { ws };
        c.join("device", "1").await;
        let got = server
            .control()
            .wait_for("device", "phx_join", 1, WAIT)
            .await
            .unwrap();
        assert_eq!(got[0].identity.as_deref(), Some(DEVICE_CN));
        assert_eq!(
            server.control().connections().await[0].identity.as_deref(),
            Some(DEVICE_CN)
        );
        server.control().drop_connections().await;
        server.control().reset().await;
    }
}

#[tokio::test]
async fn the_sec1_key_and_issued_devices_work_too() {
    let server = start().await;
    let pki = server.pki();
    let config = tls_config(
        &pki.ca,
        Some((&pki.device_cert, &pki.device_key_sec1)),
        false,
    );
    let tls = tls_connect(&server, config)
        .await
        .expect("TLS handshake with the SEC1 key");
    tokio_tungstenite::client_async(with_vsn(&server.wss_url()), tls)
        .await
        .expect("upgrade");

    let (cert, key) = pki.issue_device("sensor 42/b").unwrap();
    assert!(cert.starts_with(&pki.dir) && key.starts_with(&pki.dir));
    let tls = tls_connect(&server, tls_config(&pki.ca, Some((&cert, &key)), false))
        .await
        .unwrap();
    let (ws, _) = tokio_tungstenite::client_async(with_vsn(&server.wss_url()), tls)
        .await
        .unwrap();
    let mut c = Client { ws };
    c.join("device", "1").await;
    let got = server
        .control()
        .wait_for("device", "phx_join", 1, WAIT)
        .await
        .unwrap();
    assert_eq!(got[0].identity.as_deref(), Some("sensor 42/b"));
}

#[tokio::test]
async fn no_client_certificate_gets_nerveshubs_401() {
    let server = start().await;
    let tls = tls_connect(&server, tls_config(&server.pki().ca, None, false))
        .await
        .expect("TLS handshake");
    let err = tokio_tungstenite::client_async(with_vsn(&server.wss_url()), tls)
        .await
        .expect_err("refused");
    let WsError::Http(response) = err else {
        panic!("expected an HTTP refusal, got {err}")
    };
    assert_eq!(response.status(), 401);
    let reason = response
        .headers()
        .get("nh-connection-error-reason")
        .expect("reason header");
    assert_eq!(reason, NO_CREDENTIALS);
    assert!(response.headers().contains_key("date"));
    assert_eq!(response.body().as_deref(), Some(NO_CREDENTIALS.as_bytes()));
}

#[tokio::test]
async fn a_certificate_from_another_ca_fails_the_handshake() {
    let server = start().await;
    let pki = server.pki();
    // With TLS 1.2 the client learns of the refusal inside the handshake.
    let config = tls_config(&pki.ca, Some((&pki.rogue_cert, &pki.rogue_key)), true);
    assert!(tls_connect(&server, config).await.is_err());
    // With TLS 1.3 the client's handshake completes first; the alert ends the upgrade.
    let config = tls_config(&pki.ca, Some((&pki.rogue_cert, &pki.rogue_key)), false);
    if let Ok(tls) = tls_connect(&server, config).await {
        let err = tokio_tungstenite::client_async(with_vsn(&server.wss_url()), tls)
            .await
            .expect_err("refused");
        assert!(
            !matches!(err, WsError::Http(_)),
            "a TLS failure, not HTTP: {err}"
        );
    }
    assert!(server.control().connections().await.is_empty());
}

#[tokio::test]
async fn a_client_trusting_another_ca_refuses_the_server() {
    let server = start().await;
    let pki = server.pki();
    let config = tls_config(
        &pki.other_ca,
        Some((&pki.device_cert, &pki.device_key)),
        false,
    );
    assert!(tls_connect(&server, config).await.is_err());
}

fn not_after(path: &std::path::Path) -> i64 {
    let pem = std::fs::read(path).unwrap();
    let (_, pem) = x509_parser::pem::parse_x509_pem(&pem).unwrap();
    let cert = pem.parse_x509().unwrap();
    cert.validity().not_after.timestamp()
}

#[tokio::test]
async fn the_pki_has_every_file_and_the_expired_cert_is_expired() {
    let server = start().await;
    let pki = server.pki().clone();
    for path in [
        &pki.ca,
        &pki.server_cert,
        &pki.server_key,
        &pki.device_cert,
        &pki.device_key,
        &pki.device_key_sec1,
        &pki.other_ca,
        &pki.rogue_cert,
        &pki.rogue_key,
        &pki.expired_server_cert,
        &pki.expired_server_key,
    ] {
        assert!(path.is_absolute() && path.is_file(), "{}", path.display());
    }
    assert!(std::fs::read_to_string(&pki.device_key_sec1)
        .unwrap()
        .starts_with("-----BEGIN EC PRIVATE KEY-----"));
    assert!(std::fs::read_to_string(&pki.device_key)
        .unwrap()
        .starts_with("-----BEGIN PRIVATE KEY-----"));
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert!(not_after(&pki.expired_server_cert) < now);
    assert!(not_after(&pki.server_cert) > now);
    // A temporary PKI goes away with its server.
    drop(server);
    assert!(!pki.dir.exists());
}

#[tokio::test]
async fn a_restart_keeps_the_ca_and_renews_the_rest() {
    let dir = std::env::temp_dir().join(format!("nhc-devserver-test-reuse-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let config = Config {
        pki_dir: Some(dir.clone()),
        ..Config::default()
    };
    let first = DevServer::start(config.clone()).await.unwrap();
    let ca = std::fs::read(&first.pki().ca).unwrap();
    let device = std::fs::read(&first.pki().device_cert).unwrap();
    let (issued, issued_key) = first.pki().issue_device("kept").unwrap();
    first.shutdown().await;

    let second = DevServer::start(config).await.unwrap();
    assert_eq!(std::fs::read(&second.pki().ca).unwrap(), ca);
    assert_ne!(std::fs::read(&second.pki().device_cert).unwrap(), device);
    // A device certificate from before the restart is still accepted.
    let tls = tls_connect(
        &second,
        tls_config(&second.pki().ca, Some((&issued, &issued_key)), false),
    )
    .await
    .unwrap();
    tokio_tungstenite::client_async(with_vsn(&second.wss_url()), tls)
        .await
        .expect("upgrade");
    second.shutdown().await;
    assert!(dir.exists(), "a given PKI directory is kept");
    let _ = std::fs::remove_dir_all(&dir);
}
