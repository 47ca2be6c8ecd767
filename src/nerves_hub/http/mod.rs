//! A minimal HTTP/1.1 GET client for firmware downloads: one request per
//! connection, redirects (the crate's one rule, `crate::redirect`), `Range`
//! resumes, HTTP proxies (`crate::proxy`), TLS through the core's
//! [`TlsClient`] (server verification always on).

mod body;
pub(crate) mod netif;

use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use url::Url;

use crate::config::redact_query;
use crate::proxy::{open_tcp, ProxyConfig};
use crate::redirect;
use crate::tls::{TlsClient, TlsOptions};

use body::BodyReader;
pub(crate) use body::Framing;

const MAX_HEAD_BYTES: usize = 64 << 10;
const MAX_HEADERS: usize = 64;

pub use crate::user_agent::USER_AGENT;

trait Io: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Io for T {}

/// Why a request failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpError {
    /// The server answered with this (non-redirect) status >= 400, or a
    /// redirect we could not follow; retrying will not help.
    Status {
        status: u16,
        reason: String,
        url: String,
    },
    /// Something a retry may fix: connect, TLS, timeouts, broken bodies.
    Transient(String),
    /// Misconfiguration or an unusable answer; retrying will not help.
    Fatal(String),
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HttpError::Status {
                status,
                reason,
                url,
            } => write!(f, "HTTP {status} {reason} from {url}"),
            HttpError::Transient(m) | HttpError::Fatal(m) => f.write_str(m),
        }
    }
}

/// What one GET asks for.
#[derive(Debug, Clone, Default)]
pub struct GetRequest {
    /// Sends `Range: bytes=<start>-` when set.
    pub range_start: Option<u64>,
    /// Sent as `X-Retry-Number`.
    pub retry_number: u32,
}

/// A client; cheap to clone, connections are never reused.
#[derive(Clone)]
pub struct HttpClient {
    tls_options: TlsOptions,
    tls: std::sync::Arc<tokio::sync::OnceCell<TlsClient>>,
    headers: Vec<(String, String)>,
    /// Bounds connecting, the TLS handshake and reading the response head.
    timeout: Duration,
    proxy: ProxyConfig,
}

/// A response whose head was read; the body is streamed with [`HttpResponse::chunk`].
pub struct HttpResponse {
    pub status: u16,
    pub reason: String,
    pub headers: Vec<(String, String)>,
    /// The URL that answered, after redirects.
    pub url: Url,
    /// Our end of the connection (to name the network interface).
    pub local_addr: Option<SocketAddr>,
    body: BodyReader<Box<dyn Io>>,
    framing: Framing,
}

impl fmt::Debug for HttpResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpResponse")
            .field("status", &self.status)
            .field("url", &redact_query(self.url.as_str()))
            .field("framing", &self.framing)
            .finish_non_exhaustive()
    }
}

impl HttpResponse {
    /// The first header with this name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body length when the server declared one.
    pub fn content_length(&self) -> Option<u64> {
        match self.framing {
            Framing::Length(n) => Some(n),
            _ => None,
        }
    }

    /// `(start, total)` from `Content-Range: bytes start-end/total`.
    pub fn content_range(&self) -> Option<(u64, Option<u64>)> {
        let value = self.header("content-range")?.trim();
        let rest = value.strip_prefix("bytes")?.trim_start();
        let (range, total) = rest.split_once('/')?;
        let start = range.split_once('-')?.0.trim().parse().ok()?;
        Some((start, total.trim().parse().ok()))
    }

    /// The next piece of the body (at most 64 KiB), `None` at its end; a
    /// body cut short is an error.
    pub async fn chunk(&mut self) -> std::io::Result<Option<Vec<u8>>> {
        self.body.chunk().await
    }

    /// Reads the next body bytes straight into `dst` (at most one read from
    /// the connection); 0 only at the end of the body. A body cut short is
    /// an `UnexpectedEof` error.
    pub async fn read_into(&mut self, dst: &mut [u8]) -> std::io::Result<usize> {
        self.body.read_into(dst).await
    }
}

fn shown(url: &Url) -> String {
    redact_query(url.as_str())
}

impl HttpClient {
    /// `headers` are added to every request (e.g. a proxy's credentials).
    pub fn new(tls: TlsOptions, headers: Vec<(String, String)>, timeout: Duration) -> HttpClient {
        HttpClient {
            tls_options: tls,
            tls: Default::default(),
            headers,
            timeout,
            proxy: ProxyConfig::default(),
        }
    }

    /// Connects through this proxy setting (default: from the environment).
    pub fn with_proxy(mut self, proxy: ProxyConfig) -> HttpClient {
        self.proxy = proxy;
        self
    }

    /// GET `url`, following up to 5 redirects. Any status that is not a
    /// redirect is returned, so the caller decides about 200 vs 206.
    pub async fn get(&self, url: &Url, request: &GetRequest) -> Result<HttpResponse, HttpError> {
        let mut url = url.clone();
        let mut hops = 0;
        loop {
            let response = self.get_once(&url, request).await?;
            if !redirect::is_redirect(response.status) {
                return Ok(response);
            }
            let next = redirect::follow(
                &url,
                response.status,
                response.header("location"),
                hops,
                redirect::MAX_DOWNLOAD_REDIRECTS,
            )
            .map_err(HttpError::Fatal)?;
            log::debug!("redirect {} -> {}", response.status, shown(&next));
            hops += 1;
            url = next;
        }
    }

    async fn tls(&self) -> Result<&TlsClient, HttpError> {
        self.tls
            .get_or_try_init(|| async {
                let options = self.tls_options.clone();
                // Loading system roots and key files is blocking work.
                tokio::task::spawn_blocking(move || TlsClient::new(&options))
                    .await
                    .map_err(|e| HttpError::Fatal(format!("TLS setup panicked: {e}")))?
                    .map_err(|e| HttpError::Fatal(e.to_string()))
            })
            .await
    }

    async fn connect(&self, url: &Url) -> Result<(Box<dyn Io>, Option<SocketAddr>), HttpError> {
        if !matches!(url.scheme(), "http" | "https") {
            return Err(HttpError::Fatal(format!(
                "unsupported URL scheme {:?} (http or https)",
                url.scheme()
            )));
        }
        let tcp = open_tcp(url, &self.proxy).await.map_err(|e| match e {
            // Proxies refuse, ask for credentials and drop tunnels for
            // reasons that pass: retried like any interruption.
            crate::Error::InvalidArgument(m) => HttpError::Fatal(m),
            other => HttpError::Transient(other.to_string()),
        })?;
        let local = tcp.local_addr().ok();
        if url.scheme() == "http" {
            return Ok((Box::new(tcp), local));
        }
        let host = url.host_str().unwrap_or_default();
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let tls = self.tls().await?;
        let stream = tls
            .connect(host, tcp)
            .await
            .map_err(|e| HttpError::Transient(e.to_string()))?;
        Ok((Box::new(stream), local))
    }

    fn request_head(&self, url: &Url, request: &GetRequest) -> String {
        let mut target = url.path().to_owned();
        if let Some(q) = url.query() {
            target.push('?');
            target.push_str(q);
        }
        let host = match (url.host_str(), url.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_owned(),
            (None, _) => String::new(),
        };
        let mut head = format!(
            "GET {target} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: {USER_AGENT}\r\nAccept: */*\r\nConnection: close\r\nX-Retry-Number: {}\r\n",
            request.retry_number
        );
        if let Some(start) = request.range_start {
            head.push_str(&format!("Range: bytes={start}-\r\n"));
        }
        for (name, value) in &self.headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        head
    }

    async fn get_once(&self, url: &Url, request: &GetRequest) -> Result<HttpResponse, HttpError> {
        let timeout = self.timeout;
        let exchange = async {
            let (mut io, local_addr) = self.connect(url).await?;
            let broken = |e: std::io::Error| {
                HttpError::Transient(format!("connection to {} broke: {e}", shown(url)))
            };
            io.write_all(self.request_head(url, request).as_bytes())
                .await
                .map_err(broken)?;
            io.flush().await.map_err(broken)?;
            let mut buf = Vec::with_capacity(8192);
            let mut piece = vec![0u8; 8192];
            loop {
                if let Some(parsed) = parse_head(&buf, url)? {
                    let rest = buf.split_off(parsed.head_len);
                    return Ok(HttpResponse {
                        status: parsed.status,
                        reason: parsed.reason,
                        headers: parsed.headers,
                        url: url.clone(),
                        local_addr,
                        body: BodyReader::new(io, rest, parsed.framing),
                        framing: parsed.framing,
                    });
                }
                if buf.len() > MAX_HEAD_BYTES {
                    return Err(HttpError::Fatal(format!(
                        "response head from {} larger than {MAX_HEAD_BYTES} bytes",
                        shown(url)
                    )));
                }
                let n = io.read(&mut piece).await.map_err(broken)?;
                if n == 0 {
                    return Err(HttpError::Transient(format!(
                        "{} closed the connection before answering",
                        shown(url)
                    )));
                }
                buf.extend_from_slice(&piece[..n]);
            }
        };
        tokio::time::timeout(timeout, exchange).await.map_err(|_| {
            HttpError::Transient(format!("no answer from {} within {timeout:?}", shown(url)))
        })?
    }
}

struct Head {
    status: u16,
    reason: String,
    headers: Vec<(String, String)>,
    head_len: usize,
    framing: Framing,
}

fn parse_head(buf: &[u8], url: &Url) -> Result<Option<Head>, HttpError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut headers);
    let head_len = match response.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => {
            return Err(HttpError::Transient(format!(
                "malformed HTTP response from {}: {e}",
                shown(url)
            )))
        }
    };
    let status = response.code.unwrap_or(0);
    let headers: Vec<(String, String)> = response
        .headers
        .iter()
        .map(|h| {
            (
                h.name.to_owned(),
                String::from_utf8_lossy(h.value).trim().to_owned(),
            )
        })
        .collect();
    let find = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    let chunked =
        find("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    let framing = if status == 204 || status == 304 {
        Framing::Length(0)
    } else if chunked {
        Framing::Chunked
    } else if let Some(len) = find("content-length") {
        Framing::Length(len.parse().map_err(|_| {
            HttpError::Transient(format!("bad Content-Length {len:?} from {}", shown(url)))
        })?)
    } else {
        Framing::UntilClose
    };
    Ok(Some(Head {
        status,
        reason: response.reason.unwrap_or("").to_owned(),
        headers,
        head_len,
        framing,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn request_head_has_the_headers_the_hub_expects() {
        let client = HttpClient::new(
            TlsOptions::default(),
            vec![("X-Extra".into(), "1".into())],
            Duration::from_secs(1),
        );
        let head = client.request_head(
            &url("http://h:8080/fw/a.fw?sig=s"),
            &GetRequest {
                range_start: Some(1024),
                retry_number: 3,
            },
        );
        assert!(
            head.starts_with("GET /fw/a.fw?sig=s HTTP/1.1\r\nHost: h:8080\r\n"),
            "{head}"
        );
        for line in [
            &format!(
                "User-Agent: nerves_hub_channel/{}\r\n",
                env!("CARGO_PKG_VERSION")
            ),
            "X-Retry-Number: 3\r\n",
            "Range: bytes=1024-\r\n",
            "X-Extra: 1\r\n",
        ] {
            assert!(head.contains(line), "{line} missing in {head}");
        }
        assert!(head.ends_with("\r\n\r\n"));
        let plain = client.request_head(&url("https://h/f"), &GetRequest::default());
        assert!(
            plain.contains("Host: h\r\n") && !plain.contains("Range"),
            "{plain}"
        );
    }

    #[test]
    fn parses_heads_and_picks_the_body_framing() {
        let u = url("http://h/f");
        let head = |text: &str| parse_head(text.as_bytes(), &u).unwrap().unwrap();
        let h = head("HTTP/1.1 206 Partial Content\r\nContent-Length: 10\r\nContent-Range: bytes 5-14/15\r\n\r\n");
        assert_eq!((h.status, h.framing), (206, Framing::Length(10)));
        let h = head("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n");
        assert_eq!(h.framing, Framing::Chunked);
        assert_eq!(head("HTTP/1.1 200 OK\r\n\r\n").framing, Framing::UntilClose);
        assert!(parse_head(b"HTTP/1.1 200 OK\r\nA: b", &u)
            .unwrap()
            .is_none());
        assert!(parse_head(b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n", &u).is_err());
    }
}
