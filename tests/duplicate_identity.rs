//! Two devices with one identity (cloned SD-card images): NervesHub, and the
//! dev server, close the older socket whenever another one authenticates
//! with the same certificate. The backoff must make them settle instead of
//! taking turns every second, and the application must be told.

mod common;

use std::time::Duration;

use common::*;
use nerves_hub_channel::{Backoff, Event, PemSource, Socket, SocketConfig, TlsOptions};
use nhc_devserver::DevServer;

const MAX: Duration = Duration::from_millis(200);

/// The shipped policy scaled down: a 20 ms first step doubling up to
/// 200 ms (no jitter), and a session counts as stable after 1 s (above the
/// slowest delay, as the defaults are: 120 s against 60 s + 50 %).
fn device_config(server: &DevServer) -> SocketConfig {
    let pki = server.pki();
    let mut config = fast_config(&server.wss_url());
    config.tls = TlsOptions {
        ca: Some(PemSource::File(pki.ca.clone())),
        client_cert: Some(PemSource::File(pki.device_cert.clone())),
        client_key: Some(PemSource::File(pki.device_key.clone())),
        server_name: None,
        client_signer: None,
    };
    config.backoff = Backoff {
        initial: Duration::from_millis(20),
        max: MAX,
        jitter: 0.0,
    };
    config.stable_after = Duration::from_secs(1);
    config
}

fn device(server: &DevServer) -> (Socket, nerves_hub_channel::Channel) {
    let sock = Socket::new(device_config(server)).expect("config");
    let chan = sock.channel("device", no_params()).expect("channel");
    // Joined (and rejoined after every reconnect) without waiting here.
    drop(chan.join().expect("join sent"));
    sock.connect().expect("connect");
    (sock, chan)
}

fn is_identity_in_use(e: &Event) -> bool {
    matches!(e, Event::IdentityInUse { .. })
}

#[tokio::test]
async fn two_devices_with_one_certificate_settle_instead_of_storming() {
    let server = server().await;
    let (a, _a_chan) = device(&server);
    wait_for(&a, "the first device's join", is_joined("device")).await;
    let (b, _b_chan) = device(&server);
    // Both are told, after three short sessions each.
    let (ea, eb) = tokio::join!(
        wait_for(&a, "identity in use (a)", is_identity_in_use),
        wait_for(&b, "identity in use (b)", is_identity_in_use),
    );
    assert_eq!(ea, Event::IdentityInUse { sessions: 3 });
    assert_eq!(eb, Event::IdentityInUse { sessions: 3 });
    let control = server.control();
    let before = control.kicks().await;
    assert!(before >= 6, "each device was closed three times: {before}");
    // A fixed observation window (a measurement, not a synchronisation):
    // with at least 160 ms before every reconnect now, at most 2000/160 + 1
    // kicks fit in 2 s; resetting the backoff at every join made ~80.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let during = control.kicks().await - before;
    assert!(during <= 13, "{during} kicks in 2 s");
    assert!(during >= 2, "they still take turns: {during} kicks in 2 s");
    // The fourth short session already waits 20 ms * 2^3.
    let lost = wait_for(&a, "a later kick", |e| {
        matches!(e, Event::Disconnected { .. })
    })
    .await;
    let Event::Disconnected { reconnect_in, .. } = lost else {
        unreachable!()
    };
    assert!(
        reconnect_in >= Some(Duration::from_millis(160)),
        "{reconnect_in:?}"
    );
}

#[tokio::test]
async fn a_device_closed_once_reconnects_at_the_first_step() {
    let server = server().await;
    let (sock, _chan) = device(&server);
    wait_for(&sock, "the join", is_joined("device")).await;
    assert_eq!(server.control().close_connections(1000).await, 1);
    let lost = wait_for(&sock, "the close", |e| {
        matches!(e, Event::Disconnected { .. })
    })
    .await;
    let Event::Disconnected { reconnect_in, .. } = lost else {
        unreachable!()
    };
    assert_eq!(reconnect_in, Some(Duration::from_millis(20)));
    wait_for(&sock, "the rejoin", is_joined("device")).await;
    assert_eq!(server.control().kicks().await, 0, "no other device");
}
