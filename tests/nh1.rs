//! NH1 shared-secret authentication end to end: the client's signatures
//! against the dev server's independent verification, refusals as
//! `Event::AuthError`, and recovery from a device clock behind the server's.

mod common;

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::*;
use nerves_hub_channel::nerves_hub::nh1::{Clock, Nh1Auth, Nh1Digest, SharedSecret};
use nerves_hub_channel::{
    Backoff, Error, Event, HeaderProvider, PemSource, Socket, SocketConfig, TlsOptions,
};
use nhc_devserver::{Config, DevServer, SharedSecretEntry, NO_CREDENTIALS};

const PRODUCT_KEY: &str = "nhp_4kR9sWq2ZxY7vB3nM8tL1pD6fG0hJ5cK2eA9uI4oQ7y";
const PRODUCT_SECRET: &str = "Zm9vYmFyYmF6cXV4cXV1eGNvcmdlZ3JhdWx0Z2FycGx5";
const DEVICE_KEY: &str = "nhd_8pL2kW5qR9tY3vB7nM1xZ4cF6gH0jD2sA8eU5iO3wQ1";
const DEVICE_SECRET: &str = "cXV4Y29yZ2VncmF1bHRnYXJwbHl3YWxkb2ZyZWRwbHVn";

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

/// A device clock `offset` seconds from the real one.
fn clock(offset: i64) -> Clock {
    Arc::new(move || unix_now().saturating_add_signed(offset))
}

async fn nh1_server() -> DevServer {
    DevServer::start(Config {
        shared_secrets: vec![
            SharedSecretEntry::new(PRODUCT_KEY, PRODUCT_SECRET, None),
            SharedSecretEntry::new(DEVICE_KEY, DEVICE_SECRET, Some("dev-1".into())),
        ],
        ..Config::default()
    })
    .await
    .expect("dev server starts")
}

/// The mount nerves_hub_link uses with shared secrets.
fn device_socket_url(url: &str) -> String {
    url.replace("/socket/websocket", "/device-socket/websocket")
}

fn nh1_config(url: &str, provider: Arc<dyn HeaderProvider>) -> SocketConfig {
    let mut config = fast_config(&device_socket_url(url));
    config.header_provider = Some(provider);
    config
}

fn auth(secret: SharedSecret, offset: i64) -> Arc<Nh1Auth> {
    Arc::new(Nh1Auth::with_clock(secret, clock(offset)).expect("valid secret"))
}

/// Connects, joins `device`, and returns the identity the server saw.
async fn join_device(server: &DevServer, sock: &Socket) -> Option<String> {
    connect_and_join(sock, "device").await;
    let connections = server.control().connections().await;
    assert_eq!(connections.len(), 1, "{connections:?}");
    connections[0].identity.clone()
}

fn auth_error(event: Event) -> (u16, Option<String>) {
    match event {
        Event::AuthError {
            error: Error::Auth { status, reason },
            reconnect_in,
        } => {
            assert!(reconnect_in.is_some(), "auth errors are retried");
            (status, reason)
        }
        other => panic!("expected an auth error, got {other:?}"),
    }
}

async fn next_auth_error(sock: &Socket) -> (u16, Option<String>) {
    auth_error(
        wait_for(sock, "an auth error", |e| {
            matches!(e, Event::AuthError { .. } | Event::Connected)
        })
        .await,
    )
}

#[tokio::test]
async fn a_product_key_connects_any_identifier_and_joins() {
    let server = nh1_server().await;
    let secret = SharedSecret::new(PRODUCT_KEY, PRODUCT_SECRET, "serial-0042");
    let sock = Socket::new(nh1_config(&server.ws_url(), auth(secret, 0))).expect("config");
    assert_eq!(
        join_device(&server, &sock).await.as_deref(),
        Some("serial-0042")
    );
}

#[tokio::test]
async fn a_device_key_connects_as_its_device() {
    let server = nh1_server().await;
    let secret = SharedSecret::new(DEVICE_KEY, DEVICE_SECRET, "dev-1");
    let sock = Socket::new(nh1_config(&server.ws_url(), auth(secret, 0))).expect("config");
    assert_eq!(join_device(&server, &sock).await.as_deref(), Some("dev-1"));
}

#[tokio::test]
async fn a_device_key_with_another_identifier_is_an_auth_error() {
    let server = nh1_server().await;
    let secret = SharedSecret::new(DEVICE_KEY, DEVICE_SECRET, "dev-2");
    let sock = Socket::new(nh1_config(&server.ws_url(), auth(secret, 0))).expect("config");
    sock.connect().expect("connect");
    // NervesHub answers every refused credential with a bare 401.
    assert_eq!(next_auth_error(&sock).await, (401, None));
    assert!(server.control().connections().await.is_empty());
}

/// Records what each connection attempt sent.
struct Recording {
    inner: Nh1Auth,
    sent: Mutex<Vec<Vec<(String, String)>>>,
}

impl HeaderProvider for Recording {
    fn headers(&self, server_date: Option<&str>) -> Vec<(String, String)> {
        let headers = self.inner.headers(server_date);
        self.sent.lock().expect("lock").push(headers.clone());
        headers
    }

    fn refused(&self, server_date: Option<&str>) -> bool {
        self.inner.refused(server_date)
    }
}

fn value<'a>(headers: &'a [(String, String)], name: &str) -> &'a str {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map_or("", |(_, v)| v.as_str())
}

#[tokio::test]
async fn a_wrong_secret_is_refused_and_every_attempt_is_signed_afresh() {
    let server = nh1_server().await;
    let secret = SharedSecret::new(PRODUCT_KEY, "not-the-secret", "serial-1");
    // A device clock that ticks one second per attempt, so fresh signatures differ.
    let ticks = Arc::new(std::sync::atomic::AtomicU64::new(unix_now() - 10));
    let tick = ticks.clone();
    let clock: Clock = Arc::new(move || tick.fetch_add(1, std::sync::atomic::Ordering::SeqCst));
    let recording = Arc::new(Recording {
        inner: Nh1Auth::with_clock(secret, clock).expect("valid"),
        sent: Mutex::new(Vec::new()),
    });
    let sock = Socket::new(nh1_config(&server.ws_url(), recording.clone())).expect("config");
    sock.connect().expect("connect");
    assert_eq!(next_auth_error(&sock).await, (401, None));
    assert_eq!(next_auth_error(&sock).await, (401, None));
    sock.close();
    let sent = recording.sent.lock().expect("lock").clone();
    assert!(sent.len() >= 2, "one signing per attempt: {}", sent.len());
    assert_ne!(value(&sent[0], "x-nh-time"), value(&sent[1], "x-nh-time"));
    assert_ne!(
        value(&sent[0], "x-nh-signature"),
        value(&sent[1], "x-nh-signature")
    );
}

#[tokio::test]
async fn a_key_added_at_runtime_is_accepted() {
    let server = nh1_server().await;
    let key = "nhp_runtime0000000000000000000000000000000000";
    server
        .add_shared_secret(SharedSecretEntry::new(key, "runtime-secret", None))
        .expect("valid entry");
    let secret = SharedSecret::new(key, "runtime-secret", "late-device");
    let sock = Socket::new(nh1_config(&server.ws_url(), auth(secret, 0))).expect("config");
    assert_eq!(
        join_device(&server, &sock).await.as_deref(),
        Some("late-device")
    );
}

/// Waits for the first `Connected`, counting the auth errors before it.
async fn auth_errors_before_connected(sock: &Socket) -> usize {
    let mut refusals = 0;
    loop {
        match wait_for(sock, "a connection", |e| {
            matches!(e, Event::AuthError { .. } | Event::Connected)
        })
        .await
        {
            Event::Connected => return refusals,
            other => {
                auth_error(other);
                refusals += 1;
            }
        }
    }
}

#[tokio::test]
async fn a_device_clock_behind_fails_once_then_uses_the_server_date() {
    let server = nh1_server().await;
    let secret = SharedSecret::new(PRODUCT_KEY, PRODUCT_SECRET, "no-rtc");
    // Five minutes behind: far outside the 90 s window.
    let sock = Socket::new(nh1_config(&server.ws_url(), auth(secret, -300))).expect("config");
    sock.connect().expect("connect");
    assert_eq!(auth_errors_before_connected(&sock).await, 1);
}

#[tokio::test]
async fn a_server_clock_ahead_is_recovered_the_same_way() {
    let server = nh1_server().await;
    server.set_clock_skew(3600);
    let secret = SharedSecret::new(DEVICE_KEY, DEVICE_SECRET, "dev-1");
    let sock = Socket::new(nh1_config(&server.ws_url(), auth(secret, 0))).expect("config");
    sock.connect().expect("connect");
    assert_eq!(auth_errors_before_connected(&sock).await, 1);
    // The estimate is kept: a reconnect after a drop needs no second refusal.
    server.control().drop_connections().await;
    assert_eq!(auth_errors_before_connected(&sock).await, 0);
}

/// The slow end of this backoff (60-90 s) and its first step (10-15 ms)
/// cannot be mistaken for each other, so `reconnect_in` shows which one a
/// refusal got without measuring time.
fn slow_end_config(url: &str, provider: Arc<dyn HeaderProvider>) -> SocketConfig {
    let mut config = nh1_config(url, provider);
    config.backoff = Backoff {
        initial: Duration::from_millis(10),
        max: Duration::from_secs(60),
        jitter: 0.5,
    };
    config
}

/// Waits for `Connected`, asserting that exactly one refusal came first and
/// that it was retried at the first step of the backoff.
async fn joins_after_one_fast_retry(sock: &Socket) {
    let first = wait_for(sock, "the first refusal", |e| {
        matches!(e, Event::AuthError { .. } | Event::Connected)
    })
    .await;
    let Event::AuthError { reconnect_in, .. } = first else {
        panic!("expected a refusal first, got {first:?}");
    };
    let retry = reconnect_in.expect("retried");
    assert!(
        retry <= Duration::from_millis(15),
        "a refusal with a new Date is retried at the first backoff step, not after {retry:?}"
    );
    assert_eq!(auth_errors_before_connected(sock).await, 0);
}

#[tokio::test]
async fn a_device_clock_ten_minutes_ahead_joins_after_one_refusal() {
    let server = nh1_server().await;
    let secret = SharedSecret::new(PRODUCT_KEY, PRODUCT_SECRET, "fast-clock");
    let signer = auth(secret, 600);
    let sock = Socket::new(slow_end_config(&server.ws_url(), signer.clone())).expect("config");
    sock.connect().expect("connect");
    joins_after_one_fast_retry(&sock).await;
    let offset = signer.clock_offset().expect("learned");
    assert!((-602..=-599).contains(&offset), "{offset}");
}

#[tokio::test]
async fn a_device_clock_ten_minutes_behind_joins_after_one_refusal() {
    let server = nh1_server().await;
    let secret = SharedSecret::new(PRODUCT_KEY, PRODUCT_SECRET, "slow-clock");
    let sock = Socket::new(slow_end_config(&server.ws_url(), auth(secret, -600))).expect("config");
    sock.connect().expect("connect");
    joins_after_one_fast_retry(&sock).await;
}

#[tokio::test]
async fn a_refusal_without_news_waits_at_the_slow_end() {
    let server = nh1_server().await;
    let secret = SharedSecret::new(PRODUCT_KEY, "not-the-secret", "right-clock");
    let sock = Socket::new(slow_end_config(&server.ws_url(), auth(secret, 0))).expect("config");
    sock.connect().expect("connect");
    let refusal = wait_for(&sock, "a refusal", |e| matches!(e, Event::AuthError { .. })).await;
    let Event::AuthError { reconnect_in, .. } = refusal else {
        unreachable!()
    };
    assert!(reconnect_in.expect("retried") >= Duration::from_secs(60));
}

#[tokio::test]
async fn a_clock_that_jumps_while_connected_still_joins_after_a_reconnect() {
    let server = nh1_server().await;
    let secret = SharedSecret::new(PRODUCT_KEY, PRODUCT_SECRET, "jumpy-clock");
    let offset = Arc::new(AtomicI64::new(0));
    let shift = offset.clone();
    let clock: Clock =
        Arc::new(move || unix_now().saturating_add_signed(shift.load(Ordering::SeqCst)));
    let signer = Arc::new(Nh1Auth::with_clock(secret, clock).expect("valid"));
    let sock = Socket::new(slow_end_config(&server.ws_url(), signer)).expect("config");
    sock.connect().expect("connect");
    assert_eq!(auth_errors_before_connected(&sock).await, 0);
    for jump in [600, -600] {
        // The clock jumps (NTP, a user) while connected; the link then drops.
        offset.store(jump, Ordering::SeqCst);
        server.control().drop_connections().await;
        joins_after_one_fast_retry(&sock).await;
    }
}

#[tokio::test]
async fn sha512_works_end_to_end() {
    let server = nh1_server().await;
    let mut secret = SharedSecret::new(PRODUCT_KEY, PRODUCT_SECRET, "sha512-device");
    secret.digest = Nh1Digest::Sha512;
    secret.iterations = 2000;
    secret.key_length = 64;
    let sock = Socket::new(nh1_config(&server.ws_url(), auth(secret, 0))).expect("config");
    assert_eq!(
        join_device(&server, &sock).await.as_deref(),
        Some("sha512-device")
    );
}

fn ca_only(server: &DevServer) -> TlsOptions {
    TlsOptions {
        ca: Some(PemSource::File(server.pki().ca.clone())),
        ..TlsOptions::default()
    }
}

#[tokio::test]
async fn nh1_over_wss_needs_no_client_certificate() {
    let server = nh1_server().await;
    let secret = SharedSecret::new(PRODUCT_KEY, PRODUCT_SECRET, "tls-device");
    let mut config = nh1_config(&server.wss_url(), auth(secret, 0));
    config.tls = ca_only(&server);
    let sock = Socket::new(config).expect("config");
    assert_eq!(
        join_device(&server, &sock).await.as_deref(),
        Some("tls-device")
    );
}

#[tokio::test]
async fn wss_without_any_credentials_gets_nervehubs_reason() {
    let server = nh1_server().await;
    let mut config = fast_config(&device_socket_url(&server.wss_url()));
    config.tls = ca_only(&server);
    let sock = Socket::new(config).expect("config");
    sock.connect().expect("connect");
    assert_eq!(
        next_auth_error(&sock).await,
        (401, Some(NO_CREDENTIALS.to_owned()))
    );
}

#[tokio::test]
async fn wss_with_an_unrelated_x_header_takes_the_shared_secret_path() {
    // As on NervesHub: any x-* header without a certificate means "shared
    // secret", so a proxy adding one turns "no credentials" into a bare 401.
    let server = nh1_server().await;
    let mut config = fast_config(&server.wss_url());
    config.tls = ca_only(&server);
    config
        .headers
        .push(("x-forwarded-for".into(), "10.0.0.1".into()));
    let sock = Socket::new(config).expect("config");
    sock.connect().expect("connect");
    assert_eq!(next_auth_error(&sock).await, (401, None));
}
