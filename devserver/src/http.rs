//! A deliberately tiny HTTP/1.1 server for the control API: requests with a
//! Content-Length body (no chunked uploads), JSON responses, keep-alive.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::httpdate::http_date_now;
use crate::state::Shared;

const MAX_HEADER_BYTES: usize = 64 << 10;
const MAX_HEADERS: usize = 64;
/// Room for a base64-encoded push of the largest websocket message.
const MAX_BODY_BYTES: usize = 64 << 20;

#[derive(Debug)]
pub(crate) struct Request {
    pub method: String,
    /// The path without its query string.
    pub path: String,
    pub query: Option<String>,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    /// The first header with this name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A non-JSON answer (firmware images): `bytes[range]` with these headers,
/// optionally with one byte flipped or cut short by dropping the connection.
#[derive(Debug)]
pub(crate) struct RawBody {
    pub headers: Vec<(String, String)>,
    pub bytes: std::sync::Arc<Vec<u8>>,
    pub range: std::ops::Range<usize>,
    /// Image offset of a byte to flip.
    pub corrupt_at: Option<usize>,
    /// Send only this many body bytes, then close the connection.
    pub cut_after: Option<usize>,
    /// Pace the body at about this rate.
    pub bytes_per_second: Option<u64>,
}

impl RawBody {
    /// A JSON body with extra headers.
    pub fn json_with(mut headers: Vec<(String, String)>, body: String) -> RawBody {
        headers.push(("Content-Type".into(), "application/json".into()));
        let len = body.len();
        RawBody {
            headers,
            bytes: std::sync::Arc::new(body.into_bytes()),
            range: 0..len,
            corrupt_at: None,
            cut_after: None,
            bytes_per_second: None,
        }
    }
}

#[derive(Debug)]
pub(crate) struct Response {
    pub status: u16,
    pub body: String,
    /// When set, sent instead of `body`.
    /// Boxed: most responses are small JSON and travel in `Result`s.
    pub raw: Option<Box<RawBody>>,
}

impl Response {
    pub fn json(status: u16, value: &serde_json::Value) -> Response {
        Response {
            status,
            body: value.to_string(),
            raw: None,
        }
    }

    pub fn error(status: u16, message: impl std::fmt::Display) -> Response {
        Response::json(status, &serde_json::json!({"error": message.to_string()}))
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        206 => "Partial Content",
        302 => "Found",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Content Too Large",
        416 => "Range Not Satisfiable",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        _ => "Unknown",
    }
}

/// A parsed request head.
struct Head {
    method: String,
    path: String,
    query: Option<String>,
    headers: Vec<(String, String)>,
    header_len: usize,
    content_length: usize,
    keep_alive: bool,
    expect_continue: bool,
}

enum Parsed {
    Partial,
    Head(Head),
    Bad(u16, String),
}

fn parse_head(buf: &[u8]) -> Parsed {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let header_len = match req.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Parsed::Partial,
        Err(e) => return Parsed::Bad(400, format!("malformed HTTP request: {e}")),
    };
    let http10 = req.version == Some(0);
    let mut head = Head {
        method: req.method.unwrap_or_default().to_owned(),
        path: req
            .path
            .unwrap_or("/")
            .split('?')
            .next()
            .unwrap_or("/")
            .to_owned(),
        query: req
            .path
            .and_then(|p| p.split_once('?'))
            .map(|(_, q)| q.to_owned()),
        headers: req
            .headers
            .iter()
            .map(|h| {
                (
                    h.name.to_owned(),
                    String::from_utf8_lossy(h.value).trim().to_owned(),
                )
            })
            .collect(),
        header_len,
        content_length: 0,
        keep_alive: !http10,
        expect_continue: false,
    };
    for h in req.headers.iter() {
        let value = String::from_utf8_lossy(h.value).trim().to_ascii_lowercase();
        if h.name.eq_ignore_ascii_case("content-length") {
            match value.parse() {
                Ok(n) => head.content_length = n,
                Err(_) => return Parsed::Bad(400, format!("bad Content-Length {value:?}")),
            }
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            return Parsed::Bad(
                501,
                "chunked request bodies are not supported; send Content-Length".into(),
            );
        } else if h.name.eq_ignore_ascii_case("connection") {
            if value.contains("close") {
                head.keep_alive = false;
            } else if value.contains("keep-alive") {
                head.keep_alive = true;
            }
        } else if h.name.eq_ignore_ascii_case("expect") {
            head.expect_continue = value == "100-continue";
        }
    }
    if head.content_length > MAX_BODY_BYTES {
        return Parsed::Bad(413, format!("body larger than {MAX_BODY_BYTES} bytes"));
    }
    Parsed::Head(head)
}

/// Writes a raw answer; `Ok(false)` when it was cut and the connection must close.
async fn write_raw(
    stream: &mut TcpStream,
    status: u16,
    raw: &RawBody,
    keep_alive: bool,
) -> std::io::Result<bool> {
    let mut head = format!(
        "HTTP/1.1 {} {}\r\nContent-Length: {}\r\nDate: {}\r\nConnection: {}\r\n",
        status,
        reason(status),
        raw.range.len(),
        http_date_now(),
        if keep_alive { "keep-alive" } else { "close" },
    );
    for (name, value) in &raw.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await?;
    let send = raw.cut_after.unwrap_or(usize::MAX).min(raw.range.len());
    let end = raw.range.start + send;
    let mut at = raw.range.start;
    let started = tokio::time::Instant::now();
    while at < end {
        if let Some(rate) = raw.bytes_per_second {
            // Pacing is the fault itself, not synchronisation.
            let due = Duration::from_secs_f64((at - raw.range.start) as f64 / rate as f64);
            tokio::time::sleep_until(started + due).await;
        }
        let next = (at + (64 << 10)).min(end);
        let mut piece = raw.bytes[at..next].to_vec();
        if let Some(flip) = raw.corrupt_at.filter(|c| (at..next).contains(c)) {
            piece[flip - at] ^= 0xFF;
        }
        stream.write_all(&piece).await?;
        at = next;
    }
    stream.flush().await?;
    Ok(send == raw.range.len())
}

async fn write_response(
    stream: &mut TcpStream,
    response: &Response,
    keep_alive: bool,
) -> std::io::Result<()> {
    if let Some(raw) = &response.raw {
        return match write_raw(stream, response.status, raw, keep_alive).await? {
            true => Ok(()),
            false => Err(std::io::Error::other("response cut on purpose")),
        };
    }
    let head = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nDate: {}\r\nConnection: {}\r\n\r\n",
        response.status,
        reason(response.status),
        response.body.len(),
        http_date_now(),
        if keep_alive { "keep-alive" } else { "close" },
    );
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(response.body.as_bytes());
    stream.write_all(&bytes).await?;
    stream.flush().await
}

/// Serves requests on one connection until the client closes it or asks to.
async fn serve_connection<H, F>(mut stream: TcpStream, handler: Arc<H>)
where
    H: Fn(Request) -> F + Send + Sync + 'static,
    F: Future<Output = Response> + Send,
{
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    let mut chunk = vec![0u8; 16 << 10];
    loop {
        let head = loop {
            match parse_head(&buf) {
                Parsed::Head(head) => break head,
                Parsed::Bad(status, message) => {
                    let _ =
                        write_response(&mut stream, &Response::error(status, message), false).await;
                    return;
                }
                Parsed::Partial if buf.len() > MAX_HEADER_BYTES => {
                    let _ = write_response(
                        &mut stream,
                        &Response::error(431, "request head too large"),
                        false,
                    )
                    .await;
                    return;
                }
                Parsed::Partial => match stream.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                },
            }
        };
        let total = head.header_len + head.content_length;
        if head.expect_continue
            && buf.len() < total
            && stream
                .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
                .await
                .is_err()
        {
            return;
        }
        while buf.len() < total {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let body = buf[head.header_len..total].to_vec();
        // Bytes after this request belong to the next (pipelined) one.
        buf.drain(..total);
        let request = Request {
            method: head.method,
            path: head.path,
            query: head.query,
            headers: head.headers,
            body,
        };
        let response = handler(request).await;
        if write_response(&mut stream, &response, head.keep_alive)
            .await
            .is_err()
            || !head.keep_alive
        {
            return;
        }
    }
}

/// Accepts control connections until shutdown, serving each with `handler`.
pub(crate) async fn serve<H, F>(listener: TcpListener, shared: Arc<Shared>, handler: H)
where
    H: Fn(Request) -> F + Send + Sync + 'static,
    F: Future<Output = Response> + Send + 'static,
{
    let handler = Arc::new(handler);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = shared.stopped() => return,
        };
        match accepted {
            Ok((stream, _)) => {
                let _ = stream.set_nodelay(true);
                let (handler, shared) = (handler.clone(), shared.clone());
                tokio::spawn(async move {
                    tokio::select! {
                        () = serve_connection(stream, handler) => {}
                        () = shared.stopped() => {}
                    }
                });
            }
            Err(e) => {
                log::warn!("control accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(text: &str) -> Head {
        match parse_head(text.as_bytes()) {
            Parsed::Head(h) => h,
            Parsed::Partial => panic!("partial"),
            Parsed::Bad(s, m) => panic!("bad {s}: {m}"),
        }
    }

    #[test]
    fn parses_a_post_with_a_body() {
        let h = head("POST /push?x=1 HTTP/1.1\r\nHost: a\r\nContent-Length: 12\r\n\r\n{\"a\":1}");
        assert_eq!(
            (h.method.as_str(), h.path.as_str(), h.content_length),
            ("POST", "/push", 12)
        );
        assert!(h.keep_alive);
    }

    #[test]
    fn honours_connection_close_and_http10() {
        assert!(!head("GET / HTTP/1.1\r\nConnection: close\r\n\r\n").keep_alive);
        assert!(!head("GET / HTTP/1.0\r\n\r\n").keep_alive);
        assert!(head("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").keep_alive);
    }

    #[test]
    fn refuses_what_it_cannot_handle() {
        assert!(matches!(
            parse_head(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"),
            Parsed::Bad(501, _)
        ));
        assert!(matches!(
            parse_head(b"POST / HTTP/1.1\r\nContent-Length: nope\r\n\r\n"),
            Parsed::Bad(400, _)
        ));
        assert!(matches!(
            parse_head(b"\x00\x01 garbage\r\n\r\n"),
            Parsed::Bad(400, _)
        ));
        assert!(matches!(
            parse_head(b"GET / HTTP/1.1\r\nHost"),
            Parsed::Partial
        ));
    }
}
