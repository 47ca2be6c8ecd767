//! Typed errors with messages a firmware engineer can act on.

use std::fmt;

/// Every failure the library reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// A caller passed something unusable (bad URL, empty topic, invalid JSON...).
    InvalidArgument(String),
    /// Certificates, keys or the TLS handshake.
    Tls(String),
    /// The server answered the upgrade with 401: credentials were refused.
    Auth { status: u16, reason: Option<String> },
    /// The server answered the upgrade with another non-101 status.
    Http { status: u16, reason: Option<String> },
    /// TCP connect, DNS, or a broken connection.
    Connect(String),
    /// The HTTP proxy could not be reached, refused the `CONNECT` (`status`:
    /// 403, 407...), or broke the tunnel. The message never holds the
    /// proxy's credentials.
    Proxy {
        status: Option<u16>,
        message: String,
    },
    /// The peer broke the protocol (malformed frame, oversized message...).
    Protocol(String),
    /// A deadline passed (push reply, join reply, connect).
    Timeout(String),
    /// The socket or channel was closed by the user.
    Closed(String),
    /// The outbound buffer is full; nothing was queued.
    BufferFull(String),
    /// Called in a child process after fork(); the library's threads did not survive it.
    Forked,
}

impl Error {
    /// A short machine-friendly name of the error kind.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::InvalidArgument(_) => "invalid_argument",
            Error::Tls(_) => "tls",
            Error::Auth { .. } => "auth",
            Error::Http { .. } => "http",
            Error::Connect(_) => "connect",
            Error::Proxy { .. } => "proxy",
            Error::Protocol(_) => "protocol",
            Error::Timeout(_) => "timeout",
            Error::Closed(_) => "closed",
            Error::BufferFull(_) => "buffer_full",
            Error::Forked => "forked",
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidArgument(m) => write!(f, "invalid argument: {m}"),
            Error::Tls(m) => write!(f, "TLS: {m}"),
            Error::Auth { status, reason } | Error::Http { status, reason } => {
                write!(f, "server refused the connection: HTTP {status}")?;
                if let Some(reason) = reason {
                    write!(f, " (nh-connection-error-reason: {reason})")?;
                }
                Ok(())
            }
            Error::Connect(m) => write!(f, "connect: {m}"),
            Error::Proxy { message, .. } => write!(f, "proxy: {message}"),
            Error::Protocol(m) => write!(f, "protocol: {m}"),
            Error::Timeout(m) => write!(f, "timeout: {m}"),
            Error::Closed(m) => write!(f, "closed: {m}"),
            Error::BufferFull(m) => write!(f, "buffer full: {m}"),
            Error::Forked => f.write_str(
                "called after fork(): the library's threads do not survive fork; use it in the parent or exec a new program",
            ),
        }
    }
}

impl std::error::Error for Error {}

pub type Result<T, E = Error> = std::result::Result<T, E>;
