//! Keys that never leave their chip: a SoftHSM2 token (EC P-256 and RSA keys
//! generated on the token, certificates issued from CSRs by the dev server's
//! CA) joining over mutual TLS, every token failure mode, and application
//! signers (the Rust side of the C and Python callbacks): failing, timing
//! out, and slow without stalling other sockets on the same I/O thread.

mod common;
#[path = "common/pkcs11_shim.rs"]
mod pkcs11_shim;
#[path = "common/softhsm_fixture.rs"]
mod softhsm_fixture;
#[path = "common/tpm_fixture.rs"]
mod tpm_fixture;

use std::path::PathBuf;
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use common::*;
use nerves_hub_channel::{
    Error, Event, ExternalKey, KeyAlgorithm, KeySigner, PemSource, Pkcs11Key, Pkcs11KeyOptions,
    Pkcs11Pin, SignRequest, SignatureAlgorithm, Socket, SocketConfig, TlsOptions,
};
use nhc_devserver::DevServer;
use pkcs11_shim::FaultShim;
use ring::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::PrivatePkcs8KeyDer;
use softhsm_fixture::*;
use tpm_fixture::{tpm, TokenCsrKey};

fn wss_config(server: &DevServer, cert: PathBuf, key: ExternalKey) -> SocketConfig {
    let mut config = fast_config(&server.wss_url());
    config.tls = TlsOptions {
        ca: Some(PemSource::File(server.pki().ca.clone())),
        client_cert: Some(PemSource::File(cert)),
        client_signer: Some(key),
        ..TlsOptions::default()
    };
    config
}

async fn joins_as(server: &DevServer, config: SocketConfig, cn: &str) -> Socket {
    let sock = Socket::new(config).expect("socket");
    let chan = sock.channel("device", no_params()).unwrap();
    sock.connect().unwrap();
    chan.join().unwrap().await.unwrap().expect("joined");
    let connections = server.control().connections().await;
    assert!(
        connections
            .iter()
            .any(|c| c.identity.as_deref() == Some(cn)),
        "{connections:?}"
    );
    sock
}

fn open_error(options: &Pkcs11KeyOptions) -> String {
    match Pkcs11Key::open(options) {
        Ok(_) => panic!("{options:?} must be refused"),
        Err(e) => e.to_string(),
    }
}

async fn tls_failure(sock: &Socket) -> String {
    let event = wait_for(sock, "the TLS failure", |e| {
        matches!(e, Event::Disconnected { .. })
    })
    .await;
    match event {
        Event::Disconnected {
            reason: Error::Tls(message),
            ..
        } => message,
        other => panic!("expected a TLS error, got {other:?}"),
    }
}

#[tokio::test]
async fn an_ec_key_on_a_pkcs11_token_joins_over_mutual_tls() {
    let Some(hsm) = softhsm() else { return };
    let server = server().await;
    let cert = hsm.device_cert(server.pki(), EC_LABEL);
    let key = Pkcs11Key::open(&hsm.key(EC_LABEL)).expect("the token key opens");
    assert_eq!(key.algorithm(), KeyAlgorithm::EcdsaP256);
    let config = wss_config(&server, cert, ExternalKey::new(key));
    joins_as(&server, config, &SoftHsm::cn(EC_LABEL)).await;
}

#[tokio::test]
async fn an_rsa_key_on_a_pkcs11_token_joins() {
    let Some(hsm) = softhsm() else { return };
    let server = server().await;
    let cert = hsm.device_cert(server.pki(), RSA_LABEL);
    let key = Pkcs11Key::open(&hsm.key(RSA_LABEL)).expect("the token key opens");
    assert_eq!(key.algorithm(), KeyAlgorithm::Rsa);
    let config = wss_config(&server, cert, ExternalKey::new(key));
    joins_as(&server, config, &SoftHsm::cn(RSA_LABEL)).await;
}

/// TPM 2.0 through tpm2-pkcs11 on swtpm: the key generated in the TPM, the
/// CSR signed there through our PKCS#11 code, the certificate issued by the
/// dev server's CA, then a join over mutual TLS.
#[tokio::test]
async fn an_ec_key_in_a_tpm_joins_over_mutual_tls() {
    let Some(tpm) = tpm() else { return };
    let server = server().await;
    let key = Pkcs11Key::open(&tpm.key()).expect("the TPM key opens");
    assert_eq!(key.algorithm(), KeyAlgorithm::EcdsaP256);
    let cn = "nhc-tpm-device";
    let csr = TokenCsrKey::new(&*key, &tpm.public_key()).csr(cn);
    let cert = server
        .pki()
        .issue_device_for_csr(cn, &csr)
        .expect("the dev CA signs the TPM's CSR");
    let config = wss_config(&server, cert, ExternalKey::new(key));
    joins_as(&server, config, cn).await;
}

#[tokio::test]
async fn the_pin_may_come_from_a_file_or_an_environment_variable() {
    let Some(hsm) = softhsm() else { return };
    let pin_file = hsm.path("pin.txt");
    std::fs::write(&pin_file, format!("{PIN}\n")).unwrap();
    let mut options = hsm.key(EC_LABEL);
    options.pin = Some(Pkcs11Pin::File(pin_file));
    Pkcs11Key::open(&options).expect("PIN from a file");
    std::env::set_var("NHC_TEST_TOKEN_PIN", PIN);
    options.pin = Some(Pkcs11Pin::Env("NHC_TEST_TOKEN_PIN".into()));
    Pkcs11Key::open(&options).expect("PIN from the environment");
    // And from the URI (RFC 7512 pin-value), module path included.
    let uri_only = Pkcs11KeyOptions {
        module: None,
        uri: format!(
            "pkcs11:token={TOKEN};object={EC_LABEL}?pin-value={PIN}&module-path={}",
            hsm.module.display()
        ),
        pin: None,
    };
    Pkcs11Key::open(&uri_only).expect("PIN and module from the URI");
}

#[test]
fn every_token_failure_is_a_clear_error() {
    let Some(hsm) = softhsm() else { return };
    let good = hsm.key(EC_LABEL);

    let mut wrong_pin = good.clone();
    wrong_pin.uri = format!("pkcs11:token={LOCKED_TOKEN};object={EC_LABEL}");
    wrong_pin.pin = Some(Pkcs11Pin::Value("9999".into()));
    let message = open_error(&wrong_pin);
    assert!(message.contains("CKR_PIN_INCORRECT"), "{message}");
    assert!(message.contains("not retried"), "{message}");
    assert!(!message.contains("9999"), "{message}");

    let mut no_module = good.clone();
    no_module.module = Some("/nonexistent/libnothing.so".into());
    let message = open_error(&no_module);
    assert!(
        message.contains("PKCS#11 module /nonexistent/libnothing.so does not exist"),
        "{message}"
    );

    let mut not_a_module = good.clone();
    not_a_module.module = Some(hsm.path("softhsm2.conf"));
    let message = open_error(&not_a_module);
    assert!(message.contains("cannot load PKCS#11 module"), "{message}");

    let mut bad_uri = good.clone();
    bad_uri.uri = format!("pkcs11:token={TOKEN};label={EC_LABEL}");
    let message = open_error(&bad_uri);
    assert!(
        message.contains("invalid PKCS#11 URI: unsupported path attribute \"label\""),
        "{message}"
    );

    let mut no_key = good.clone();
    no_key.uri = format!("pkcs11:token={TOKEN};object=no-such-key");
    let message = open_error(&no_key);
    assert!(
        message.contains("no private key labelled \"no-such-key\""),
        "{message}"
    );

    let mut no_token = good.clone();
    no_token.uri = "pkcs11:token=absent;object=device".into();
    let message = open_error(&no_token);
    assert!(
        message.contains("no token matching the token with token=\"absent\" is present"),
        "{message}"
    );

    let mut no_pin = good.clone();
    no_pin.uri = format!("pkcs11:token={LOCKED_TOKEN};object={EC_LABEL}");
    no_pin.pin = None;
    let message = open_error(&no_pin);
    assert!(message.contains("give the PIN"), "{message}");

    let mut unset_env = good;
    unset_env.pin = Some(Pkcs11Pin::Env("NHC_TEST_UNSET_PIN_VARIABLE".into()));
    let message = open_error(&unset_env);
    assert!(
        message.contains("NHC_TEST_UNSET_PIN_VARIABLE is not set"),
        "{message}"
    );
}

#[tokio::test]
async fn a_token_key_that_does_not_match_the_certificate_is_a_configuration_error() {
    let Some(hsm) = softhsm() else { return };
    let server = server().await;
    // The dev server's PEM device certificate, with the token's key.
    let key = Pkcs11Key::open(&hsm.key(EC_LABEL)).expect("opens");
    let config = wss_config(
        &server,
        server.pki().device_cert.clone(),
        ExternalKey::new(key),
    );
    let message = Socket::new(config).err().expect("refused").to_string();
    assert!(
        message.contains("does not match the certificate"),
        "{message}"
    );
}

/// The next TLS error, past disconnects for other reasons (a dropped connection).
async fn next_tls_error(sock: &Socket) -> String {
    let event = wait_for(sock, "a TLS failure", |e| {
        matches!(
            e,
            Event::Disconnected {
                reason: Error::Tls(_),
                ..
            }
        )
    })
    .await;
    match event {
        Event::Disconnected {
            reason: Error::Tls(message),
            ..
        } => message,
        other => unreachable!("{other:?}"),
    }
}

/// A token pulled out while the device is joined (the fault shim answers as
/// a reader without its card) and put back: a clear TLS error, the token
/// retried only once per token backoff step, then the device joins again
/// with a fresh session.
#[tokio::test]
async fn a_token_removed_then_inserted_again_fails_clearly_then_joins_again() {
    let Some(hsm) = softhsm() else { return };
    let shim = FaultShim::build(&hsm.dir, &hsm.module);
    let server = server().await;
    let cert = hsm.device_cert(server.pki(), EC_LABEL);
    let mut options = hsm.key(EC_LABEL);
    options.module = Some(shim.module.clone());
    let key = Pkcs11Key::open(&options).expect("the token key opens through the shim");
    let config = wss_config(&server, cert, ExternalKey::new(key));
    let cn = SoftHsm::cn(EC_LABEL);
    let sock = joins_as(&server, config, &cn).await;

    shim.remove_token();
    assert_eq!(server.control().drop_connections().await, 1);
    // The old session answers CKR_DEVICE_REMOVED, reopening finds no token.
    let first = next_tls_error(&sock).await;
    let absent = format!(
        "token unavailable: no token matching the token with token=\"{TOKEN}\" is present (is it inserted?)"
    );
    assert!(first.contains(&absent), "{first}");
    assert!(!first.contains("next try in"), "{first}");
    // The socket retries within 100 ms; the token is not asked again before
    // its own backoff step (1 s) passed.
    let second = next_tls_error(&sock).await;
    assert!(
        second.contains(&format!("{absent}; next try in 1 s")),
        "{second}"
    );

    shim.insert_token();
    wait_for(&sock, "the rejoin with the token back", is_joined("device")).await;
    let connections = server.control().connections().await;
    assert!(
        connections
            .iter()
            .any(|c| c.identity.as_deref() == Some(cn.as_str())),
        "{connections:?}"
    );

    // Pulled out and put back between two handshakes: the session from
    // before is invalid (CKR_SESSION_HANDLE_INVALID) and is reopened at
    // once, without a failed attempt.
    shim.remove_token();
    shim.insert_token();
    assert_eq!(server.control().drop_connections().await, 1);
    wait_for(&sock, "the rejoin with a reopened session", |e| {
        assert!(
            !matches!(
                e,
                Event::Disconnected {
                    reason: Error::Tls(_),
                    ..
                }
            ),
            "{e:?}"
        );
        is_joined("device")(e)
    })
    .await;
}

/// A Rust signer holding the dev server's device key in memory: what a C
/// or Python callback does with its secure element's SDK.
struct AppSigner {
    key: EcdsaKeyPair,
    /// When set, each signature waits for a go-ahead (a slow element).
    gate: Option<Mutex<mpsc::Receiver<()>>>,
    /// Signals that a signature was requested.
    asked: Option<Mutex<mpsc::Sender<()>>>,
    fail: bool,
}

impl AppSigner {
    fn new(server: &DevServer) -> AppSigner {
        let pem = std::fs::read(&server.pki().device_key).unwrap();
        let der = PrivatePkcs8KeyDer::from_pem_slice(&pem).unwrap();
        let rng = ring::rand::SystemRandom::new();
        let key = EcdsaKeyPair::from_pkcs8(
            &ECDSA_P256_SHA256_FIXED_SIGNING,
            der.secret_pkcs8_der(),
            &rng,
        )
        .unwrap();
        AppSigner {
            key,
            gate: None,
            asked: None,
            fail: false,
        }
    }
}

impl KeySigner for AppSigner {
    fn algorithm(&self) -> KeyAlgorithm {
        KeyAlgorithm::EcdsaP256
    }
    fn describe(&self) -> String {
        "the test's signer".into()
    }
    fn sign(&self, request: &SignRequest<'_>) -> Result<Vec<u8>, String> {
        assert_eq!(request.algorithm, SignatureAlgorithm::EcdsaP256Sha256);
        if let Some(asked) = &self.asked {
            let _ = asked.lock().unwrap().send(());
        }
        if let Some(gate) = &self.gate {
            let _ = gate.lock().unwrap().recv();
        }
        if self.fail {
            return Err("the secure element is busy".into());
        }
        let rng = ring::rand::SystemRandom::new();
        let signature = self.key.sign(&rng, request.message).map_err(|_| "sign")?;
        Ok(signature.as_ref().to_vec())
    }
}

#[tokio::test]
async fn an_application_signer_joins() {
    let server = server().await;
    let signer = Arc::new(AppSigner::new(&server));
    let config = wss_config(
        &server,
        server.pki().device_cert.clone(),
        ExternalKey::new(signer),
    );
    joins_as(&server, config, nhc_devserver::DEVICE_CN).await;
}

#[tokio::test]
async fn a_failing_signer_is_a_tls_error_on_that_attempt() {
    let server = server().await;
    let mut signer = AppSigner::new(&server);
    signer.fail = true;
    let config = wss_config(
        &server,
        server.pki().device_cert.clone(),
        ExternalKey::new(Arc::new(signer)),
    );
    let sock = Socket::new(config).unwrap();
    sock.connect().unwrap();
    let message = tls_failure(&sock).await;
    assert!(
        message.contains(
            "signing with the test's signer (ecdsa_secp256r1_sha256) failed: the secure element is busy"
        ),
        "{message}"
    );
}

#[tokio::test]
async fn a_signer_that_never_answers_times_out_and_a_slow_one_blocks_no_other_socket() {
    let server = server().await;
    let (go_tx, go_rx) = mpsc::channel();
    let (asked_tx, asked_rx) = mpsc::channel();
    let mut signer = AppSigner::new(&server);
    signer.gate = Some(Mutex::new(go_rx));
    signer.asked = Some(Mutex::new(asked_tx));
    let mut key = ExternalKey::new(Arc::new(signer));
    key.timeout = Duration::from_millis(300);
    let slow = Socket::new(wss_config(&server, server.pki().device_cert.clone(), key)).unwrap();
    slow.connect().unwrap();
    // The slow socket's handshake now waits inside the signer...
    tokio::task::spawn_blocking(move || asked_rx.recv_timeout(Duration::from_secs(30)))
        .await
        .unwrap()
        .expect("the signer is asked to sign");
    // ...while a second socket on the same (only) I/O thread connects, joins
    // and gets a reply.
    let mut other = fast_config(&server.wss_url());
    other.tls = TlsOptions {
        ca: Some(PemSource::File(server.pki().ca.clone())),
        client_cert: Some(PemSource::File(server.pki().device_cert.clone())),
        client_key: Some(PemSource::File(server.pki().device_key.clone())),
        ..TlsOptions::default()
    };
    let other = Socket::new(other).unwrap();
    let chan = other.channel("room:keys", no_params()).unwrap();
    other.connect().unwrap();
    chan.join()
        .unwrap()
        .await
        .unwrap()
        .expect("joined meanwhile");
    // The signer never answers in time: a TLS error, not a hang.
    let message = tls_failure(&slow).await;
    assert!(message.contains("no signature within 300 ms"), "{message}");
    drop(go_tx);
}
