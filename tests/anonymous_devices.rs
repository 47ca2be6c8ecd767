//! The dev server refuses anonymous devices as NervesHub does: a 401 with
//! `nh-connection-error-reason` on the device endpoint, and "unmatched
//! topic" for the device-facing topics on the anonymous `/socket` (NervesHub's
//! `UserSocket` has none of them). Generic topics stay open there.

mod common;

use common::*;
use nerves_hub_channel::{Error, Event, JoinFailure, Socket};
use nhc_devserver::NO_CREDENTIALS;
use serde_json::json as j;

const DEVICE_FACING: [&str; 3] = ["device", "console", "extensions"];

#[tokio::test]
async fn an_anonymous_upgrade_on_the_device_socket_gets_401_with_the_reason() {
    let server = server().await;
    let sock = Socket::new(fast_config(&server.device_socket_url())).expect("config");
    sock.connect().expect("connect");
    let event = wait_for(&sock, "an auth error", |e| {
        matches!(e, Event::AuthError { .. } | Event::Connected)
    })
    .await;
    match event {
        Event::AuthError {
            error: Error::Auth { status, reason },
            ..
        } => assert_eq!(
            (status, reason.as_deref()),
            (401, Some(NO_CREDENTIALS)),
            "NervesHub's status and nh-connection-error-reason"
        ),
        other => panic!("expected a 401, got {other:?}"),
    }
    assert!(server.control().connections().await.is_empty());
}

#[tokio::test]
async fn an_anonymous_socket_cannot_join_device_facing_topics() {
    let server = server().await;
    let sock = Socket::new(fast_config(&server.ws_url())).expect("config");
    sock.connect().expect("connect");
    for topic in DEVICE_FACING {
        let chan = sock.channel(topic, no_params()).expect("channel");
        let result = chan.join().expect("join sent").await.expect("socket alive");
        assert_eq!(
            result,
            Err(JoinFailure::Refused(json(
                j!({"reason": "unmatched topic"})
            ))),
            "{topic}"
        );
        // Stop the retries of the refused join.
        drop(chan.leave().expect("leave sent"));
    }
    // The socket itself is fine: a generic topic still joins on it.
    let room = sock.channel("room:lobby", no_params()).expect("channel");
    room.join()
        .expect("join sent")
        .await
        .expect("socket alive")
        .expect("a generic topic joins anonymously");
    let connections = server.control().connections().await;
    assert_eq!(connections.len(), 1, "{connections:?}");
    assert_eq!(connections[0].identity, None);
    assert_eq!(connections[0].topics, vec!["room:lobby".to_owned()]);
}

#[tokio::test]
async fn an_authenticated_device_joins_the_same_topics() {
    let server = server().await;
    let sock = Socket::new(device_socket_config(&server, "nhc-anon-check")).expect("config");
    sock.connect().expect("connect");
    for topic in DEVICE_FACING {
        let chan = sock.channel(topic, no_params()).expect("channel");
        chan.join()
            .expect("join sent")
            .await
            .expect("socket alive")
            .unwrap_or_else(|e| panic!("{topic} refused: {e:?}"));
    }
    let connections = server.control().connections().await;
    assert_eq!(connections.len(), 1, "{connections:?}");
    assert_eq!(connections[0].identity.as_deref(), Some("nhc-anon-check"));
    // Listed sorted.
    assert_eq!(connections[0].topics, ["console", "device", "extensions"]);
}

#[tokio::test]
async fn nh1_headers_on_the_plain_socket_do_not_make_a_device_socket() {
    // NervesHub verifies shared secrets only on `/device-socket`; its
    // `/socket` is the web UI's socket, which has no device topics.
    let server = server().await;
    let mut config = device_socket_config(&server, "nhc-wrong-mount");
    config.url = server.ws_url();
    let sock = Socket::new(config).expect("config");
    sock.connect().expect("connect");
    let chan = sock.channel("device", no_params()).expect("channel");
    let result = chan.join().expect("join sent").await.expect("socket alive");
    assert_eq!(
        result,
        Err(JoinFailure::Refused(json(
            j!({"reason": "unmatched topic"})
        )))
    );
    let connections = server.control().connections().await;
    assert_eq!(connections.len(), 1, "{connections:?}");
    assert_eq!(connections[0].identity, None);
}
