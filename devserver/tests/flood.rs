//! `POST /flood`: background floods to joined channels, paced by each client.

mod common;

use common::*;
use serde_json::{json, Value};
use tokio::io::AsyncWrite;

async fn flood(server: &nhc_devserver::DevServer, body: Value) -> (u16, Value) {
    let (status, _, text) = http(&control_addr(server), "POST", "/flood", &body.to_string()).await;
    let value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text:?}"));
    (status, value)
}

fn is_flood(frame: &Value) -> bool {
    frame[3] == "flood"
}

/// Sends a heartbeat and returns every frame that arrives before its reply.
async fn frames_until_heartbeat_reply<S>(c: &mut Client<S>, msg_ref: &str) -> Vec<Value>
where
    S: tokio::io::AsyncRead + AsyncWrite + Unpin,
{
    c.send(json!([null, msg_ref, "phoenix", "heartbeat", {}]))
        .await;
    let mut before = Vec::new();
    loop {
        let frame = c.recv().await;
        if frame[2] == "phoenix" && frame[1] == msg_ref {
            return before;
        }
        before.push(frame);
    }
}

#[tokio::test]
async fn a_flood_reaches_every_joined_channel_in_order() {
    let server = start().await;
    let (mut a, mut b, mut other) = (
        connect(&server).await,
        connect(&server).await,
        connect(&server).await,
    );
    a.join("room:f", "1").await;
    b.join("room:f", "7").await;
    other.join("room:other", "1").await;

    let count = 1000;
    let (status, body) = flood(
        &server,
        json!({"topic": "room:f", "event": "flood", "count": count, "size": 256}),
    )
    .await;
    assert_eq!((status, body), (200, json!({"delivered": 2})));

    for c in [&mut a, &mut b] {
        for i in 0..count {
            let frame = c.recv().await;
            assert_eq!(
                &frame.as_array().unwrap()[..4],
                [json!(null), json!(null), json!("room:f"), json!("flood")]
            );
            assert_eq!(frame[4]["i"], i, "messages arrive in order");
            assert_eq!(frame[4].to_string().len(), 256, "payload size");
        }
        assert!(frames_until_heartbeat_reply(c, "hb").await.is_empty());
    }
    assert!(frames_until_heartbeat_reply(&mut other, "hb")
        .await
        .is_empty());
}

#[tokio::test]
async fn a_flood_can_carry_the_channels_join_ref() {
    let server = start().await;
    let mut c = connect(&server).await;
    c.join("room:f", "5").await;
    let body =
        json!({"topic": "room:f", "event": "flood", "count": 3, "size": 0, "with_join_ref": true});
    assert_eq!(flood(&server, body).await.1, json!({"delivered": 1}));
    for i in 0..3 {
        assert_eq!(
            c.recv().await,
            json!(["5", null, "room:f", "flood", {"i": i, "pad": ""}])
        );
    }
}

#[tokio::test]
async fn a_flood_ends_when_its_channel_is_left() {
    let server = start().await;
    let mut c = connect(&server).await;
    c.join("room:f", "1").await;
    // Endless, for this test: only the leave can end it.
    let count: u64 = 50_000_000;
    let body = json!({"topic": "room:f", "event": "flood", "count": count, "size": 1024});
    assert_eq!(flood(&server, body).await.1, json!({"delivered": 1}));
    assert_eq!(c.recv().await[4]["i"], 0);

    // The client reads nothing more while the server handles its leave.
    c.send(json!(["1", "2", "room:f", "phx_leave", {}])).await;
    let mut flooded = 1u64;
    loop {
        let frame = c.recv().await;
        if is_flood(&frame) {
            assert_eq!(frame[4]["i"], flooded, "messages arrive in order");
            flooded += 1;
        } else if frame[3] == "phx_close" {
            break;
        }
    }
    assert!(flooded < count);
    let after = frames_until_heartbeat_reply(&mut c, "hb").await;
    assert!(
        !after.iter().any(is_flood),
        "the flood went on after the leave: {after:?}"
    );
}

#[tokio::test]
async fn flood_requests_are_checked() {
    let server = start().await;
    let (status, body) = flood(
        &server,
        json!({"topic": "room:f", "event": "e", "count": 5}),
    )
    .await;
    assert_eq!((status, body), (200, json!({"delivered": 0})));
    let (status, body) = flood(&server, json!({"topic": "room:f", "event": "e"})).await;
    assert_eq!(status, 400);
    assert!(body["error"].as_str().unwrap().contains("count"), "{body}");
    let too_big = nhc_devserver::MAX_MESSAGE_SIZE + 1;
    let (status, body) = flood(
        &server,
        json!({"topic": "room:f", "event": "e", "count": 1, "size": too_big}),
    )
    .await;
    assert_eq!(status, 400);
    assert!(body["error"].as_str().unwrap().contains("size"), "{body}");
    let (status, _, _) = http(&control_addr(&server), "GET", "/flood", "").await;
    assert_eq!(status, 405);
}

#[tokio::test]
async fn a_paced_flood_keeps_order_and_never_runs_ahead_of_its_rate() {
    let server = start().await;
    let mut c = connect(&server).await;
    c.join("room:f", "3").await;
    let (count, rate) = (6u64, 50u64);
    let body = json!({"topic": "room:f", "event": "flood", "count": count, "size": 64,
                      "with_join_ref": true, "rate": rate});
    let started = std::time::Instant::now();
    assert_eq!(flood(&server, body).await.1, json!({"delivered": 1}));
    for i in 0..count {
        let frame = c.recv().await;
        assert_eq!(frame[0], "3");
        assert_eq!(frame[4]["i"], i, "messages arrive in order");
        // Message i is due i / rate seconds after the start, never earlier.
        let due = std::time::Duration::from_millis(i * 1000 / rate);
        assert!(started.elapsed() >= due, "message {i} came before {due:?}");
    }
    assert!(frames_until_heartbeat_reply(&mut c, "hb").await.is_empty());
}

#[tokio::test]
async fn a_flood_rate_of_zero_is_refused() {
    let server = start().await;
    let (status, body) = flood(
        &server,
        json!({"topic": "room:f", "event": "e", "count": 5, "rate": 0}),
    )
    .await;
    assert_eq!(status, 400);
    assert!(body["error"].as_str().unwrap().contains("rate"), "{body}");
}
