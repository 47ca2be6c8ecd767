//! Secrets never reach the log: with every `log` record captured at Trace,
//! tungstenite's own included, NH1 authentication (a refused secret
//! retried, then a good one), a download from a signed URL, a failed
//! download and a TLS client-key load leave no shared secret, signature,
//! signed-URL query or private key in any record, and a PKCS#11 token
//! opened with a wrong and then a right PIN leaves no PIN, and an HTTP
//! proxy refusing wrong credentials, then carrying the websocket and a
//! download with the right ones, leaves no proxy password (plain,
//! percent-encoded or in its `Proxy-Authorization` base64). One test,
//! because the logger is process-wide.

mod common;
#[path = "common/fixture_tools.rs"]
mod fixture_tools;
#[path = "common/softhsm_fixture.rs"]
mod softhsm_fixture;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{fast_config, joined_device_channel, no_params, wait_for};
use nerves_hub_channel::log_policy::may_leak_secrets;
use nerves_hub_channel::nerves_hub::nh1::{Nh1Auth, SharedSecret};
use nerves_hub_channel::nerves_hub::update::{
    start_update, DownloadOptions, SinkSpec, Stage, UpdateInfo, UpdateOptions, UpdateReporter,
    UpdateStatus,
};
use nerves_hub_channel::tls::TlsClient;
use nerves_hub_channel::{Event, HeaderProvider, PemSource, Socket, TlsOptions};
use nhc_devserver::{random_image, Config, DevServer, SharedSecretEntry};
use rcgen::{CertificateParams, KeyPair};
use serde_json::Value;

const PRODUCT_KEY: &str = "nhp_logcheck";
const PRODUCT_SECRET: &str = "LOGCHECKSECRETdoNotLogMe0123456789";
const WRONG_SECRET: &str = "WRONGSECRETdoNotLogMeEither987654";
const URL_SIGNATURE: &str = "SECRETSIGabcdef0123456789";
const PROXY_USER: &str = "proxyuser";
const PROXY_PASSWORD: &str = "PROXYPASS:doNotLog";
const PROXY_PASSWORD_ENCODED: &str = "PROXYPASS%3AdoNotLog";
const WRONG_PROXY_PASSWORD: &str = "WRONGPROXYPASSdoNotLog";

/// Every record at every level, formatted with its target. Those that
/// `log_policy::may_leak_secrets` tells loggers to drop (tungstenite's
/// frame traces) are kept too: the upgrade request, which carries the NH1
/// signature, is sent by this crate and never logged, so no record at all
/// may hold a secret here. They are also counted apart, to prove tungstenite
/// traced while the secrets were on the wire.
struct Capture {
    records: Mutex<Vec<String>>,
    dropped: Mutex<Vec<String>>,
}

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata) -> bool {
        true
    }
    fn log(&self, record: &log::Record) {
        let line = format!("{} {} {}", record.level(), record.target(), record.args());
        if may_leak_secrets(record.metadata()) {
            self.dropped.lock().expect("log lock").push(line.clone());
        }
        self.records.lock().expect("log lock").push(line);
    }
    fn flush(&self) {}
}

static CAPTURE: Capture = Capture {
    records: Mutex::new(Vec::new()),
    dropped: Mutex::new(Vec::new()),
};

/// Keeps every header set it handed out, to look for the signatures in the log.
struct Recording {
    inner: Nh1Auth,
    sent: Mutex<Vec<(String, String)>>,
}

impl HeaderProvider for Recording {
    fn headers(&self, server_date: Option<&str>) -> Vec<(String, String)> {
        let headers = self.inner.headers(server_date);
        self.sent.lock().expect("lock").extend(headers.clone());
        headers
    }
}

struct Ignore;

impl UpdateReporter for Ignore {
    fn status(&self, _: UpdateStatus) {}
    fn progress(&self, _: Stage, _: u8) {}
}

async fn nh1_connect(server: &DevServer, secret: &str, refused: bool) -> Arc<Recording> {
    let recording = Arc::new(Recording {
        inner: Nh1Auth::new(SharedSecret::new(PRODUCT_KEY, secret, "serial-logs")).expect("valid"),
        sent: Mutex::new(Vec::new()),
    });
    let mut config = fast_config(&server.device_socket_url());
    config.header_provider = Some(recording.clone());
    let sock = Socket::new(config).expect("config");
    let chan = sock.channel("device", no_params()).expect("channel");
    sock.connect().expect("connect");
    if refused {
        // Two refusals: the first attempt and one retry, each signed afresh.
        for _ in 0..2 {
            wait_for(&sock, "a 401", |e| matches!(e, Event::AuthError { .. })).await;
        }
    } else {
        chan.join()
            .expect("join sent")
            .await
            .expect("socket alive")
            .expect("join ok");
    }
    sock.disconnect().expect("disconnect");
    recording
}

async fn download(update: &Value) -> Result<(), String> {
    download_via(update, None).await
}

async fn download_via(
    update: &Value,
    proxy: Option<nerves_hub_channel::ProxyConfig>,
) -> Result<(), String> {
    let info = UpdateInfo::parse(update).expect("a valid update payload");
    let dir = std::env::temp_dir().join(format!("nhc-nosecrets-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    let options = UpdateOptions {
        sink: SinkSpec::File(dir.join("image.fw")),
        download: DownloadOptions {
            retry_delay: Duration::from_millis(5),
            proxy: proxy.clone(),
            ..DownloadOptions::default()
        },
    };
    log::info!("downloading with {:?}", options.download);
    let handle = start_update(info, options, Arc::new(Ignore)).expect("update starts");
    let result = tokio::time::timeout(Duration::from_secs(60), handle.outcome())
        .await
        .expect("the update ends in time");
    let _ = std::fs::remove_dir_all(&dir);
    result
}

/// Through the dev server's proxy: wrong credentials (refused, the error
/// logged as an application would, with the configuration), then the
/// right ones for the websocket and a download. The secrets to look for.
async fn through_an_authenticating_proxy(server: &DevServer, update: &Value) -> Vec<String> {
    use base64::Engine;
    use nerves_hub_channel::ProxyConfig;
    server.proxy().set_rules(nhc_devserver::ProxyRules {
        credentials: Some(format!("{PROXY_USER}:{PROXY_PASSWORD}")),
        ..Default::default()
    });
    let with = |password: &str| {
        server
            .proxy()
            .url()
            .replacen("http://", &format!("http://{PROXY_USER}:{password}@"), 1)
    };
    let mut config = fast_config(&server.device_socket_url());
    let auth = Nh1Auth::new(SharedSecret::new(
        PRODUCT_KEY,
        PRODUCT_SECRET,
        "serial-proxy",
    ));
    config.header_provider = Some(Arc::new(auth.expect("valid")));
    config.proxy = ProxyConfig::via(with(WRONG_PROXY_PASSWORD));
    let sock = Socket::new(config.clone()).expect("config");
    sock.connect().expect("connect");
    if let Event::Disconnected { reason, .. } =
        wait_for(&sock, "a 407", |e| matches!(e, Event::Disconnected { .. })).await
    {
        log::error!("connection failed: {reason}; {reason:?}; config {config:?}");
    }
    sock.disconnect().expect("disconnect");
    config.proxy = ProxyConfig::via(with(PROXY_PASSWORD_ENCODED));
    log::info!("connecting with {config:?}");
    let sock = joined_device_channel(config).await;
    sock.disconnect().expect("disconnect");
    download_via(update, Some(ProxyConfig::via(with(PROXY_PASSWORD_ENCODED))))
        .await
        .expect("the download through the proxy succeeds");
    let b64 = base64::engine::general_purpose::STANDARD;
    vec![
        PROXY_PASSWORD.into(),
        PROXY_PASSWORD_ENCODED.into(),
        WRONG_PROXY_PASSWORD.into(),
        b64.encode(format!("{PROXY_USER}:{PROXY_PASSWORD}")),
        b64.encode(format!("{PROXY_USER}:{WRONG_PROXY_PASSWORD}")),
    ]
}

/// A PKCS#11 key opened with a wrong PIN (refused), then with the right
/// PIN from a value, a file and the URI; the errors logged as an
/// application would. The PINs used, or `None` without SoftHSM2.
fn open_token_keys() -> Option<Vec<String>> {
    use nerves_hub_channel::{Pkcs11Key, Pkcs11Pin};
    use softhsm_fixture::*;
    let hsm = softhsm()?;
    let wrong = "WRONGPIN8642";
    let mut options = hsm.key(EC_LABEL);
    options.uri = format!("pkcs11:token={LOCKED_TOKEN};object={EC_LABEL}");
    options.pin = Some(Pkcs11Pin::Value(wrong.into()));
    let err = Pkcs11Key::open(&options).expect_err("a wrong PIN is refused");
    log::error!("PKCS#11 error as an application would log it: {err}; {options:?}");
    let good = hsm.key(EC_LABEL);
    let key = Pkcs11Key::open(&good).expect("the right PIN opens");
    log::info!("opened {key:?} with {good:?}");
    let mut in_uri = hsm.key(EC_LABEL);
    in_uri.pin = None;
    in_uri.uri = format!("{}?pin-value={PIN}", in_uri.uri);
    let key = Pkcs11Key::open(&in_uri).expect("the PIN from the URI opens");
    log::info!("opened {key:?} with {in_uri:?}");
    Some(vec![
        wrong.into(),
        format!("pin-value={PIN}"),
        format!("Value(\"{PIN}\")"),
    ])
}

/// A client certificate and key in files, plus a garbage key file.
fn load_client_keys() -> String {
    let key = KeyPair::generate().expect("key");
    let cert = CertificateParams::new(vec!["device".into()])
        .expect("params")
        .self_signed(&key)
        .expect("cert");
    let dir = std::env::temp_dir().join(format!("nhc-nosecrets-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("scratch dir");
    let key_pem = key.serialize_pem();
    std::fs::write(dir.join("key.pem"), &key_pem).expect("write key");
    std::fs::write(dir.join("cert.pem"), cert.pem()).expect("write cert");
    let mut options = TlsOptions {
        ca: Some(PemSource::Memory(cert.pem().into_bytes())),
        client_cert: Some(PemSource::File(dir.join("cert.pem"))),
        client_key: Some(PemSource::File(dir.join("key.pem"))),
        server_name: None,
        client_signer: None,
    };
    TlsClient::new(&options).expect("a matching key loads");
    // A key that is not PEM: its bytes must not be echoed in the error.
    let garbage =
        format!("-----BEGIN PRIVATE KEY-----\n{PRODUCT_SECRET}\n-----END PRIVATE KEY-----\n");
    options.client_key = Some(PemSource::Memory(garbage.into_bytes()));
    let Err(err) = TlsClient::new(&options) else {
        panic!("a garbage key must be refused");
    };
    log::error!("TLS error as an application would log it: {err}");
    let _ = std::fs::remove_dir_all(&dir);
    key_pem
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_key_signature_or_signed_query_is_ever_logged() {
    log::set_logger(&CAPTURE).expect("the only logger of this binary");
    log::set_max_level(log::LevelFilter::Trace);

    let server = DevServer::start(Config {
        shared_secrets: vec![SharedSecretEntry::new(PRODUCT_KEY, PRODUCT_SECRET, None)],
        ..Config::default()
    })
    .await
    .expect("dev server starts");

    let refused = nh1_connect(&server, WRONG_SECRET, true).await;
    let accepted = nh1_connect(&server, PRODUCT_SECRET, false).await;

    let answer = server
        .firmware()
        .add("logs", random_image(300_000, 3))
        .expect("firmware added");
    let mut update = answer["update"].clone();
    let url = update["firmware_url"].as_str().expect("url").to_owned();
    update["firmware_url"] = Value::String(format!("{url}?X-Amz-Signature={URL_SIGNATURE}"));
    download(&update)
        .await
        .expect("the signed download succeeds");
    update["firmware_url"] = Value::String(format!(
        "{}/firmware/missing?X-Amz-Signature={URL_SIGNATURE}",
        server.control_url()
    ));
    let failure = download(&update).await.expect_err("a missing image fails");
    log::error!("update failed: {failure}");
    let proxy_secrets = through_an_authenticating_proxy(&server, &answer["update"]).await;

    let key_pem = load_client_keys();
    let pins = open_token_keys();

    let records = CAPTURE.records.lock().expect("log lock").clone();
    assert!(
        !records.is_empty(),
        "nothing was logged: is the capture installed?"
    );
    let mut secrets: Vec<String> = vec![
        PRODUCT_SECRET.into(),
        WRONG_SECRET.into(),
        URL_SIGNATURE.into(),
        "X-Amz-Signature".into(),
    ];
    for recording in [&refused, &accepted] {
        for (name, value) in recording.sent.lock().expect("lock").iter() {
            if name == "x-nh-signature" {
                secrets.push(value.clone());
            }
        }
    }
    // Every base64 line of the private key.
    secrets.extend(
        key_pem
            .lines()
            .filter(|l| !l.starts_with("-----") && l.len() > 16)
            .map(str::to_owned),
    );
    assert!(secrets.len() > 6, "signatures and key lines were collected");
    secrets.extend(pins.into_iter().flatten());
    secrets.extend(proxy_secrets);
    // Trace was live in the websocket library during the signed upgrades,
    // so the check below covers its records too.
    let dropped = CAPTURE.dropped.lock().expect("log lock").clone();
    assert!(
        dropped.iter().any(|r| r.contains("frame")),
        "tungstenite traced no frame: was Trace enabled? {dropped:#?}"
    );
    // The proxy's refusal and configuration were logged, so the check covers them.
    assert!(
        records
            .iter()
            .any(|r| r.contains("refused the configured credentials") && r.contains("ProxyConfig")),
        "the proxy refusal was not logged"
    );
    for record in &records {
        for secret in &secrets {
            assert!(
                !record.contains(secret.as_str()),
                "a log record leaks {secret:?}: {record}"
            );
        }
    }
}
