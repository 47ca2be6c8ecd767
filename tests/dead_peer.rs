//! A silent peer: the TCP connection stays open but nothing comes back
//! (half-open, as after a NAT timeout). Only the heartbeat can notice it.

mod common;
#[path = "common/proxy.rs"]
mod proxy;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::*;
use nerves_hub_channel::{Error, Event, PushOutcome, Socket};
use proxy::{Fault, Proxy};
use serde_json::json as j;

fn ws_addr(url: &str) -> SocketAddr {
    let url = url::Url::parse(url).expect("dev server URL");
    let port = url.port().expect("dev server URL has a port");
    SocketAddr::from(([127, 0, 0, 1], port))
}

#[tokio::test]
async fn a_half_open_connection_is_detected_within_two_heartbeat_intervals() {
    const INTERVAL: Duration = Duration::from_millis(200);
    // Not longer than the interval, so interval + timeout <= 2 intervals.
    const TIMEOUT: Duration = Duration::from_millis(200);
    // Scheduling slack on a loaded 2-core CI machine; the bound it protects is
    // "seconds, not the 60 s the OS or the server idle timeout would take".
    const SLACK: Duration = Duration::from_secs(1);

    let server = server().await;
    let proxy = Proxy::start(ws_addr(&server.ws_url()))
        .await
        .expect("proxy starts");
    let mut config = fast_config(&format!("ws://{}/socket/websocket", proxy.addr()));
    config.heartbeat_interval = INTERVAL;
    config.heartbeat_timeout = TIMEOUT;
    let sock = Socket::new(config).expect("valid config");
    let chan = connect_and_join(&sock, "room:dead").await;

    let [id] = proxy.connections()[..] else {
        panic!("expected one proxied connection: {:?}", proxy.connections())
    };
    let stalled_at = Instant::now();
    assert!(proxy.inject(id, Fault::Stall));
    let event = wait_for(&sock, "the dead peer", |e| {
        matches!(e, Event::Disconnected { .. })
    })
    .await;
    let detected_after = stalled_at.elapsed();
    println!("half-open connection detected after {detected_after:?}");
    let Event::Disconnected {
        reason,
        reconnect_in,
    } = event
    else {
        unreachable!()
    };
    assert!(
        matches!(reason, Error::Timeout(ref m) if m.contains("heartbeat")),
        "{reason}"
    );
    assert!(reconnect_in.is_some(), "a dead peer is retried");
    // The heartbeat in flight when the link died times out after TIMEOUT at
    // the earliest; the latest is a reply just before the stall, then one
    // interval, then the timeout.
    assert!(
        detected_after >= TIMEOUT.saturating_sub(Duration::from_millis(20)),
        "detected after {detected_after:?}, before any heartbeat could time out"
    );
    assert!(
        detected_after < 2 * INTERVAL + SLACK,
        "detected after {detected_after:?}; expected within 2 x {INTERVAL:?} (+{SLACK:?} slack)"
    );

    // The next connection through the proxy is healthy: the channel comes back.
    wait_for(&sock, "the rejoin", is_joined("room:dead")).await;
    let outcome = chan
        .push("echo", json(j!({"after": "stall"})))
        .expect("push queued")
        .await
        .expect("socket alive");
    assert!(matches!(outcome, PushOutcome::Ok(_)), "{outcome:?}");
}
