//! Phoenix V2 channel semantics, spoken with raw frames.

mod common;

use common::*;
use nerves_hub_channel::message::{Payload, Reply};
use serde_json::json;

#[tokio::test]
async fn join_is_answered_and_recorded() {
    let server = start().await;
    let mut c = connect(&server).await;
    c.join("room:1", "1").await;
    server
        .control()
        .wait_joined("room:1", 1, WAIT)
        .await
        .unwrap();
    let received = server.control().received().await;
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].message.event, "phx_join");
    let conns = server.control().connections().await;
    assert_eq!(conns.len(), 1);
    assert_eq!(conns[0].topics, ["room:1"]);
    assert_eq!(conns[0].path, "/socket/websocket");
    assert_eq!(conns[0].identity, None);
}

#[tokio::test]
async fn join_params_are_recorded_and_a_missing_join_ref_is_the_ref() {
    let server = start().await;
    let mut c = connect_device(&server).await;
    c.send(json!([null, "7", "device", "phx_join", {"fw": "1.0"}]))
        .await;
    assert_eq!(
        c.recv().await,
        json!(["7", "7", "device", "phx_reply", {"status": "ok", "response": {}}])
    );
    let got = server
        .control()
        .wait_for("device", "phx_join", 1, WAIT)
        .await
        .unwrap();
    assert_eq!(got[0].message.payload, Payload::json(&json!({"fw": "1.0"})));
}

#[tokio::test]
async fn unrouted_topics_are_unmatched() {
    let server = start().await;
    let mut c = connect(&server).await;
    c.send(json!(["1", "1", "nowhere", "phx_join", {}])).await;
    let unmatched = json!({"status": "error", "response": {"reason": "unmatched topic"}});
    assert_eq!(
        c.recv().await,
        json!([null, "1", "nowhere", "phx_reply", unmatched])
    );
    // A push on a routed topic that was never joined is unmatched too.
    c.send(json!(["2", "2", "room:9", "hello", {}])).await;
    assert_eq!(
        c.recv().await,
        json!([null, "2", "room:9", "phx_reply", unmatched])
    );
    assert!(server.control().connections().await[0].topics.is_empty());
}

#[tokio::test]
async fn device_topics_are_unmatched_on_an_anonymous_socket() {
    // NervesHub routes `device`, `console` and `extensions` only on its
    // authenticated DeviceSocket; its anonymous socket has no such routes,
    // so Phoenix answers the join as for any unrouted topic. A join reply
    // override does not route a topic either.
    let server = start().await;
    let control = server.control();
    control
        .set_join_reply(
            "device",
            Some(Reply {
                status: "ok".into(),
                response: Payload::empty(),
            }),
        )
        .await;
    let mut c = connect(&server).await;
    let unmatched = json!({"status": "error", "response": {"reason": "unmatched topic"}});
    for (n, topic) in ["device", "console", "extensions"].into_iter().enumerate() {
        let join_ref = n.to_string();
        let join = json!([join_ref, join_ref, topic, "phx_join", {"device_api_version": "2.2.0"}]);
        c.send(join).await;
        assert_eq!(
            c.recv().await,
            json!([null, join_ref, topic, "phx_reply", unmatched]),
            "{topic}"
        );
    }
    // Nothing was joined, so no post-join pushes were queued: the next frame
    // is the reply to this join.
    c.join("room:after", "9").await;
    let conns = control.connections().await;
    assert_eq!(conns.len(), 1);
    assert_eq!(conns[0].identity, None);
    assert_eq!(conns[0].topics, ["room:after"]);
    // The join counts are final once the room's reply arrived.
    for topic in ["device", "console", "extensions"] {
        let joined = control
            .wait_joined(topic, 1, std::time::Duration::ZERO)
            .await;
        assert!(joined.is_err(), "{topic} counted as joined");
    }
}

#[tokio::test]
async fn pushes_are_echoed_as_ok_or_error() {
    let server = start().await;
    let mut c = connect(&server).await;
    c.join("room:1", "1").await;
    c.send(json!(["1", "2", "room:1", "ping", {"n": 1}])).await;
    assert_eq!(
        c.recv().await,
        json!(["1", "2", "room:1", "phx_reply", {"status": "ok", "response": {"n": 1}}])
    );
    c.send(json!(["1", "3", "room:1", "error_please", {"why": "x"}]))
        .await;
    assert_eq!(
        c.recv().await,
        json!(["1", "3", "room:1", "phx_reply", {"status": "error", "response": {"why": "x"}}])
    );
    // A null join_ref is still accepted (Phoenix >= 1.8.12).
    c.send(json!([null, "4", "room:1", "ping", {}])).await;
    assert_eq!(
        c.recv().await,
        json!(["1", "4", "room:1", "phx_reply", {"status": "ok", "response": {}}])
    );
}

#[tokio::test]
async fn noreply_events_get_no_reply() {
    let server = start().await;
    let mut c = connect(&server).await;
    c.join("room:1", "1").await;
    c.send(json!(["1", "2", "room:1", "noreply_status", {"s": 1}]))
        .await;
    c.send(json!(["1", "3", "room:1", "ping", {}])).await;
    // Frames are answered in order, so the next frame answering ref 3 proves ref 2 got none.
    assert_eq!(c.recv().await[1], "3");
    let got = server
        .control()
        .wait_for("room:1", "noreply_status", 1, WAIT)
        .await
        .unwrap();
    assert_eq!(got[0].message.payload, Payload::json(&json!({"s": 1})));
}

fn binary_push(join_ref: &str, msg_ref: &str, topic: &str, event: &str, data: &[u8]) -> Vec<u8> {
    let mut out = vec![
        0,
        join_ref.len() as u8,
        msg_ref.len() as u8,
        topic.len() as u8,
        event.len() as u8,
    ];
    for field in [join_ref, msg_ref, topic, event] {
        out.extend_from_slice(field.as_bytes());
    }
    out.extend_from_slice(data);
    out
}

#[tokio::test]
async fn binary_pushes_get_binary_replies() {
    let server = start().await;
    let mut c = connect(&server).await;
    c.join("room:1", "1").await;
    let data: Vec<u8> = (0..=255).collect();
    c.send_binary(binary_push("1", "2", "room:1", "blob", &data))
        .await;
    let reply = c.recv_binary().await;
    let mut expected = vec![1, 1, 1, 6, 2];
    expected.extend_from_slice(b"12room:1ok");
    expected.extend_from_slice(&data);
    assert_eq!(reply, expected);
    let got = server
        .control()
        .wait_for("room:1", "blob", 1, WAIT)
        .await
        .unwrap();
    assert_eq!(got[0].message.payload, Payload::Binary(data));
}

#[tokio::test]
async fn heartbeats_are_answered_unless_disabled() {
    let server = start().await;
    let mut c = connect(&server).await;
    c.send(json!([null, "1", "phoenix", "heartbeat", {}])).await;
    assert_eq!(
        c.recv().await,
        json!([null, "1", "phoenix", "phx_reply", {"status": "ok", "response": {}}])
    );
    server.control().set_heartbeat_replies(false).await;
    c.join("room:1", "2").await;
    c.send(json!([null, "3", "phoenix", "heartbeat", {}])).await;
    c.send(json!(["2", "4", "room:1", "ping", {}])).await;
    assert_eq!(c.recv().await[1], "4", "the heartbeat must not be answered");
    assert!(server
        .control()
        .received()
        .await
        .iter()
        .all(|r| r.message.event != "heartbeat"));
    server.control().reset().await;
    c.send(json!([null, "5", "phoenix", "heartbeat", {}])).await;
    assert_eq!(c.recv().await[1], "5", "reset answers heartbeats again");
}

#[tokio::test]
async fn stale_join_refs_are_dropped_silently() {
    let server = start().await;
    let mut c = connect(&server).await;
    c.join("room:1", "1").await;
    c.send(json!(["99", "2", "room:1", "stale", {}])).await;
    c.send(json!(["99", "3", "room:1", "phx_leave", {}])).await;
    c.send(json!(["1", "4", "room:1", "fresh", {}])).await;
    assert_eq!(
        c.recv().await,
        json!(["1", "4", "room:1", "phx_reply", {"status": "ok", "response": {}}])
    );
    let events: Vec<String> = server
        .control()
        .received()
        .await
        .into_iter()
        .map(|r| r.message.event)
        .collect();
    assert_eq!(events, ["phx_join", "fresh"]);
    assert_eq!(server.control().connections().await[0].topics, ["room:1"]);
}

#[tokio::test]
async fn a_duplicate_join_closes_the_old_channel_first() {
    let server = start().await;
    let mut c = connect(&server).await;
    c.join("room:1", "1").await;
    c.send(json!(["5", "5", "room:1", "phx_join", {}])).await;
    assert_eq!(c.recv().await, json!(["1", "1", "room:1", "phx_close", {}]));
    assert_eq!(
        c.recv().await,
        json!(["5", "5", "room:1", "phx_reply", {"status": "ok", "response": {}}])
    );
    server
        .control()
        .wait_joined("room:1", 2, WAIT)
        .await
        .unwrap();
}

#[tokio::test]
async fn crash_and_close_send_lifecycle_frames_and_forget_the_channel() {
    let server = start().await;
    let control = server.control();
    let mut c = connect(&server).await;
    c.join("room:1", "1").await;
    c.join("room:2", "2").await;
    assert_eq!(control.crash_channel("room:1").await, 1);
    assert_eq!(
        c.recv().await,
        json!(["1", "1", "room:1", "phx_error", {"reason": "channel_crash"}])
    );
    assert_eq!(control.close_channel("room:2").await, 1);
    assert_eq!(c.recv().await, json!(["2", "2", "room:2", "phx_close", {}]));
    assert_eq!(control.crash_channel("room:1").await, 0);
    c.send(json!(["1", "3", "room:1", "ping", {}])).await;
    assert_eq!(c.recv().await[4]["response"]["reason"], "unmatched topic");
}

#[tokio::test]
async fn leave_replies_ok_then_closes() {
    let server = start().await;
    let mut c = connect(&server).await;
    c.join("room:1", "1").await;
    c.send(json!(["1", "2", "room:1", "phx_leave", {}])).await;
    assert_eq!(
        c.recv().await,
        json!(["1", "2", "room:1", "phx_reply", {"status": "ok", "response": {}}])
    );
    assert_eq!(c.recv().await, json!(["1", "1", "room:1", "phx_close", {}]));
    c.send(json!(["8", "3", "room:7", "phx_leave", {}])).await;
    assert_eq!(
        c.recv().await,
        json!(["8", "3", "room:7", "phx_reply", {"status": "ok", "response": {}}])
    );
    server
        .control()
        .wait_for("room:1", "phx_leave", 1, WAIT)
        .await
        .unwrap();
}

#[tokio::test]
async fn server_pushes_broadcasts_and_stale_pushes_have_the_right_shape() {
    let server = start().await;
    let control = server.control();
    let mut c = connect(&server).await;
    c.join("room:1", "1").await;
    assert_eq!(
        control
            .push("room:1", "news", Payload::json(&json!({"a": 1})))
            .await,
        1
    );
    assert_eq!(
        c.recv().await,
        json!(["1", null, "room:1", "news", {"a": 1}])
    );
    assert_eq!(
        control.broadcast("room:1", "all", Payload::empty()).await,
        1
    );
    assert_eq!(c.recv().await, json!([null, null, "room:1", "all", {}]));
    assert_eq!(
        control
            .push_with_join_ref("room:1", "old", Payload::empty(), "0")
            .await,
        1
    );
    assert_eq!(c.recv().await, json!(["0", null, "room:1", "old", {}]));
    assert_eq!(
        control
            .push("room:1", "bin", Payload::Binary(vec![7, 8]))
            .await,
        1
    );
    assert_eq!(
        c.recv_binary().await,
        [0, 1, 6, 3, b'1', b'r', b'o', b'o', b'm', b':', b'1', b'b', b'i', b'n', 7, 8]
    );
    assert_eq!(control.push("room:2", "nobody", Payload::empty()).await, 0);
}

#[tokio::test]
async fn join_replies_can_be_overridden_and_reset() {
    let server = start().await;
    let control = server.control();
    let refusal = Reply {
        status: "error".into(),
        response: Payload::json(&json!({"reason": "denied"})),
    };
    control.set_join_reply("device", Some(refusal)).await;
    let mut c = connect_device(&server).await;
    c.send(json!(["1", "1", "device", "phx_join", {}])).await;
    assert_eq!(
        c.recv().await,
        json!(["1", "1", "device", "phx_reply", {"status": "error", "response": {"reason": "denied"}}])
    );
    assert!(control.connections().await[0].topics.is_empty());
    assert!(control
        .wait_joined("device", 1, std::time::Duration::ZERO)
        .await
        .is_err());
    control.set_join_reply("device", None).await;
    c.join("device", "2").await;
}

#[tokio::test]
async fn raw_frames_reach_every_client() {
    let server = start().await;
    let mut a = connect(&server).await;
    let mut b = connect(&server).await;
    // A round trip each makes sure both connections are registered.
    a.join("room:1", "1").await;
    b.join("room:1", "1").await;
    assert_eq!(server.control().send_raw_text("not json").await, 2);
    for c in [&mut a, &mut b] {
        assert!(
            matches!(c.next().await, Some(tokio_tungstenite::tungstenite::Message::Text(t)) if t.as_str() == "not json")
        );
    }
    assert_eq!(server.control().send_raw_binary(vec![9, 9]).await, 2);
    assert_eq!(a.recv_binary().await, [9, 9]);
}

#[tokio::test]
async fn wait_for_reports_what_was_received_on_timeout() {
    let server = start().await;
    let mut c = connect(&server).await;
    c.join("room:1", "1").await;
    let err = server
        .control()
        .wait_for("room:1", "never", 1, std::time::Duration::from_millis(20))
        .await
        .unwrap_err();
    assert!(err.contains("room:1 phx_join"), "{err}");
}

#[tokio::test]
async fn demo_mode_offers_its_firmware_only_to_a_device_that_can_take_it() {
    let config = nhc_devserver::Config {
        demo: true,
        ..Default::default()
    };
    let server = nhc_devserver::DevServer::start(config).await.unwrap();
    let mut c = connect_device_as(&server, "demo-device").await;
    c.join("device", "1").await;
    let offer = c.recv().await;
    assert_eq!(
        (&offer[0], &offer[1], &offer[2], &offer[3]),
        (
            &json!("1"),
            &json!(null),
            &json!("device"),
            &json!("update")
        )
    );
    let update = &offer[4];
    assert_eq!(update["update_available"], true);
    assert!(update["size"].as_u64().is_some_and(|n| n > 3 * 1024 * 1024));
    assert_eq!(
        update["partials_checksums"].as_array().map(Vec::len),
        Some(4)
    );
    let url = update["firmware_url"].as_str().unwrap();
    assert!(url.starts_with(&server.control_url()), "{url}");
    let uuid = update["firmware_meta"]["uuid"].clone();

    // A device already running the demo firmware gets nothing: NervesHub
    // has no greeting. The room's reply comes next.
    let mut again = connect_device(&server).await;
    again
        .send(json!(["7", "7", "device", "phx_join", {"nerves_fw_uuid": uuid}]))
        .await;
    assert_eq!(again.recv().await[3], "phx_reply");
    again.join("room:after", "8").await;

    // A device that rescheduled is not offered the firmware again until
    // its delay_for (milliseconds) has passed.
    c.send(json!(["1", "9", "device", "status_update",
        {"status": "rescheduled", "delay_for": 3_600_000}]))
        .await;
    server
        .control()
        .wait_for(
            "device",
            "status_update",
            1,
            std::time::Duration::from_secs(5),
        )
        .await
        .expect("recorded");
    // The same device again (its older socket is closed).
    let mut later = connect_device_as(&server, "demo-device").await;
    later
        .send(json!(["10", "10", "device", "phx_join", {"nerves_fw_uuid": "other"}]))
        .await;
    assert_eq!(later.recv().await[3], "phx_reply");
    later.join("room:later", "11").await;
}

#[tokio::test]
async fn wait_for_counts_in_total_and_restarts_after_reset() {
    let server = start().await;
    let control = server.control();
    let mut c = connect(&server).await;
    c.join("room:1", "1").await;
    let waiter = {
        let control = control.clone();
        tokio::spawn(async move { control.wait_for("room:1", "tick", 3, WAIT).await })
    };
    for n in 2..5 {
        c.send(json!(["1", n.to_string(), "room:1", "tick", {"n": n}]))
            .await;
    }
    let got = waiter.await.unwrap().unwrap();
    let ns: Vec<_> = got
        .iter()
        .filter_map(|r| r.message.payload.to_value())
        .map(|v| v["n"].clone())
        .collect();
    assert_eq!(ns, [json!(2), json!(3), json!(4)]);
    control.reset().await;
    assert!(control
        .wait_for("room:1", "tick", 1, std::time::Duration::ZERO)
        .await
        .is_err());
    c.send(json!(["1", "9", "room:1", "tick", {}])).await;
    assert_eq!(
        control
            .wait_for("room:1", "tick", 1, WAIT)
            .await
            .unwrap()
            .len(),
        1
    );
}
