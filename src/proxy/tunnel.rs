//! The first step of every connection: TCP to the server, or TCP to the
//! proxy and an HTTP `CONNECT` tunnel through it (RFC 9110 §9.3.6). TLS
//! and the request (websocket upgrade or firmware GET) follow on the
//! returned stream either way.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use url::{Host, Url};

use super::{ProxyConfig, ProxyEndpoint};
use crate::error::{Error, Result};

const MAX_HEAD: usize = 16 * 1024;
const MAX_HEADERS: usize = 64;

/// A TCP stream to `url`'s host and port, through the proxy `config`
/// chooses for it. Errors: `Error::Connect` (no route to the server),
/// `Error::Proxy` (the proxy is unreachable, refused, or broke the
/// tunnel), `Error::InvalidArgument` (a bad URL or proxy setting).
pub(crate) async fn open_tcp(url: &Url, config: &ProxyConfig) -> Result<TcpStream> {
    let host = match url.host() {
        Some(Host::Domain(d)) if !d.is_empty() => d.to_owned(),
        Some(Host::Ipv4(ip)) => ip.to_string(),
        Some(Host::Ipv6(ip)) => ip.to_string(),
        _ => return Err(Error::InvalidArgument("URL has no host".into())),
    };
    let port = url
        .port_or_known_default()
        .ok_or_else(|| Error::InvalidArgument(format!("no port for scheme {}", url.scheme())))?;
    let secure = matches!(url.scheme(), "wss" | "https");
    let tcp = match config.resolve(&host, secure)? {
        None => TcpStream::connect((host.as_str(), port))
            .await
            .map_err(|e| Error::Connect(format!("cannot reach {host}:{port}: {e}")))?,
        Some(proxy) => tunnel(&proxy, &host, port).await?,
    };
    // Small control messages must not wait for Nagle.
    let _ = tcp.set_nodelay(true);
    Ok(tcp)
}

async fn tunnel(proxy: &ProxyEndpoint, host: &str, port: u16) -> Result<TcpStream> {
    let mut tcp = TcpStream::connect((proxy.host.as_str(), proxy.port))
        .await
        .map_err(|e| Error::Proxy {
            status: None,
            message: format!(
                "cannot reach the proxy {proxy} (from {}): {e}",
                proxy.source
            ),
        })?;
    let authority = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let mut request = format!(
        "CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: {}\r\n",
        crate::user_agent::USER_AGENT
    );
    if let Some(credentials) = proxy.authorization() {
        request.push_str("Proxy-Authorization: ");
        request.push_str(credentials);
        request.push_str("\r\n");
    }
    request.push_str("\r\n");
    let broken = |e: std::io::Error| Error::Proxy {
        status: None,
        message: format!("the connection to the proxy {proxy} broke during CONNECT: {e}"),
    };
    tcp.write_all(request.as_bytes()).await.map_err(broken)?;
    // Byte by byte up to the blank line: what follows belongs to TLS or
    // HTTP on the tunnel, and the server does not speak first in either.
    let mut head = Vec::with_capacity(256);
    while !head.ends_with(b"\r\n\r\n") {
        if head.len() >= MAX_HEAD {
            return Err(Error::Proxy {
                status: None,
                message: format!("the proxy {proxy} sent a CONNECT answer over {MAX_HEAD} bytes"),
            });
        }
        let byte = tcp.read_u8().await.map_err(|e| match e.kind() {
            std::io::ErrorKind::UnexpectedEof => Error::Proxy {
                status: None,
                message: format!(
                    "the proxy {proxy} closed the connection before answering CONNECT"
                ),
            },
            _ => broken(e),
        })?;
        head.push(byte);
    }
    let (status, phrase) = parse_status(&head).ok_or_else(|| Error::Proxy {
        status: None,
        message: format!("the proxy {proxy} sent a malformed answer to CONNECT"),
    })?;
    if (200..300).contains(&status) {
        return Ok(tcp);
    }
    let why = match status {
        407 if proxy.authorization().is_none() => format!(
            "the proxy {proxy} requires authentication (HTTP 407 {phrase}) and no credentials \
             are configured; put them in the proxy URL: http://user:password@host:port"
        ),
        407 => format!("the proxy {proxy} refused the configured credentials (HTTP 407 {phrase})"),
        _ => format!(
            "the proxy {proxy} refused to open a tunnel to {authority}: HTTP {status} {phrase}"
        ),
    };
    Err(Error::Proxy {
        status: Some(status),
        message: why,
    })
}

fn parse_status(head: &[u8]) -> Option<(u16, String)> {
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut slots);
    match response.parse(head) {
        Ok(httparse::Status::Complete(_)) => Some((
            response.code?,
            // A phrase is the proxy's text: keep it printable and short.
            response
                .reason
                .unwrap_or("")
                .chars()
                .filter(|c| !c.is_control())
                .take(80)
                .collect(),
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proxy_answers() {
        assert_eq!(
            parse_status(b"HTTP/1.0 200 Connection established\r\nProxy-agent: x\r\n\r\n"),
            Some((200, "Connection established".into()))
        );
        assert_eq!(
            parse_status(b"HTTP/1.1 407 Proxy Authentication Required\r\n\r\n").map(|s| s.0),
            Some(407)
        );
        assert_eq!(parse_status(b"SSH-2.0-OpenSSH\r\n\r\n"), None);
    }
}
