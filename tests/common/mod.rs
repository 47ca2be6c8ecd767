//! Shared helpers for the integration tests: a dev server per test and
//! deadline-bounded waits for events (never sleeps).
#![allow(dead_code)]

use std::time::Duration;

use std::sync::Arc;

use nerves_hub_channel::nerves_hub::nh1::{Nh1Auth, SharedSecret};
use nerves_hub_channel::{Backoff, Event, JoinParams, Payload, Socket, SocketConfig};
use nhc_devserver::{Config, DevServer, SharedSecretEntry};

pub const WAIT: Duration = Duration::from_secs(10);

/// The NH1 product key every test server accepts (see `device_socket_config`).
pub const TEST_PRODUCT_KEY: &str = "nhp_nhc_tests";
pub const TEST_PRODUCT_SECRET: &str = "nhc-tests-product-secret";

/// A dev server that also accepts NH1 signatures made with the test product key.
pub async fn server() -> DevServer {
    DevServer::start(Config {
        shared_secrets: vec![SharedSecretEntry::new(
            TEST_PRODUCT_KEY,
            TEST_PRODUCT_SECRET,
            None,
        )],
        ..Config::default()
    })
    .await
    .expect("dev server starts")
}

/// An authenticated device connection, as NervesHub requires for `device`,
/// `console` and `extensions`: `fast_config` on the server's NH1 mount
/// (`/device-socket/websocket`), signed with the test product key as
/// `identifier`. Give every device of a test its own identifier: the server
/// closes the older socket of a duplicate identity.
pub fn device_socket_config(server: &DevServer, identifier: &str) -> SocketConfig {
    let mut config = fast_config(&server.device_socket_url());
    let secret = SharedSecret::new(TEST_PRODUCT_KEY, TEST_PRODUCT_SECRET, identifier);
    let auth = Nh1Auth::new(secret).expect("the test product secret is valid");
    config.header_provider = Some(Arc::new(auth));
    config
}

/// A config that reconnects and rejoins quickly, for tests.
pub fn fast_config(url: &str) -> SocketConfig {
    let mut config = SocketConfig::new(url);
    config.backoff = Backoff {
        initial: Duration::from_millis(10),
        max: Duration::from_millis(100),
        jitter: 0.5,
    };
    config.rejoin_after = Duration::from_millis(20);
    config
}

/// Waits for the first event matching `pred`, failing with everything seen meanwhile.
pub async fn wait_for(sock: &Socket, what: &str, mut pred: impl FnMut(&Event) -> bool) -> Event {
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match tokio::time::timeout_at(deadline, sock.next_event()).await {
            Ok(Some(event)) if pred(&event) => return event,
            Ok(Some(event)) => seen.push(event),
            Ok(None) => panic!("event stream ended while waiting for {what}; saw {seen:#?}"),
            Err(_) => panic!("timed out waiting for {what}; saw {seen:#?}"),
        }
    }
}

pub fn is_joined(topic: &str) -> impl FnMut(&Event) -> bool + '_ {
    move |e| matches!(e, Event::Joined { topic: t, .. } if t == topic)
}

pub fn json(value: serde_json::Value) -> Payload {
    Payload::json(&value)
}

pub fn no_params() -> JoinParams {
    JoinParams::Static(Payload::empty())
}

/// A plain-ws socket connected to `server`, with `topic` joined.
pub async fn joined(server: &DevServer, topic: &str) -> (Socket, nerves_hub_channel::Channel) {
    let sock = Socket::new(fast_config(&server.ws_url())).expect("valid config");
    let chan = sock.channel(topic, no_params()).expect("channel");
    sock.connect().expect("connect");
    chan.join()
        .expect("join sent")
        .await
        .expect("socket alive")
        .expect("join ok");
    (sock, chan)
}

/// The dev server's CA and its device certificate and key, for mutual TLS.
pub fn device_tls(server: &DevServer) -> nerves_hub_channel::TlsOptions {
    use nerves_hub_channel::PemSource;
    let pki = server.pki();
    nerves_hub_channel::TlsOptions {
        ca: Some(PemSource::File(pki.ca.clone())),
        client_cert: Some(PemSource::File(pki.device_cert.clone())),
        client_key: Some(PemSource::File(pki.device_key.clone())),
        server_name: None,
        client_signer: None,
    }
}

/// A socket made from `config`, connected, with `device` joined.
pub async fn joined_device_channel(config: SocketConfig) -> Socket {
    let sock = Socket::new(config).expect("valid config");
    connect_and_join(&sock, "device").await;
    sock
}

/// Connects `sock` and joins `topic` on it; panics unless the join succeeds.
pub async fn connect_and_join(sock: &Socket, topic: &str) -> nerves_hub_channel::Channel {
    let chan = sock.channel(topic, no_params()).expect("channel");
    sock.connect().expect("connect");
    chan.join()
        .expect("join sent")
        .await
        .expect("socket alive")
        .expect("join ok");
    chan
}

/// The reason of the next `Disconnected`, checking that a retry is planned.
pub async fn next_failure(sock: &Socket) -> nerves_hub_channel::Error {
    match wait_for(sock, "a failed attempt", |e| {
        matches!(e, Event::Disconnected { .. })
    })
    .await
    {
        Event::Disconnected {
            reason,
            reconnect_in,
        } => {
            assert!(reconnect_in.is_some(), "no retry after {reason}");
            reason
        }
        _ => unreachable!("wait_for returned another event"),
    }
}
