//! The NH1 control endpoints (`POST /shared_secret`, `POST /clock_skew`) and
//! the refusals a raw upgrade gets, as the C and Python suites see them.

mod common;

use std::time::{SystemTime, UNIX_EPOCH};

use common::*;
use nerves_hub_channel::nerves_hub::nh1::{parse_http_date, sign_headers, SharedSecret};
use nhc_devserver::DevServer;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn post(server: &DevServer, path: &str, body: Value) -> (u16, Value) {
    let (status, _, text) = http(&control_addr(server), "POST", path, &body.to_string()).await;
    let value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text:?}"));
    (status, value)
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

/// A websocket upgrade on the ws listener with `headers`: (status, head, body).
async fn upgrade(server: &DevServer, headers: &[(String, String)]) -> (u16, String, String) {
    let port = server
        .ws_url()
        .split(':')
        .nth(2)
        .and_then(|rest| rest.split('/').next())
        .and_then(|p| p.parse::<u16>().ok())
        .expect("ws port");
    let mut stream = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let mut request = format!(
        "GET /device-socket/websocket?vsn=2.0.0 HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\
         Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).await.expect("write");
    // A 101 leaves the connection open, so read the head, then Content-Length bytes.
    let read = async {
        let mut response = Vec::new();
        let mut byte = [0u8; 1];
        while !response.ends_with(b"\r\n\r\n") {
            stream.read_exact(&mut byte).await.expect("read head");
            response.push(byte[0]);
        }
        let (status, head, _) = parse_response(&String::from_utf8_lossy(&response));
        let length = header(&head, "content-length").map_or(0, |v| v.parse().expect("length"));
        let mut body = vec![0u8; length];
        stream.read_exact(&mut body).await.expect("read body");
        (status, head, String::from_utf8_lossy(&body).into_owned())
    };
    tokio::time::timeout(WAIT, read)
        .await
        .expect("response within WAIT")
}

fn date_of(head: &str) -> u64 {
    let date = header(head, "date").unwrap_or_else(|| panic!("no Date in {head}"));
    parse_http_date(date).unwrap_or_else(|| panic!("unreadable Date {date:?}"))
}

#[tokio::test]
async fn shared_secrets_are_added_and_checked() {
    let server = start().await;
    let secret = SharedSecret::new("nhp_api", "api-secret", "api-device");
    let signed = sign_headers(&secret, unix_now());
    let (status, head, body) = upgrade(&server, &signed).await;
    assert_eq!(status, 401, "unknown key: {head}");
    assert_eq!(body, "", "a bare 401");
    assert_eq!(header(&head, "nh-connection-error-reason"), None);

    let ok = post(
        &server,
        "/shared_secret",
        json!({"key": "nhp_api", "secret": "api-secret"}),
    )
    .await;
    assert_eq!(ok, (200, json!({"ok": true})));
    let (status, head, _) = upgrade(&server, &sign_headers(&secret, unix_now())).await;
    assert_eq!(status, 101, "{head}");
}

#[tokio::test]
async fn bad_shared_secrets_are_400s_that_do_not_echo_the_secret() {
    let server = start().await;
    for body in [
        json!({"key": "nhp_x", "secret": "hidden-value", "identifier": "d"}),
        json!({"key": "nhd_x", "secret": "hidden-value"}),
        json!({"key": "", "secret": "hidden-value"}),
        json!({"key": "nhp_x"}),
        json!({"key": "nhp_x", "secret": "hidden-value", "other": 1}),
    ] {
        let (status, answer) = post(&server, "/shared_secret", body.clone()).await;
        assert_eq!(status, 400, "{body}");
        assert!(answer["error"].is_string(), "{answer}");
        assert!(!answer.to_string().contains("hidden-value"), "{answer}");
    }
}

#[tokio::test]
async fn clock_skew_moves_the_date_and_the_window_until_reset() {
    let server = start().await;
    let (status, head, body) = upgrade(&server, &[]).await;
    assert_eq!(
        status, 401,
        "the shared-secret mount refuses anonymous clients: {head}"
    );
    assert_eq!(body, nhc_devserver::NO_CREDENTIALS);

    assert_eq!(
        post(&server, "/clock_skew", json!({"seconds": 3600})).await,
        (200, json!({"ok": true}))
    );
    post(
        &server,
        "/shared_secret",
        json!({"key": "nhd_dev", "secret": "s", "identifier": "dev"}),
    )
    .await;
    let secret = SharedSecret::new("nhd_dev", "s", "dev");
    let before = unix_now();
    let (status, head, _) = upgrade(&server, &sign_headers(&secret, before)).await;
    assert_eq!(status, 401, "an hour-old signature: {head}");
    let date = date_of(&head);
    assert!(
        (before + 3600..=unix_now() + 3601).contains(&date),
        "{date} vs {before}"
    );
    // Signing at the server's Date is accepted.
    let (status, head, _) = upgrade(&server, &sign_headers(&secret, date)).await;
    assert_eq!(status, 101, "{head}");

    assert_eq!(
        post(&server, "/reset", json!({})).await,
        (200, json!({"ok": true}))
    );
    let (status, head, _) = upgrade(&server, &sign_headers(&secret, date)).await;
    assert_eq!(status, 401, "from the future once the skew is gone: {head}");
    assert!(date_of(&head) <= unix_now());
}

#[tokio::test]
async fn the_ws_listener_only_checks_x_nh_headers() {
    // Unlike the wss device endpoint, where any x-* header means "shared
    // secret" (and a refusal is a bare 401): here the client is anonymous.
    let server = start().await;
    let (status, head, _) = upgrade(&server, &[("x-forwarded-for".into(), "1.2.3.4".into())]).await;
    assert_eq!(status, 401, "{head}");
    assert_eq!(
        header(&head, "nh-connection-error-reason"),
        Some(nhc_devserver::NO_CREDENTIALS)
    );
    let (status, head, _) = upgrade(&server, &[("x-nh-key".into(), "nhp_x".into())]).await;
    assert_eq!(status, 401, "{head}");
}

#[test]
fn the_binary_refuses_a_bad_shared_secret_without_echoing_it() {
    for arg in [
        "nhd_key:hidden-value",
        "nhp_key:hidden-value:id",
        "no-colon",
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_nhc-devserver"))
            .args(["--shared-secret", arg])
            .output()
            .expect("runs");
        assert_eq!(out.status.code(), Some(2), "{arg}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("shared"), "{arg}: {stderr}");
        assert!(!stderr.contains("hidden-value"), "{arg}: {stderr}");
    }
}
