//! Opening one websocket connection: TCP (directly or through an HTTP
//! proxy), optional TLS, HTTP upgrade, following up to two redirects.

mod upgrade;

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_tungstenite::WebSocketStream;
use url::{Host, Url};

use crate::config::{redact_query, SocketConfig};
use crate::error::Error;
use crate::proxy::open_tcp;
use crate::redirect;
use crate::tls::TlsClient;

/// A TCP stream, with or without TLS.
pub(crate) enum MaybeTls {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

pub(crate) type WsStream = WebSocketStream<MaybeTls>;

/// A failed attempt, with the server's `Date` header when it sent one
/// (the clock hint for signed credentials).
pub(crate) struct ConnectFailure {
    pub error: Error,
    pub server_date: Option<String>,
}

impl From<Error> for ConnectFailure {
    fn from(error: Error) -> ConnectFailure {
        ConnectFailure {
            error,
            server_date: None,
        }
    }
}

/// One connection attempt, bounded by `config.connect_timeout`.
pub(crate) async fn open(
    config: &SocketConfig,
    url: &Url,
    tls: Option<&TlsClient>,
    headers: Vec<(String, String)>,
) -> Result<WsStream, ConnectFailure> {
    match tokio::time::timeout(
        config.connect_timeout,
        open_inner(config, url, tls, headers),
    )
    .await
    {
        Ok(result) => result,
        Err(_) => Err(Error::Timeout(format!(
            "no connection to {} within {:?}",
            redact_query(url.as_str()),
            config.connect_timeout
        ))
        .into()),
    }
}

async fn open_inner(
    config: &SocketConfig,
    url: &Url,
    tls: Option<&TlsClient>,
    headers: Vec<(String, String)>,
) -> Result<WsStream, ConnectFailure> {
    let headers: Vec<(String, String)> = config.headers.iter().cloned().chain(headers).collect();
    let mut url = url.clone();
    let mut hops = 0;
    loop {
        let mut stream = connect(config, &url, tls).await?;
        let failure = match upgrade::handshake(&mut stream, &url, &headers).await {
            Ok(tail) => {
                let ws_config = WebSocketConfig::default()
                    .read_buffer_size(config.read_buffer_size)
                    .write_buffer_size(16 * 1024)
                    .max_write_buffer_size(config.max_message_size.saturating_mul(2).max(64 * 1024))
                    .max_message_size(Some(config.max_message_size))
                    .max_frame_size(Some(config.max_message_size));
                return Ok(WebSocketStream::from_partially_read(
                    stream,
                    tail,
                    Role::Client,
                    Some(ws_config),
                )
                .await);
            }
            Err(failure) => failure,
        };
        match failure {
            upgrade::Failure::Refused {
                status, location, ..
            } if redirect::is_redirect(status) => {
                url = redirect::follow(
                    &url,
                    status,
                    location.as_deref(),
                    hops,
                    redirect::MAX_UPGRADE_REDIRECTS,
                )
                .map_err(|why| Error::Connect(format!("websocket upgrade: {why}")))?;
                hops += 1;
                log::info!(
                    "websocket upgrade redirected ({status}) to {}",
                    redact_query(url.as_str())
                );
            }
            other => return Err(upgrade_failure(other, tls)),
        }
    }
}

/// TCP (directly or through the proxy's tunnel), then TLS for `wss`.
async fn connect(
    config: &SocketConfig,
    url: &Url,
    tls: Option<&TlsClient>,
) -> Result<MaybeTls, ConnectFailure> {
    let tcp = open_tcp(url, &config.proxy).await?;
    if url.scheme() == "wss" {
        let host = match url.host() {
            Some(Host::Domain(d)) => d.to_owned(),
            Some(Host::Ipv4(ip)) => ip.to_string(),
            Some(Host::Ipv6(ip)) => ip.to_string(),
            None => return Err(Error::InvalidArgument("URL has no host".into()).into()),
        };
        let tls = tls.ok_or_else(|| Error::Tls("wss URL but no TLS configuration".into()))?;
        Ok(MaybeTls::Tls(Box::new(tls.connect(&host, tcp).await?)))
    } else {
        Ok(MaybeTls::Plain(tcp))
    }
}

fn upgrade_failure(failure: upgrade::Failure, tls: Option<&TlsClient>) -> ConnectFailure {
    match failure {
        upgrade::Failure::Refused {
            status,
            reason,
            date,
            ..
        } => ConnectFailure {
            error: if status == 401 {
                Error::Auth { status, reason }
            } else {
                Error::Http { status, reason }
            },
            server_date: date,
        },
        // TLS 1.3: a refused client certificate surfaces as an alert here.
        upgrade::Failure::Io(e) => match tls.and_then(|t| t.stream_error(&e)) {
            Some(tls_error) => tls_error.into(),
            None => Error::Connect(format!("connection lost during the upgrade: {e}")).into(),
        },
        upgrade::Failure::Other(error) => error.into(),
    }
}

impl MaybeTls {
    /// Our end of the TCP connection (to name the network interface).
    pub(crate) fn local_addr(&self) -> Option<std::net::SocketAddr> {
        match self {
            MaybeTls::Plain(tcp) => tcp.local_addr().ok(),
            MaybeTls::Tls(tls) => tls.get_ref().0.local_addr().ok(),
        }
    }
}

impl AsyncRead for MaybeTls {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTls::Plain(s) => Pin::new(s).poll_read(cx, buf),
            MaybeTls::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for MaybeTls {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            MaybeTls::Plain(s) => Pin::new(s).poll_write(cx, buf),
            MaybeTls::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTls::Plain(s) => Pin::new(s).poll_flush(cx),
            MaybeTls::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            MaybeTls::Plain(s) => Pin::new(s).poll_shutdown(cx),
            MaybeTls::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
