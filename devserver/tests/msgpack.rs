//! The MessagePack serializer (vsn 3.0.0) as NervesHub's endpoint speaks it:
//! binary frames both ways, integer refs read as text, and a socket that
//! ends on a text frame or bad MessagePack (NervesHub's serializer raises).

mod common;

use common::{connect_url, start, Client};
use nerves_hub_channel::codec::{Frame, Serializer};
use nerves_hub_channel::{Inbound, Message, Payload};
use serde_json::json;
use tokio::net::TcpStream;
use tokio_tungstenite::MaybeTlsStream;

const MP: Serializer = Serializer::MsgPack;

async fn connect_msgpack(server: &nhc_devserver::DevServer) -> Client<MaybeTlsStream<TcpStream>> {
    connect_url(&format!("{}?vsn=3.0.0", server.ws_url())).await
}

fn packed(
    join_ref: Option<&str>,
    msg_ref: &str,
    topic: &str,
    event: &str,
    payload: serde_json::Value,
) -> Vec<u8> {
    let msg = Message {
        join_ref: join_ref.map(str::to_owned),
        msg_ref: Some(msg_ref.to_owned()),
        topic: topic.to_owned(),
        event: event.to_owned(),
        payload: Payload::json(&payload),
    };
    match MP.encode_client(&msg).expect("encodes") {
        Frame::Binary(bytes) => bytes,
        Frame::Text(_) => panic!("MessagePack frames are binary"),
    }
}

async fn recv(c: &mut Client<MaybeTlsStream<TcpStream>>) -> Inbound {
    let bytes = c.recv_binary().await;
    MP.decode_server(&Frame::Binary(bytes))
        .expect("a MessagePack frame")
}

fn reply_of(
    inbound: Inbound,
) -> (
    Option<String>,
    Option<String>,
    String,
    String,
    serde_json::Value,
) {
    match inbound {
        Inbound::Reply {
            join_ref,
            msg_ref,
            topic,
            reply,
        } => (
            join_ref,
            msg_ref,
            topic,
            reply.status,
            reply.response.to_value().expect("JSON response"),
        ),
        other => panic!("expected a reply, got {other:?}"),
    }
}

#[tokio::test]
async fn join_push_and_heartbeat_over_msgpack() {
    let server = start().await;
    let mut c = connect_msgpack(&server).await;
    c.send_binary(packed(Some("1"), "1", "room:1", "phx_join", json!({})))
        .await;
    assert_eq!(
        reply_of(recv(&mut c).await),
        (
            Some("1".into()),
            Some("1".into()),
            "room:1".into(),
            "ok".into(),
            json!({})
        )
    );
    c.send_binary(packed(
        Some("1"),
        "2",
        "room:1",
        "ping",
        json!({"n": [1, 2.5, null]}),
    ))
    .await;
    assert_eq!(reply_of(recv(&mut c).await).4, json!({"n": [1, 2.5, null]}));
    // [nil, 5, "phoenix", "heartbeat", {}] with an integer ref: the reply's ref is text.
    let heartbeat = [
        &[0x95, 0xc0, 0x05, 0xa7][..],
        b"phoenix",
        &[0xa9],
        b"heartbeat",
        &[0x80],
    ]
    .concat();
    c.send_binary(heartbeat).await;
    assert_eq!(
        reply_of(recv(&mut c).await),
        (
            None,
            Some("5".into()),
            "phoenix".into(),
            "ok".into(),
            json!({})
        )
    );
    let conns = server.control().connections().await;
    assert_eq!(conns[0].serializer, Serializer::MsgPack);

    let n = server
        .control()
        .push("room:1", "news", Payload::json(&json!({"a": "b"})))
        .await;
    assert_eq!(n, 1);
    match recv(&mut c).await {
        Inbound::Message(m) => {
            assert_eq!((m.topic.as_str(), m.event.as_str()), ("room:1", "news"));
            assert_eq!(m.payload.to_value(), Some(json!({"a": "b"})));
        }
        other => panic!("expected a push, got {other:?}"),
    }
}

#[tokio::test]
async fn a_text_frame_under_3_0_0_ends_the_socket() {
    let server = start().await;
    let mut c = connect_msgpack(&server).await;
    c.send(json!(["1", "1", "room:1", "phx_join", {}])).await;
    assert_eq!(c.close_code().await, Some(1003));
    assert!(server.control().received().await.is_empty());
}

#[tokio::test]
async fn bad_msgpack_ends_the_socket() {
    let server = start().await;
    let mut c = connect_msgpack(&server).await;
    c.send_binary(vec![0x93, 0x01, 0x02, 0x03]).await;
    assert_eq!(c.close_code().await, Some(1007));
}

#[tokio::test]
async fn a_json_socket_still_speaks_json() {
    let server = start().await;
    let mut c = connect_url(&format!("{}?vsn=2.0.7", server.ws_url())).await;
    c.join("room:1", "1").await;
    assert_eq!(
        server.control().connections().await[0].serializer,
        Serializer::Json
    );
}
