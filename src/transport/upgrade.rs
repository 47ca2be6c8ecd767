//! The client side of the websocket opening handshake (RFC 6455 §4.1).
//!
//! Done here rather than by tungstenite because its client handshake traces
//! the whole request at Trace level, NH1 signature headers included; this
//! module never logs the request or a header value.

use std::io;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_tungstenite::tungstenite::handshake::client::generate_key;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use url::{Position, Url};

use crate::config::check_header;
use crate::error::Error;

/// Headers the handshake sets itself; a caller's copy would be a duplicate.
const RESERVED: [&str; 5] = [
    "host",
    "connection",
    "upgrade",
    "sec-websocket-version",
    "sec-websocket-key",
];
/// A response head larger than this is not a websocket server talking.
const MAX_RESPONSE_HEAD: usize = 16 * 1024;
const MAX_HEADERS: usize = 64;

/// Why the handshake failed.
#[derive(Debug)]
pub(super) enum Failure {
    /// Reading or writing the stream failed (TLS alerts arrive this way).
    Io(io::Error),
    /// The server answered with another status than 101.
    Refused {
        status: u16,
        reason: Option<String>,
        date: Option<String>,
        /// The `Location` header (redirects).
        location: Option<String>,
    },
    /// Anything else: a bad argument or a server breaking RFC 6455.
    Other(Error),
}

impl From<Error> for Failure {
    fn from(error: Error) -> Failure {
        Failure::Other(error)
    }
}

/// Sends the upgrade request for `url` with `headers` and checks the answer.
/// Returns the bytes the server sent after the response head: the start of
/// the first websocket frame, if any.
pub(super) async fn handshake<S>(
    stream: &mut S,
    url: &Url,
    headers: &[(String, String)],
) -> Result<Vec<u8>, Failure>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let key = generate_key();
    let request = request(url, &key, headers)?;
    stream.write_all(&request).await.map_err(Failure::Io)?;
    stream.flush().await.map_err(Failure::Io)?;

    let mut buf = Vec::with_capacity(1024);
    loop {
        if let Some(head_len) = check_response(&buf, &key)? {
            return Ok(buf.split_off(head_len));
        }
        if buf.len() >= MAX_RESPONSE_HEAD {
            return Err(invalid(format!(
                "the response head exceeds {MAX_RESPONSE_HEAD} bytes"
            )));
        }
        let mut chunk = [0u8; 2048];
        let n = stream.read(&mut chunk).await.map_err(Failure::Io)?;
        if n == 0 {
            return Err(Error::Connect(
                "the server closed the connection before answering the websocket upgrade".into(),
            )
            .into());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// The request bytes. Header values are written verbatim, so they are
/// checked for CR/LF first (no header injection).
fn request(url: &Url, key: &str, headers: &[(String, String)]) -> Result<Vec<u8>, Error> {
    let host = url
        .host_str()
        .ok_or_else(|| Error::InvalidArgument("URL has no host".into()))?;
    // url omits the scheme's default port, as Host should.
    let authority = match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    };
    let target = &url[Position::BeforePath..Position::AfterQuery];
    let mut out = format!(
        "GET {target} HTTP/1.1\r\nHost: {authority}\r\nConnection: Upgrade\r\n\
         Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {key}\r\n"
    );
    for (name, value) in headers {
        check_header(name, value)?;
        if RESERVED.iter().any(|r| r.eq_ignore_ascii_case(name)) {
            return Err(Error::InvalidArgument(format!(
                "header {name:?} is set by the websocket upgrade itself"
            )));
        }
        out.push_str(name);
        out.push_str(": ");
        out.push_str(value);
        out.push_str("\r\n");
    }
    out.push_str("\r\n");
    Ok(out.into_bytes())
}

/// `Ok(None)`: the head is incomplete. `Ok(Some(len))`: a valid 101 whose
/// head is `len` bytes long.
fn check_response(buf: &[u8], key: &str) -> Result<Option<usize>, Failure> {
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut slots);
    let head_len = match response.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(invalid(format!("malformed HTTP response: {e}"))),
    };
    let header = |name: &str| {
        response
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .and_then(|h| std::str::from_utf8(h.value).ok())
            .map(|v| v.trim().to_owned())
    };
    let status = response.code.unwrap_or(0);
    if status != 101 {
        return Err(Failure::Refused {
            status,
            reason: header("nh-connection-error-reason"),
            date: header("date"),
            location: header("location"),
        });
    }
    if !header("upgrade").is_some_and(|v| v.eq_ignore_ascii_case("websocket")) {
        return Err(invalid(
            "the 101 response lacks \"Upgrade: websocket\"".into(),
        ));
    }
    let connection = header("connection").unwrap_or_default();
    if !connection
        .split(',')
        .any(|token| token.trim().eq_ignore_ascii_case("upgrade"))
    {
        return Err(invalid(
            "the 101 response lacks \"Connection: Upgrade\"".into(),
        ));
    }
    if header("sec-websocket-accept") != Some(derive_accept_key(key.as_bytes())) {
        return Err(invalid(
            "Sec-WebSocket-Accept does not match the key sent (not a websocket server, or a proxy in the way)"
                .into(),
        ));
    }
    // We offer neither, so a server choosing one breaks the protocol.
    for offered_none in ["sec-websocket-protocol", "sec-websocket-extensions"] {
        if header(offered_none).is_some() {
            return Err(invalid(format!(
                "the server chose a {offered_none} the client did not offer"
            )));
        }
    }
    Ok(Some(head_len))
}

fn invalid(detail: String) -> Failure {
    Failure::Other(Error::Protocol(format!(
        "websocket upgrade failed: {detail}"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
    // RFC 6455 §1.3's example answer to KEY.
    const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

    fn url(s: &str) -> Url {
        Url::parse(s).expect("test URL")
    }

    fn ok_head(extra: &str) -> String {
        format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Accept: {ACCEPT}\r\n{extra}\r\n"
        )
    }

    #[test]
    fn request_has_target_host_and_headers() {
        let headers = vec![("x-nh-key".to_owned(), "abc".to_owned())];
        let bytes = request(
            &url("ws://h.example:4000/s/websocket?vsn=2.0.0#frag"),
            KEY,
            &headers,
        )
        .expect("request");
        let text = String::from_utf8(bytes).expect("ASCII");
        assert!(text.starts_with("GET /s/websocket?vsn=2.0.0 HTTP/1.1\r\nHost: h.example:4000\r\n"));
        assert!(text.contains(&format!("\r\nSec-WebSocket-Key: {KEY}\r\n")));
        assert!(text.ends_with("\r\nx-nh-key: abc\r\n\r\n"));
        let default_port = request(&url("wss://h.example:443/"), KEY, &[]).expect("request");
        assert!(String::from_utf8_lossy(&default_port).contains("\r\nHost: h.example\r\n"));
        let v6 = request(&url("ws://[::1]:9/"), KEY, &[]).expect("request");
        assert!(String::from_utf8_lossy(&v6).contains("\r\nHost: [::1]:9\r\n"));
    }

    #[test]
    fn request_refuses_injection_and_duplicates() {
        let u = url("ws://h/");
        for (name, value) in [("x-a", "1\r\nx-b: 2"), ("bad name", "1"), ("Host", "evil")] {
            let err = request(&u, KEY, &[(name.into(), value.into())]).expect_err(name);
            assert!(matches!(err, Error::InvalidArgument(_)), "{err:?}");
        }
    }

    #[test]
    fn a_valid_101_returns_its_head_length() {
        let head = ok_head("");
        let mut buf = head.clone().into_bytes();
        buf.extend_from_slice(b"\x81\x00");
        assert_eq!(check_response(&buf, KEY).expect("valid"), Some(head.len()));
        assert_eq!(check_response(&buf[..10], KEY).expect("partial"), None);
        let lenient = ok_head("").replace("Connection: Upgrade", "connection: keep-alive, upgrade");
        assert!(check_response(lenient.as_bytes(), KEY).is_ok());
    }

    #[test]
    fn refusals_carry_status_reason_and_date() {
        let head = "HTTP/1.1 401 Unauthorized\r\nnh-connection-error-reason: bad signature\r\n\
                    date: Tue, 01 Jul 2025 10:00:00 GMT\r\ncontent-length: 0\r\n\r\n";
        match check_response(head.as_bytes(), KEY) {
            Err(Failure::Refused {
                status,
                reason,
                date,
                location,
            }) => {
                assert_eq!(status, 401);
                assert_eq!(location, None);
                assert_eq!(reason.as_deref(), Some("bad signature"));
                assert_eq!(date.as_deref(), Some("Tue, 01 Jul 2025 10:00:00 GMT"));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn broken_101_responses_are_protocol_errors() {
        let cases = [
            ok_head("").replace(ACCEPT, "AAAAAAAAAAAAAAAAAAAAAAAAAAA="),
            ok_head("").replace("Upgrade: websocket", "Upgrade: h2c"),
            ok_head("").replace("Connection: Upgrade", "Connection: close"),
            ok_head("Sec-WebSocket-Extensions: permessage-deflate\r\n"),
            ok_head("Sec-WebSocket-Protocol: mqtt\r\n"),
            "HTTP/1.1 1O1 nope\r\n\r\n".to_owned(),
        ];
        for case in cases {
            match check_response(case.as_bytes(), KEY) {
                Err(Failure::Other(Error::Protocol(m))) => {
                    assert!(m.starts_with("websocket upgrade failed: "), "{m}")
                }
                other => panic!("{case:?}: {other:?}"),
            }
        }
    }
}
