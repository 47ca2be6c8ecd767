//! NervesHub semantics: what follows a `device` join, the `extensions` join
//! reply, and silence on device-facing topics.

mod common;

use common::{connect, control_addr, http, start, WAIT};
use serde_json::json;

#[tokio::test]
async fn a_device_join_gets_requested_keys_then_extensions_get() {
    let server = start().await;
    server
        .control()
        .set_public_keys(Some(vec!["k1".into(), "k2".into()]), None)
        .await;
    let mut c = connect(&server).await;
    c.send(json!(["1", "1", "device", "phx_join",
        {"device_api_version": "2.3.0", "fwup_public_keys": "on_connect"}]))
        .await;
    assert_eq!(c.recv().await[3], "phx_reply");
    assert_eq!(
        c.recv().await,
        json!(["1", null, "device", "fwup_public_keys", {"keys": ["k1", "k2"]}])
    );
    assert_eq!(
        c.recv().await,
        json!(["1", null, "device", "extensions:get", {}])
    );
}

#[tokio::test]
async fn old_api_versions_get_no_extensions_get_and_device_pushes_get_no_reply() {
    let server = start().await;
    let mut c = connect(&server).await;
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
    let mut c = connect(&server).await;
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
