//! The HTTP control API, driven with raw HTTP/1.1 over a TcpStream, as the
//! C and Python suites do.

mod common;

use common::*;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn call(
    server: &nhc_devserver::DevServer,
    method: &str,
    path: &str,
    body: Value,
) -> (u16, Value) {
    let body = if body.is_null() {
        String::new()
    } else {
        body.to_string()
    };
    let (status, head, text) = http(&control_addr(server), method, path, &body).await;
    assert_eq!(
        header(&head, "content-type"),
        Some("application/json"),
        "{head}"
    );
    (
        status,
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text:?}")),
    )
}

#[tokio::test]
async fn push_received_and_wait_round_trip() {
    let server = start().await;
    let mut c = connect(&server).await;
    c.join("room:1", "1").await;

    let (status, body) = call(
        &server,
        "POST",
        "/push",
        json!({"topic": "room:1", "event": "news", "payload": {"n": 1.5}}),
    )
    .await;
    assert_eq!((status, body), (200, json!({"delivered": 1})));
    assert_eq!(
        c.recv().await,
        json!(["1", null, "room:1", "news", {"n": 1.5}])
    );

    let (_, body) = call(
        &server,
        "POST",
        "/push",
        json!({"topic": "room:1", "event": "b", "binary_base64": "AQID"}),
    )
    .await;
    assert_eq!(body, json!({"delivered": 1}));
    assert_eq!(
        c.recv_binary().await,
        [0, 1, 6, 1, b'1', b'r', b'o', b'o', b'm', b':', b'1', b'b', 1, 2, 3]
    );

    let (_, body) = call(
        &server,
        "POST",
        "/push",
        json!({"topic": "room:1", "event": "s", "join_ref": "77"}),
    )
    .await;
    assert_eq!(body, json!({"delivered": 1}));
    assert_eq!(c.recv().await, json!(["77", null, "room:1", "s", {}]));

    let (_, body) = call(
        &server,
        "POST",
        "/broadcast",
        json!({"topic": "room:1", "event": "all", "payload": {}}),
    )
    .await;
    assert_eq!(body, json!({"delivered": 1}));
    assert_eq!(c.recv().await, json!([null, null, "room:1", "all", {}]));

    // /wait is answered as soon as the message arrives.
    let wait = {
        let addr = control_addr(&server);
        tokio::spawn(async move {
            let body = json!({"topic": "room:1", "event": "up", "count": 1, "timeout_ms": 10_000})
                .to_string();
            http(&addr, "POST", "/wait", &body).await
        })
    };
    c.send(json!(["1", "2", "room:1", "up", {"v": [1, 2]}]))
        .await;
    c.recv().await;
    let (status, _, text) = wait.await.unwrap();
    assert_eq!(status, 200);
    let waited: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(waited[0]["payload"], json!({"v": [1, 2]}));

    let (status, received) = call(&server, "GET", "/received", Value::Null).await;
    assert_eq!(status, 200);
    let conn = received[0]["connection"].clone();
    assert_eq!(
        received,
        json!([
            {"connection": conn, "identity": null, "join_ref": "1", "ref": "1", "topic": "room:1", "event": "phx_join", "payload": {}},
            {"connection": conn, "identity": null, "join_ref": "1", "ref": "2", "topic": "room:1", "event": "up", "payload": {"v": [1, 2]}},
        ])
    );
}

#[tokio::test]
async fn wait_times_out_with_408() {
    let server = start().await;
    let (status, body) = call(
        &server,
        "POST",
        "/wait",
        json!({"topic": "x", "event": "y", "count": 1, "timeout_ms": 10}),
    )
    .await;
    assert_eq!(status, 408);
    assert!(body["error"].as_str().unwrap().contains("timed out"));
    let (status, _) = call(
        &server,
        "POST",
        "/wait_joined",
        json!({"topic": "x", "count": 1, "timeout_ms": 10}),
    )
    .await;
    assert_eq!(status, 408);
}

#[tokio::test]
async fn every_control_endpoint_answers() {
    let server = start().await;
    let mut c = connect(&server).await;
    c.join("room:1", "1").await;
    let (status, _) = call(
        &server,
        "POST",
        "/wait_joined",
        json!({"topic": "room:1", "count": 1, "timeout_ms": 1000}),
    )
    .await;
    assert_eq!(status, 200);
    // A timeout far beyond any clock must not overflow.
    let forever = json!({"topic": "room:1", "count": 1, "timeout_ms": u64::MAX});
    assert_eq!(call(&server, "POST", "/wait_joined", forever).await.0, 200);

    let (_, conns) = call(&server, "GET", "/connections", Value::Null).await;
    assert_eq!(conns[0]["topics"], json!(["room:1"]));
    assert_eq!(conns[0]["path"], "/socket/websocket");

    assert_eq!(
        call(&server, "POST", "/crash", json!({"topic": "room:1"}))
            .await
            .1,
        json!({"delivered": 1})
    );
    assert_eq!(c.recv().await[3], "phx_error");
    c.join("room:1", "2").await;
    assert_eq!(
        call(&server, "POST", "/close", json!({"topic": "room:1"}))
            .await
            .1,
        json!({"delivered": 1})
    );
    assert_eq!(c.recv().await[3], "phx_close");

    assert_eq!(
        call(&server, "POST", "/heartbeats", json!({"answer": false}))
            .await
            .0,
        200
    );
    c.send(json!([null, "3", "phoenix", "heartbeat", {}])).await;
    assert_eq!(
        call(&server, "POST", "/heartbeats", json!({"answer": true}))
            .await
            .0,
        200
    );
    c.send(json!([null, "4", "phoenix", "heartbeat", {}])).await;
    assert_eq!(c.recv().await[1], "4");

    assert_eq!(
        call(&server, "POST", "/raw", json!({"text": "[1,2"}))
            .await
            .1,
        json!({"delivered": 1})
    );
    assert!(
        matches!(c.next().await, Some(tokio_tungstenite::tungstenite::Message::Text(t)) if t.as_str() == "[1,2")
    );
    assert_eq!(
        call(&server, "POST", "/raw", json!({"binary_base64": "/w=="}))
            .await
            .1,
        json!({"delivered": 1})
    );
    assert_eq!(c.recv_binary().await, [255]);

    let (status, _) = call(
        &server,
        "POST",
        "/join_reply",
        json!({"topic": "room:5", "status": "error", "response": {"reason": "no"}}),
    )
    .await;
    assert_eq!(status, 200);
    c.send(json!(["5", "5", "room:5", "phx_join", {}])).await;
    assert_eq!(
        c.recv().await[4],
        json!({"status": "error", "response": {"reason": "no"}})
    );
    assert_eq!(
        call(
            &server,
            "POST",
            "/join_reply",
            json!({"topic": "room:5", "reset": true})
        )
        .await
        .0,
        200
    );
    c.join("room:5", "6").await;

    let (status, issued) = call(&server, "POST", "/issue_device", json!({"cn": "dev-2"})).await;
    assert_eq!(status, 200);
    assert!(std::path::Path::new(issued["cert"].as_str().unwrap()).is_file());

    let (_, info) = call(&server, "GET", "/", Value::Null).await;
    assert_eq!(info["ws_url"], server.ws_url());

    assert_eq!(call(&server, "POST", "/reset", Value::Null).await.0, 200);
    assert_eq!(
        call(&server, "GET", "/received", Value::Null).await.1,
        json!([])
    );

    assert_eq!(
        call(&server, "POST", "/close_connections", json!({"code": 4000}))
            .await
            .1,
        json!({"delivered": 1})
    );
    assert_eq!(c.close_code().await, Some(4000));
    let mut c = connect(&server).await;
    c.join("room:1", "1").await;
    assert_eq!(
        call(&server, "POST", "/drop", Value::Null).await.1,
        json!({"delivered": 1})
    );
    assert_eq!(c.close_code().await, None);
}

#[tokio::test]
async fn bad_requests_get_json_errors() {
    let server = start().await;
    let addr = control_addr(&server);
    let (status, _, body) = http(&addr, "GET", "/nope", "").await;
    assert_eq!(status, 404);
    assert!(serde_json::from_str::<Value>(&body).unwrap()["error"].is_string());
    let (status, _, body) = http(&addr, "POST", "/push", "{not json").await;
    assert_eq!(status, 400);
    assert!(body.contains("bad JSON"), "{body}");
    let (status, _, body) = http(&addr, "POST", "/push", r#"{"topic": "a"}"#).await;
    assert_eq!(status, 400);
    assert!(body.contains("event"), "{body}");
    let (status, _, _) = http(
        &addr,
        "POST",
        "/push",
        r#"{"topic": "a", "event": "b", "binary_base64": "%%%"}"#,
    )
    .await;
    assert_eq!(status, 400);
    let (status, _, _) = http(&addr, "GET", "/push", "").await;
    assert_eq!(status, 405);
    let (status, _, _) = http(
        &addr,
        "POST",
        "/heartbeats",
        r#"{"answer": true, "typo": 1}"#,
    )
    .await;
    assert_eq!(status, 400);
    // Garbage instead of HTTP gets a 400 and a closed connection.
    let mut stream = TcpStream::connect(&addr).await.unwrap();
    stream
        .write_all(b"\x00\x01\x02 nonsense\r\n\r\n")
        .await
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    assert!(response.starts_with("HTTP/1.1 400"), "{response}");
}

#[tokio::test]
async fn connections_are_kept_alive_and_requests_may_be_pipelined() {
    let server = start().await;
    let addr = control_addr(&server);
    let mut stream = TcpStream::connect(&addr).await.unwrap();
    let one = format!("POST /reset HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\n\r\n");
    let two = format!("GET /received HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream
        .write_all(format!("{one}{two}").as_bytes())
        .await
        .unwrap();
    let mut response = String::new();
    tokio::time::timeout(WAIT, stream.read_to_string(&mut response))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(response.matches("HTTP/1.1 200 OK").count(), 2, "{response}");
    assert!(response.ends_with("[]"), "{response}");
}

#[tokio::test]
async fn expect_100_continue_is_honoured() {
    let server = start().await;
    let addr = control_addr(&server);
    let mut stream = TcpStream::connect(&addr).await.unwrap();
    let body =
        json!({"topic": "room:1", "event": "e", "payload": {"big": "x".repeat(2000)}}).to_string();
    let head = format!(
        "POST /push HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut interim = [0u8; 25];
    stream.read_exact(&mut interim).await.unwrap();
    assert_eq!(&interim, b"HTTP/1.1 100 Continue\r\n\r\n");
    stream.write_all(body.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    assert!(response.ends_with(r#"{"delivered":0}"#), "{response}");
}
