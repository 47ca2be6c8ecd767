//! Connection behaviour: reconnects, heartbeats, bad frames, closing.

mod common;

use std::time::Duration;

use common::*;
use nerves_hub_channel::{ConnectionState, Error, Event, Payload, PushOutcome, Socket};
use serde_json::json as j;

#[tokio::test]
async fn reconnects_and_rejoins_after_the_server_drops_the_connection() {
    let server = server().await;
    let (sock, chan) = joined(&server, "room:1").await;
    wait_for(&sock, "the first join", is_joined("room:1")).await;
    assert_eq!(server.control().drop_connections().await, 1);
    // As in the reference client, channels error first, then the socket reports.
    let mut seen = Vec::new();
    loop {
        let event = tokio::time::timeout(WAIT, sock.next_event())
            .await
            .unwrap()
            .unwrap();
        if event == Event::Connected {
            break;
        }
        seen.push(event);
    }
    let error_at = seen
        .iter()
        .position(|e| matches!(e, Event::ChannelError { topic, .. } if topic == "room:1"));
    let lost_at = seen.iter().position(|e| {
        matches!(
            e,
            Event::Disconnected {
                reconnect_in: Some(_),
                ..
            }
        )
    });
    assert!(
        matches!((error_at, lost_at), (Some(a), Some(b)) if a < b),
        "{seen:#?}"
    );
    wait_for(&sock, "the rejoin", is_joined("room:1")).await;
    server
        .control()
        .wait_joined("room:1", 2, WAIT)
        .await
        .unwrap();
    assert!(matches!(
        chan.push("x", Payload::empty()).unwrap().await.unwrap(),
        PushOutcome::Ok(_)
    ));
}

#[tokio::test]
async fn reconnects_after_a_server_close_frame() {
    let server = server().await;
    let (sock, _chan) = joined(&server, "room:1").await;
    server.control().close_connections(1012).await;
    let event = wait_for(&sock, "the disconnect", |e| {
        matches!(e, Event::Disconnected { .. })
    })
    .await;
    let Event::Disconnected { reason, .. } = event else {
        unreachable!()
    };
    assert!(reason.to_string().contains("1012"), "{reason}");
    wait_for(&sock, "the rejoin", is_joined("room:1")).await;
}

#[tokio::test]
async fn a_silent_server_is_detected_by_the_heartbeat() {
    let server = server().await;
    let mut config = fast_config(&server.ws_url());
    config.heartbeat_interval = Duration::from_millis(50);
    config.heartbeat_timeout = Duration::from_millis(200);
    let sock = Socket::new(config).unwrap();
    sock.connect().unwrap();
    wait_for(&sock, "the connection", |e| *e == Event::Connected).await;
    server.control().set_heartbeat_replies(false).await;
    let event = wait_for(&sock, "the heartbeat timeout", |e| {
        matches!(e, Event::Disconnected { .. })
    })
    .await;
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
    assert!(reconnect_in.is_some());
    server.control().set_heartbeat_replies(true).await;
    wait_for(&sock, "the reconnect", |e| *e == Event::Connected).await;
}

#[tokio::test]
async fn answered_heartbeats_keep_the_connection() {
    let server = server().await;
    let mut config = fast_config(&server.ws_url());
    config.heartbeat_interval = Duration::from_millis(20);
    config.heartbeat_timeout = Duration::from_millis(2000);
    let (sock, chan) = {
        let sock = Socket::new(config).unwrap();
        let chan = sock.channel("room:1", no_params()).unwrap();
        sock.connect().unwrap();
        chan.join().unwrap().await.unwrap().unwrap();
        (sock, chan)
    };
    // Twenty pushes take many heartbeat intervals; no disconnect may appear.
    for i in 0..20 {
        let p = chan
            .push_with_timeout("noreply_wait", Payload::empty(), Duration::from_millis(30))
            .unwrap();
        assert_eq!(p.await.unwrap(), PushOutcome::Timeout, "push {i}");
    }
    while let Some(event) = sock.try_recv() {
        assert!(!matches!(event, Event::Disconnected { .. }), "{event:?}");
    }
    assert_eq!(sock.state(), ConnectionState::Connected);
}

#[tokio::test]
async fn malformed_frames_are_reported_and_the_connection_survives() {
    let server = server().await;
    let (sock, chan) = joined(&server, "room:1").await;
    let control = server.control();
    control.send_raw_text("this is not json").await;
    control.send_raw_text(r#"["1","2","room:1"]"#).await;
    control
        .send_raw_text(r#"[null,"5","room:1","phx_reply",{"no":"status"}]"#)
        .await;
    control.send_raw_binary(vec![9, 9, 9]).await;
    control.send_raw_binary(vec![0, 200, 1, 1]).await;
    for i in 0..5 {
        wait_for(&sock, &format!("protocol error {i}"), |e| {
            matches!(e, Event::ProtocolError { .. })
        })
        .await;
    }
    let outcome = chan
        .push("still_alive", json(j!({})))
        .unwrap()
        .await
        .unwrap();
    assert!(matches!(outcome, PushOutcome::Ok(_)));
}

#[tokio::test]
async fn oversized_messages_are_refused() {
    let server = server().await;
    let mut config = fast_config(&server.ws_url());
    config.max_message_size = 4096;
    let sock = Socket::new(config).unwrap();
    let chan = sock.channel("room:1", no_params()).unwrap();
    sock.connect().unwrap();
    chan.join().unwrap().await.unwrap().unwrap();
    server
        .control()
        .push("room:1", "big", json(j!({"blob": "x".repeat(10_000)})))
        .await;
    let event = wait_for(&sock, "the refusal", |e| {
        matches!(e, Event::Disconnected { .. })
    })
    .await;
    let Event::Disconnected { reason, .. } = event else {
        unreachable!()
    };
    assert!(
        matches!(reason, Error::Protocol(ref m) if m.contains("max_message_size")),
        "{reason}"
    );
}

#[tokio::test]
async fn unreachable_host_is_a_connect_error_and_is_retried() {
    // Bind and drop a listener to find a port with nobody behind it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let sock = Socket::new(fast_config(&format!(
        "ws://127.0.0.1:{port}/socket/websocket"
    )))
    .unwrap();
    sock.connect().unwrap();
    let event = wait_for(&sock, "the failure", |e| {
        matches!(e, Event::Disconnected { .. })
    })
    .await;
    let Event::Disconnected {
        reason,
        reconnect_in,
    } = event
    else {
        unreachable!()
    };
    assert!(
        matches!(reason, Error::Connect(ref m) if m.contains(&port.to_string())),
        "{reason}"
    );
    assert!(reconnect_in.is_some());
    wait_for(&sock, "the second attempt", |e| {
        matches!(e, Event::Connecting { attempt: 2 })
    })
    .await;
}

#[tokio::test]
async fn wrong_path_or_vsn_rejection_reports_the_http_status() {
    let server = server().await;
    let url = server
        .ws_url()
        .replace("/socket/websocket", "/nope/websocket");
    let sock = Socket::new(fast_config(&url)).unwrap();
    sock.connect().unwrap();
    let event = wait_for(&sock, "the refusal", |e| {
        matches!(e, Event::Disconnected { .. })
    })
    .await;
    assert!(
        matches!(
            event,
            Event::Disconnected {
                reason: Error::Http { status: 404, .. },
                ..
            }
        ),
        "{event:?}"
    );
}

#[tokio::test]
async fn disconnect_stops_reconnecting_until_connect() {
    let server = server().await;
    let (sock, chan) = joined(&server, "room:1").await;
    sock.disconnect().unwrap();
    let event = wait_for(&sock, "the disconnect", |e| {
        matches!(e, Event::Disconnected { .. })
    })
    .await;
    assert!(
        matches!(
            event,
            Event::Disconnected {
                reconnect_in: None,
                ..
            }
        ),
        "{event:?}"
    );
    assert_eq!(sock.state(), ConnectionState::Disconnected);
    sock.connect().unwrap();
    wait_for(&sock, "the rejoin", is_joined("room:1")).await;
    assert!(matches!(
        chan.push("x", Payload::empty()).unwrap().await.unwrap(),
        PushOutcome::Ok(_)
    ));
}

#[tokio::test]
async fn close_ends_pending_pushes_and_the_stream() {
    let server = server().await;
    let (sock, chan) = joined(&server, "room:1").await;
    let pending = chan.push("noreply_forever", Payload::empty()).unwrap();
    server
        .control()
        .wait_for("room:1", "noreply_forever", 1, WAIT)
        .await
        .unwrap();
    sock.close();
    let outcome = pending.await.unwrap();
    assert!(
        matches!(outcome, PushOutcome::NotSent(Error::Closed(_))),
        "{outcome:?}"
    );
    wait_for(&sock, "the end", |e| *e == Event::Closed).await;
    assert_eq!(sock.next_event().await, None);
    assert!(matches!(
        chan.push("x", Payload::empty()),
        Err(Error::Closed(_))
    ));
    assert_eq!(sock.state(), ConnectionState::Closed);
}

#[tokio::test]
async fn wait_closed_waits_on_an_applications_runtime() {
    // This test body runs on the application's tokio runtime, which never
    // carries the connection task, so waiting here cannot wait for itself:
    // wait_closed must wait for the task to end (the TLS key, a PKCS#11
    // session, is dropped then), not return at once.
    let server = server().await;
    let (sock, _chan) = joined(&server, "room:wait-closed").await;
    sock.close();
    assert!(sock.wait_closed(Duration::from_secs(10)));
    assert_eq!(sock.state(), ConnectionState::Closed);
    let (other, _chan) = joined(&server, "room:wait-closed-2").await;
    other.close();
    let waited = tokio::task::spawn_blocking(move || other.wait_closed(Duration::from_secs(10)));
    assert!(waited.await.expect("the blocking task ran"));
}
