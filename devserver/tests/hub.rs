//! NervesHub semantics: what follows a `device` join, the `extensions` join
//! reply, silence on device-facing topics, and the crashes of bad statuses.

mod common;

use common::{connect_device, connect_device_as, control_addr, http, start, WAIT};
use serde_json::json;

type Client = common::Client<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

#[tokio::test]
async fn a_device_join_gets_requested_keys_then_extensions_get() {
    let server = start().await;
    server
        .control()
        .set_public_keys(Some(vec!["k1".into(), "k2".into()]), None)
        .await;
    let mut c = connect_device(&server).await;
    c.send(json!(["1", "1", "device", "phx_join",
        {"device_api_version": "2.3.0", "fwup_public_keys": "on_connect"}]))
        .await;
    assert_eq!(c.recv().await[3], "phx_reply");
    // Broadcasts through PubSub: no join_ref.
    assert_eq!(
        c.recv().await,
        json!([null, null, "device", "fwup_public_keys", {"keys": ["k1", "k2"]}])
    );
    assert_eq!(
        c.recv().await,
        json!([null, null, "device", "extensions:get", {}])
    );
}

#[tokio::test]
async fn no_key_list_is_pushed_when_none_is_configured() {
    let server = start().await;
    server
        .control()
        .set_public_keys(Some(Vec::new()), Some(Vec::new()))
        .await;
    let mut c = connect_device(&server).await;
    c.send(json!(["1", "1", "device", "phx_join",
        {"device_api_version": "2.3.0", "fwup_public_keys": "on_connect",
         "archive_public_keys": "on_connect"}]))
        .await;
    assert_eq!(c.recv().await[3], "phx_reply");
    assert_eq!(
        c.recv().await,
        json!([null, null, "device", "extensions:get", {}])
    );
}

/// Sends `message`, then joins a room: the room's reply must be the next
/// frame, proving the server sent nothing in between.
async fn assert_no_answer(c: &mut Client, message: serde_json::Value, room_ref: &str) {
    c.send(message).await;
    c.send(json!([
        room_ref,
        room_ref,
        format!("room:{room_ref}"),
        "phx_join",
        {}
    ]))
    .await;
    let next = c.recv().await;
    assert_eq!(next[2], format!("room:{room_ref}"), "{next}");
}

#[tokio::test]
async fn bad_statuses_stages_and_values_crash_the_device_channel() {
    let server = start().await;
    let mut c = connect_device(&server).await;
    let bad = [
        json!({"status": "done"}),
        json!({"status": "downloading", "progress": "12"}),
        json!({"status": "rescheduled", "delay_for": "5"}),
    ];
    for (i, payload) in bad.into_iter().enumerate() {
        let join_ref = format!("j{i}");
        c.join("device", &join_ref).await;
        assert_no_answer(
            &mut c,
            json!([join_ref, "s", "device", "status_update", {"status": "received"}]),
            &format!("ok{i}"),
        )
        .await;
        c.send(json!([join_ref, "b", "device", "status_update", payload]))
            .await;
        assert_eq!(
            c.recv().await,
            json!([join_ref, join_ref, "device", "phx_error", {"reason": "channel_crash"}])
        );
    }
    for (i, payload) in [
        json!({"stage": "flashing", "value": 10}),
        json!({"stage": "updating", "value": 10.5}),
    ]
    .into_iter()
    .enumerate()
    {
        let join_ref = format!("p{i}");
        c.join("device", &join_ref).await;
        c.send(json!([join_ref, "b", "device", "fwup_progress", payload]))
            .await;
        assert_eq!(c.recv().await[3], "phx_error");
    }
    // The channel is gone after a crash: a push on it is an unmatched topic.
    c.send(json!(["p1", "x", "device", "status_update", {"status": "received"}]))
        .await;
    assert_eq!(c.recv().await[4]["status"], "error");
}

#[tokio::test]
async fn rescheduled_blocks_updates_for_delay_for_milliseconds() {
    let server = start().await;
    let addr = control_addr(&server);
    let mut c = connect_device_as(&server, "rescheduler").await;
    c.join("device", "1").await;
    let before = std::time::SystemTime::now();
    assert_no_answer(
        &mut c,
        json!(["1", "2", "device", "status_update",
            {"status": "rescheduled", "delay_for": 90_000, "reason": "busy"}]),
        "r",
    )
    .await;
    let until = server
        .control()
        .updates_blocked_until(Some("rescheduler"))
        .await
        .expect("blocked");
    let blocked = until.duration_since(before).expect("in the future");
    // 90 000 ms is 90 s, not 90 minutes.
    assert!(
        blocked >= std::time::Duration::from_secs(90)
            && blocked < std::time::Duration::from_secs(100),
        "{blocked:?}"
    );
    let (status, _, body) = http(&addr, "GET", "/updates_blocked", "").await;
    assert_eq!(status, 200);
    let list: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(list[0]["identity"], "rescheduler");
    assert!(list[0]["blocked_until_ms"].as_u64().is_some());
}

#[tokio::test]
async fn console_up_and_device_events_get_no_reply_and_unknown_console_events_crash() {
    let server = start().await;
    let mut c = connect_device(&server).await;
    c.join("console", "1").await;
    assert_no_answer(
        &mut c,
        json!(["1", "2", "console", "up", {"data": "$ "}]),
        "a",
    )
    .await;
    c.join("device", "3").await;
    assert_no_answer(
        &mut c,
        json!(["3", "4", "device", "report_network_interface", {"interface": "eth0"}]),
        "b",
    )
    .await;
    c.send(json!(["1", "5", "console", "shout", {}])).await;
    assert_eq!(c.recv().await[3], "phx_error");
}

#[tokio::test]
async fn events_of_an_extension_not_attached_are_answered_detach() {
    let server = start().await;
    let mut c = connect_device(&server).await;
    c.send(json!(["4", "4", "extensions", "phx_join", {"health": "0.0.1", "geo": "0.1.0"}]))
        .await;
    assert_eq!(c.recv().await[4]["response"], json!(["health"]));
    assert_no_answer(
        &mut c,
        json!(["4", "5", "extensions", "health:report", {"metrics": {}}]),
        "h",
    )
    .await;
    c.send(json!(["4", "6", "extensions", "geo:location", {}]))
        .await;
    assert_eq!(
        c.recv().await,
        json!(["4", "6", "extensions", "phx_reply", {"status": "error", "response": "detach"}])
    );
}

#[tokio::test]
async fn old_api_versions_get_no_extensions_get_and_device_pushes_get_no_reply() {
    let server = start().await;
    let mut c = connect_device(&server).await;
    c.send(json!(["1", "1", "device", "phx_join", {"device_api_version": "2.1.0"}]))
        .await;
    assert_eq!(c.recv().await[3], "phx_reply");
    c.send(json!(["1", "2", "device", "status_update", {"status": "received"}]))
        .await;
    // A room push is answered; had the device push been answered, its reply would come first.
    c.send(json!(["3", "3", "room:x", "phx_join", {}])).await;
    let next = c.recv().await;
    assert_eq!(next[2], "room:x", "{next}");
    server
        .control()
        .wait_for("device", "status_update", 1, WAIT)
        .await
        .expect("recorded");
}

#[tokio::test]
async fn the_extensions_join_attaches_the_enabled_offered_ones() {
    let server = start().await;
    let addr = control_addr(&server);
    let (status, _, _) = http(
        &addr,
        "POST",
        "/extensions",
        r#"{"enabled":["geo","health"]}"#,
    )
    .await;
    assert_eq!(status, 200);
    let mut c = connect_device(&server).await;
    c.send(json!(["4", "4", "extensions", "phx_join",
        {"health": "0.0.1", "logging": "0.0.1", "geo": "0.0.1"}]))
        .await;
    assert_eq!(
        c.recv().await,
        json!(["4", "4", "extensions", "phx_reply", {"status": "ok", "response": ["geo", "health"]}])
    );
    let (status, _, _) = http(&addr, "POST", "/public_keys", r#"{"archive":["a"]}"#).await;
    assert_eq!(status, 200);
    let (status, _, _) = http(&addr, "POST", "/extensions", r#"{"enabled":"geo"}"#).await;
    assert_eq!(status, 400);
}
