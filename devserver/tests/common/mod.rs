//! Helpers for the dev server's own tests: a raw websocket client speaking
//! V2 JSON frames, TLS client configs from the server's PKI, and raw HTTP.
//! Every wait is bounded by WAIT and driven by the server's own output.
#![allow(dead_code)]

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use nerves_hub_channel::nerves_hub::nh1::{sign_headers, SharedSecret};
use nhc_devserver::{Config, DevServer};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_tungstenite::tungstenite::Message as WsMessage;
use tokio_tungstenite::WebSocketStream;

pub const WAIT: Duration = Duration::from_secs(10);

pub async fn start() -> DevServer {
    DevServer::start(Config::default())
        .await
        .expect("dev server starts")
}

pub fn with_vsn(url: &str) -> String {
    format!("{url}?vsn=2.0.0")
}

pub struct Client<S> {
    pub ws: WebSocketStream<S>,
}

pub async fn connect(server: &DevServer) -> Client<tokio_tungstenite::MaybeTlsStream<TcpStream>> {
    connect_url(&with_vsn(&server.ws_url())).await
}

/// The product key and secret `connect_device` signs with.
pub const PRODUCT_KEY: &str = "nhp_devserver_tests";
const PRODUCT_SECRET: &str = "devserver-tests-secret";

/// A device connection, as NervesHub wants one: NH1-signed on the device
/// socket, under an identifier of its own (the server closes the older
/// socket of an identity that connects again). Device topics (`device`,
/// `console`, `extensions`) join only on such a connection.
pub async fn connect_device(
    server: &DevServer,
) -> Client<tokio_tungstenite::MaybeTlsStream<TcpStream>> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let identifier = format!("devserver-test-{}", NEXT.fetch_add(1, Ordering::Relaxed));
    connect_device_as(server, &identifier).await
}

/// `connect_device` under a chosen identifier: the same device again.
pub async fn connect_device_as(
    server: &DevServer,
    identifier: &str,
) -> Client<tokio_tungstenite::MaybeTlsStream<TcpStream>> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::http::{HeaderName, HeaderValue};
    // Adding the same entry again is refused; the first add is what counts.
    let _ = server.add_shared_secret(nhc_devserver::SharedSecretEntry::new(
        PRODUCT_KEY,
        PRODUCT_SECRET,
        None,
    ));
    let secret = SharedSecret::new(PRODUCT_KEY, PRODUCT_SECRET, identifier);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs();
    let mut request = with_vsn(&server.device_socket_url())
        .into_client_request()
        .expect("request");
    for (name, value) in sign_headers(&secret, now) {
        request.headers_mut().insert(
            HeaderName::from_bytes(name.as_bytes()).expect("header name"),
            HeaderValue::from_str(&value).expect("header value"),
        );
    }
    let (ws, _) = tokio_tungstenite::connect_async(request)
        .await
        .expect("device socket connects");
    Client { ws }
}

pub async fn connect_url(url: &str) -> Client<tokio_tungstenite::MaybeTlsStream<TcpStream>> {
    let (ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("websocket connects");
    Client { ws }
}

impl<S: AsyncRead + AsyncWrite + Unpin> Client<S> {
    pub async fn send(&mut self, frame: Value) {
        self.ws
            .send(WsMessage::text(frame.to_string()))
            .await
            .expect("send");
    }

    pub async fn send_binary(&mut self, bytes: Vec<u8>) {
        self.ws.send(WsMessage::binary(bytes)).await.expect("send");
    }

    /// The next data or close frame from the server.
    pub async fn next(&mut self) -> Option<WsMessage> {
        loop {
            let next = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("a frame within WAIT");
            match next {
                Some(Ok(WsMessage::Ping(_) | WsMessage::Pong(_))) => continue,
                Some(Ok(msg)) => return Some(msg),
                Some(Err(_)) | None => return None,
            }
        }
    }

    /// The next frame, which must be a V2 JSON text frame.
    pub async fn recv(&mut self) -> Value {
        match self.next().await {
            Some(WsMessage::Text(text)) => serde_json::from_str(text.as_str()).expect("JSON frame"),
            other => panic!("expected a text frame, got {other:?}"),
        }
    }

    pub async fn recv_binary(&mut self) -> Vec<u8> {
        match self.next().await {
            Some(WsMessage::Binary(bytes)) => bytes.to_vec(),
            other => panic!("expected a binary frame, got {other:?}"),
        }
    }

    /// The close code the server sent, or None if the socket ended without a close frame.
    pub async fn close_code(&mut self) -> Option<u16> {
        loop {
            match self.next().await {
                Some(WsMessage::Close(frame)) => return frame.map(|f| u16::from(f.code)),
                Some(_) => continue,
                None => return None,
            }
        }
    }

    /// Joins `topic` with join_ref = ref = `join_ref` and checks the ok reply.
    pub async fn join(&mut self, topic: &str, join_ref: &str) {
        self.send(serde_json::json!([
            join_ref,
            join_ref,
            topic,
            "phx_join",
            {}
        ]))
        .await;
        let reply = self.recv().await;
        assert_eq!(
            reply,
            serde_json::json!([join_ref, join_ref, topic, "phx_reply", {"status": "ok", "response": {}}])
        );
    }
}

fn certs(path: &Path) -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_file_iter(path)
        .expect("PEM file")
        .collect::<Result<_, _>>()
        .expect("certificates")
}

pub fn tls_config(
    ca: &Path,
    client: Option<(&Path, &Path)>,
    tls12_only: bool,
) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    for cert in certs(ca) {
        roots.add(cert).expect("CA");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider);
    let builder = if tls12_only {
        builder.with_protocol_versions(&[&rustls::version::TLS12])
    } else {
        builder.with_safe_default_protocol_versions()
    }
    .expect("versions")
    .with_root_certificates(roots);
    let config = match client {
        Some((cert, key)) => builder
            .with_client_auth_cert(certs(cert), PrivateKeyDer::from_pem_file(key).expect("key"))
            .expect("client cert"),
        None => builder.with_no_client_auth(),
    };
    Arc::new(config)
}

pub fn wss_port(server: &DevServer) -> u16 {
    let url = server.wss_url();
    let port = url
        .rsplit(':')
        .next()
        .and_then(|p| p.split('/').next())
        .expect("port");
    port.parse().expect("numeric port")
}

pub async fn tls_connect(
    server: &DevServer,
    config: Arc<ClientConfig>,
) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(("127.0.0.1", wss_port(server))).await?;
    let name = ServerName::try_from("localhost").expect("name");
    TlsConnector::from(config).connect(name, tcp).await
}

/// One HTTP/1.1 request on a fresh connection: (status, raw head, body).
pub async fn http(addr: &str, method: &str, path: &str, body: &str) -> (u16, String, String) {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut response = Vec::new();
    tokio::time::timeout(WAIT, stream.read_to_end(&mut response))
        .await
        .expect("response within WAIT")
        .expect("read");
    parse_response(&String::from_utf8_lossy(&response))
}

pub fn parse_response(text: &str) -> (u16, String, String) {
    let (head, body) = text.split_once("\r\n\r\n").expect("a complete response");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status");
    (status, head.to_owned(), body.to_owned())
}

pub fn control_addr(server: &DevServer) -> String {
    server
        .control_url()
        .trim_start_matches("http://")
        .to_owned()
}

/// A header's value from a raw response head (names are case-insensitive).
pub fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(n, _)| n.trim().eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim())
}
