//! Connection-level behaviour: upgrade refusals, closes, idle timeout, bad frames.

mod common;

use std::time::Duration;

use common::*;
use nhc_devserver::{Config, DevServer};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Sends a websocket upgrade request for `target` and returns the raw response.
async fn upgrade(server: &DevServer, target: &str) -> (u16, String, String) {
    let addr = server
        .ws_url()
        .trim_start_matches("ws://")
        .split('/')
        .next()
        .unwrap()
        .to_owned();
    let mut stream = TcpStream::connect(&addr).await.unwrap();
    let request = format!(
        "GET {target} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(WAIT, stream.read_to_end(&mut response))
        .await
        .unwrap()
        .unwrap();
    parse_response(&String::from_utf8_lossy(&response))
}

fn is_imf_fixdate(date: &str) -> bool {
    // "Sun, 06 Nov 1994 08:49:37 GMT"
    let b = date.as_bytes();
    b.len() == 29
        && date.ends_with(" GMT")
        && ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"].contains(&&date[..3])
        && &date[3..5] == ", "
        && b[7] == b' '
        && b[11] == b' '
        && b[16] == b' '
        && b[19] == b':'
        && b[22] == b':'
}

#[tokio::test]
async fn a_missing_or_wrong_vsn_is_an_empty_403_with_a_date() {
    let server = start().await;
    for target in [
        "/socket/websocket",
        "/socket/websocket?vsn=1.0.0",
        "/socket/websocket?vsn=3.1.0",
        "/socket/websocket?vsn=3.0",
        "/socket/websocket?vsn=3.0.0-rc.1",
        "/device-socket/websocket?vsn=2.1.0",
    ] {
        let (status, head, body) = upgrade(&server, target).await;
        assert_eq!(status, 403, "{target}: {head}");
        assert_eq!(body, "");
        let date = header(&head, "date").expect("a Date header");
        assert!(is_imf_fixdate(date), "{date}");
    }
}

#[tokio::test]
async fn an_unknown_path_is_404() {
    let server = start().await;
    let (status, head, _) = upgrade(&server, "/nope/websocket?vsn=2.0.0").await;
    assert_eq!(status, 404);
    assert!(header(&head, "date").is_some());
}

#[tokio::test]
async fn the_shared_secret_mount_refuses_anonymous_devices_like_nerves_hub() {
    let server = start().await;
    let (status, head, body) = upgrade(&server, "/device-socket/websocket?vsn=2.0.0").await;
    assert_eq!(status, 401, "{head}");
    assert_eq!(
        header(&head, "nh-connection-error-reason"),
        Some(nhc_devserver::NO_CREDENTIALS)
    );
    assert_eq!(body, nhc_devserver::NO_CREDENTIALS);
    assert!(server.control().connections().await.is_empty());
}

#[tokio::test]
async fn drop_closes_without_a_close_frame() {
    let server = start().await;
    let mut c = connect(&server).await;
    c.join("room:1", "1").await;
    assert_eq!(server.control().drop_connections().await, 1);
    assert_eq!(c.close_code().await, None);
    assert!(server.control().connections().await.is_empty());
}

#[tokio::test]
async fn close_connections_sends_the_code() {
    let server = start().await;
    let mut c = connect(&server).await;
    c.join("room:1", "1").await;
    assert_eq!(server.control().close_connections(1012).await, 1);
    assert_eq!(c.close_code().await, Some(1012));
}

#[tokio::test]
async fn an_idle_connection_is_closed_with_1002() {
    let config = Config {
        idle_timeout: Duration::from_millis(100),
        ..Config::default()
    };
    let server = DevServer::start(config).await.unwrap();
    let mut c = connect(&server).await;
    assert_eq!(c.close_code().await, Some(1002));
}

#[tokio::test]
async fn malformed_text_is_closed_with_1007() {
    let server = start().await;
    let mut c = connect(&server).await;
    c.send(json!({"not": "an array"})).await;
    assert_eq!(c.close_code().await, Some(1007));
}

#[tokio::test]
async fn unsupported_binary_kinds_are_closed_with_1003() {
    let server = start().await;
    let mut c = connect(&server).await;
    c.send_binary(vec![2, 0, 0]).await;
    assert_eq!(c.close_code().await, Some(1003));
    let mut c = connect(&server).await;
    c.send_binary(vec![0, 200, 1, 1]).await;
    assert_eq!(c.close_code().await, Some(1007));
}

#[tokio::test]
async fn a_bad_client_does_not_disturb_the_others() {
    let server = start().await;
    let mut good = connect(&server).await;
    good.join("room:1", "1").await;
    let mut bad = connect(&server).await;
    bad.send_binary(vec![]).await;
    assert!(bad.close_code().await.is_some());
    good.send(json!(["1", "2", "room:1", "ping", {}])).await;
    assert_eq!(good.recv().await[1], "2");
}

#[tokio::test]
async fn shutdown_closes_everything() {
    let server = start().await;
    let mut c = connect(&server).await;
    c.join("room:1", "1").await;
    let ws_url = server.ws_url();
    server.shutdown().await;
    assert_eq!(c.close_code().await, None);
    assert!(tokio_tungstenite::connect_async(with_vsn(&ws_url))
        .await
        .is_err());
}

#[tokio::test]
async fn an_oversized_message_is_closed_with_1009() {
    let server = start().await;
    let mut c = connect(&server).await;
    let big = "x".repeat(nhc_devserver::MAX_MESSAGE_SIZE + 1);
    // The server may close while the frame is still being written.
    let _ = futures_util::SinkExt::send(
        &mut c.ws,
        tokio_tungstenite::tungstenite::Message::text(big),
    )
    .await;
    assert_eq!(c.close_code().await, Some(1009));
}

#[tokio::test]
async fn garbage_frames_never_take_the_server_down() {
    let server = start().await;
    let texts = [
        "",
        "[]",
        "null",
        "[1,2,3,4,5]",
        r#"["1","2",3,"e",{}]"#,
        r#"[null,null,"t","e"]"#,
        r#"[null,null,"t","e",{},6]"#,
        &"[".repeat(10_000),
        "\u{feff}[]",
    ];
    for text in texts {
        let mut c = connect(&server).await;
        let _ = futures_util::SinkExt::send(
            &mut c.ws,
            tokio_tungstenite::tungstenite::Message::text(text),
        )
        .await;
        assert_eq!(c.close_code().await, Some(1007), "{text:.20}");
    }
    for bytes in [
        vec![0],
        vec![0, 5, 0, 0, 0],
        vec![0, 0, 0, 1, 1, 0xff, 0xfe],
        vec![1, 0, 0, 0, 0],
    ] {
        let mut c = connect(&server).await;
        c.send_binary(bytes.clone()).await;
        assert!(c.close_code().await.is_some(), "{bytes:?}");
    }
    let mut c = connect(&server).await;
    c.join("room:1", "1").await;
}
