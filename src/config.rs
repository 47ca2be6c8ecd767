//! Socket configuration and its validation.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use url::Url;

use crate::backoff::Backoff;
use crate::codec::Serializer;
use crate::error::{Error, Result};
use crate::proxy::ProxyConfig;
use crate::tls::TlsOptions;

/// Computes extra handshake headers immediately before each connection
/// attempt (NervesHub's NH1 signatures must be fresh). `server_date` is the
/// `Date` header of the server's last refusal, a hint for a device whose clock
/// is wrong.
pub trait HeaderProvider: Send + Sync {
    fn headers(&self, server_date: Option<&str>) -> Vec<(String, String)>;

    /// Called as soon as the server refuses an attempt with HTTP 401, with
    /// the refusal's `Date` header. Return true when that taught something
    /// that changes the next attempt (e.g. a new estimate of the server's
    /// clock): the socket then retries at the first step of its backoff
    /// instead of the slow end that other refusals get.
    fn refused(&self, server_date: Option<&str>) -> bool {
        let _ = server_date;
        false
    }
}

/// Everything a socket needs. Build with `SocketConfig::new(url)` and adjust fields.
#[derive(Clone)]
pub struct SocketConfig {
    /// `ws://` or `wss://` URL of the websocket endpoint, e.g.
    /// `wss://host/socket/websocket`. The serializer's `vsn` is always added;
    /// a `vsn` with another value (here or in `params`) is refused.
    pub url: String,
    pub tls: TlsOptions,
    /// Extra HTTP headers sent with every upgrade request.
    pub headers: Vec<(String, String)>,
    /// Headers recomputed before every connection attempt.
    pub header_provider: Option<Arc<dyn HeaderProvider>>,
    /// Extra query parameters. `vsn` follows `serializer`; any other value
    /// is refused.
    pub params: Vec<(String, String)>,
    /// TCP + TLS + upgrade deadline.
    pub connect_timeout: Duration,
    pub heartbeat_interval: Duration,
    /// How long to wait for a heartbeat reply before the connection is taken for dead.
    pub heartbeat_timeout: Duration,
    /// Default timeout of joins, leaves and pushes.
    pub default_timeout: Duration,
    /// Delay before rejoining a channel after `phx_error` or a failed join.
    pub rejoin_after: Duration,
    /// Rejoin a channel that the server closed with `phx_close`.
    pub rejoin_after_close: bool,
    pub reconnect: bool,
    pub backoff: Backoff,
    /// How long a connection must stay joined before its end restarts the
    /// backoff from the first step. A connection the server closes sooner
    /// counts as a failure, so that two devices sharing one identity
    /// (NervesHub closes the older socket) escalate to the slow end instead
    /// of taking turns every second. Keep it above `backoff.max` plus its
    /// jitter; 0 restarts the backoff after every join.
    pub stable_after: Duration,
    /// Pushes waiting for the wire (before join, while disconnected) at most.
    pub outbound_capacity: usize,
    /// Events waiting for the consumer before the socket stops reading.
    pub event_capacity: usize,
    /// Largest inbound message accepted.
    pub max_message_size: usize,
    /// Websocket read buffer; small by default because it is paid per connection.
    pub read_buffer_size: usize,
    /// V2 JSON (`vsn=2.0.0`, default) or MessagePack (`vsn=3.0.0`, fewer
    /// bytes; the server must support it). Payloads reach the application
    /// as JSON either way (docs/messagepack.md).
    pub serializer: Serializer,
    /// The HTTP proxy of the websocket (and, for a `Device`, of firmware
    /// downloads unless `DownloadOptions::proxy` says otherwise). The
    /// default reads `https_proxy`/`HTTPS_PROXY`/`http_proxy`/`no_proxy`.
    pub proxy: ProxyConfig,
}

impl fmt::Debug for SocketConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Header values may hold secrets; show names only.
        let header_names: Vec<&str> = self.headers.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("SocketConfig")
            .field("url", &redact_query(&self.url))
            .field("headers", &header_names)
            .field("heartbeat_interval", &self.heartbeat_interval)
            .field("default_timeout", &self.default_timeout)
            .field("serializer", &self.serializer)
            .field("proxy", &self.proxy)
            .finish_non_exhaustive()
    }
}

impl SocketConfig {
    pub fn new(url: impl Into<String>) -> SocketConfig {
        SocketConfig {
            url: url.into(),
            tls: TlsOptions::default(),
            headers: Vec::new(),
            header_provider: None,
            params: Vec::new(),
            connect_timeout: Duration::from_secs(15),
            heartbeat_interval: Duration::from_secs(30),
            heartbeat_timeout: Duration::from_secs(30),
            default_timeout: Duration::from_secs(10),
            rejoin_after: Duration::from_secs(5),
            rejoin_after_close: false,
            reconnect: true,
            backoff: Backoff::default(),
            stable_after: Duration::from_secs(120),
            outbound_capacity: 1024,
            event_capacity: 1024,
            max_message_size: 8 << 20,
            read_buffer_size: 4096,
            serializer: Serializer::Json,
            proxy: ProxyConfig::default(),
        }
    }

    /// The connection URL with the serializer's `vsn` and the extra params, or a clear error.
    pub fn endpoint_url(&self) -> Result<Url> {
        let mut url = Url::parse(&self.url).map_err(|e| {
            Error::InvalidArgument(format!("URL {:?}: {e}", redact_query(&self.url)))
        })?;
        match url.scheme() {
            "ws" | "wss" => {}
            other => {
                return Err(Error::InvalidArgument(format!(
                    "URL scheme must be ws or wss, got {other:?}"
                )))
            }
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(Error::InvalidArgument("URL has no host".into()));
        }
        let given: Vec<(String, String)> = url
            .query_pairs()
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        // Silently replacing a `vsn` would make the server speak a
        // serializer the user did not ask for: the `serializer` option chooses it.
        let vsn = self.serializer.vsn();
        for (key, value) in given.iter().chain(self.params.iter()) {
            if key == "vsn" && value != vsn {
                return Err(Error::InvalidArgument(format!(
                    "socket parameter vsn={value:?} does not match the {} serializer \
                     (vsn {vsn}), which the library selects itself; remove the vsn parameter \
                     and set the serializer option (json: 2.0.0, msgpack: 3.0.0)",
                    self.serializer
                )));
            }
        }
        let kept: Vec<(String, String)> = given.into_iter().filter(|(k, _)| k != "vsn").collect();
        {
            let mut query = url.query_pairs_mut();
            query.clear();
            for (k, v) in kept.iter().chain(self.params.iter()) {
                if k != "vsn" {
                    query.append_pair(k, v);
                }
            }
            query.append_pair("vsn", vsn);
        }
        Ok(url)
    }

    /// Checks everything that can be checked without a network.
    pub fn validate(&self) -> Result<()> {
        self.endpoint_url()?;
        self.proxy.validate()?;
        for (name, value) in &self.headers {
            check_header(name, value)?;
        }
        let positive = [
            ("connect_timeout", self.connect_timeout),
            ("heartbeat_interval", self.heartbeat_interval),
            ("heartbeat_timeout", self.heartbeat_timeout),
            ("default_timeout", self.default_timeout),
        ];
        for (name, value) in positive {
            if value.is_zero() {
                return Err(Error::InvalidArgument(format!(
                    "{name} must be greater than zero"
                )));
            }
        }
        if self.outbound_capacity == 0 || self.event_capacity == 0 {
            return Err(Error::InvalidArgument(
                "buffer capacities must be at least 1".into(),
            ));
        }
        if self.max_message_size < 1024 {
            return Err(Error::InvalidArgument(
                "max_message_size must be at least 1024".into(),
            ));
        }
        if self.backoff.initial.is_zero() || self.backoff.max < self.backoff.initial {
            return Err(Error::InvalidArgument(
                "backoff needs 0 < initial <= max".into(),
            ));
        }
        Ok(())
    }
}

pub(crate) fn check_header(name: &str, value: &str) -> Result<()> {
    let name_ok = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    if !name_ok {
        return Err(Error::InvalidArgument(format!(
            "invalid header name {name:?}"
        )));
    }
    if value.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
        return Err(Error::InvalidArgument(format!(
            "header {name:?} has a control character in its value"
        )));
    }
    Ok(())
}

/// A URL with its query string hidden: signed URLs carry credentials there.
pub fn redact_query(url: &str) -> String {
    match url.split_once('?') {
        Some((base, _)) => format!("{base}?<redacted>"),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vsn_is_always_added_once() {
        let mut c = SocketConfig::new("wss://h:4001/socket/websocket?vsn=2.0.0&a=1");
        c.params.push(("b".into(), "x y".into()));
        c.params.push(("vsn".into(), "2.0.0".into()));
        let url = c.endpoint_url().unwrap();
        assert_eq!(url.query(), Some("a=1&b=x+y&vsn=2.0.0"));
    }

    #[test]
    fn another_vsn_is_refused_not_replaced() {
        let in_url = SocketConfig::new("wss://h:4001/socket/websocket?vsn=1.0.0&a=1");
        let err = in_url.validate().unwrap_err();
        assert_eq!(err.kind(), "invalid_argument");
        assert!(
            err.to_string()
                .contains("vsn=\"1.0.0\" does not match the json serializer"),
            "{err}"
        );
        let mut in_params = SocketConfig::new("wss://h:4001/socket/websocket");
        in_params.params.push(("vsn".into(), "3.0.0".into()));
        let err = in_params.validate().unwrap_err();
        assert!(
            err.to_string().contains("set the serializer option"),
            "{err}"
        );
    }

    #[test]
    fn the_vsn_follows_the_serializer() {
        let mut c = SocketConfig::new("wss://h/socket/websocket?a=1");
        c.serializer = Serializer::MsgPack;
        assert_eq!(c.endpoint_url().unwrap().query(), Some("a=1&vsn=3.0.0"));
        c.params.push(("vsn".into(), "3.0.0".into()));
        assert_eq!(c.endpoint_url().unwrap().query(), Some("a=1&vsn=3.0.0"));
        c.params = vec![("vsn".into(), "2.0.0".into())];
        let err = c.validate().unwrap_err();
        assert!(
            err.to_string().contains("msgpack serializer (vsn 3.0.0)"),
            "{err}"
        );
    }

    #[test]
    fn bad_urls_are_invalid_arguments() {
        for url in ["", "http://h/socket", "ws://", "not a url"] {
            let err = SocketConfig::new(url).validate().unwrap_err();
            assert_eq!(err.kind(), "invalid_argument", "{url}: {err}");
        }
    }

    #[test]
    fn host_names_are_ascii_only_and_punycode_works() {
        let err = SocketConfig::new("wss://bücher.example/socket/websocket")
            .endpoint_url()
            .unwrap_err();
        assert_eq!(err.kind(), "invalid_argument", "{err}");
        assert!(err.to_string().contains("domain"), "{err}");
        let url = SocketConfig::new("wss://xn--bcher-kva.example/socket/websocket")
            .endpoint_url()
            .expect("punycode host");
        assert_eq!(url.host_str(), Some("xn--bcher-kva.example"));
    }

    #[test]
    fn header_injection_is_refused() {
        let mut c = SocketConfig::new("ws://h/socket/websocket");
        c.headers.push(("x-a".into(), "1\r\nx-b: 2".into()));
        assert!(c.validate().is_err());
        c.headers = vec![("bad name".into(), "v".into())];
        assert!(c.validate().is_err());
    }

    #[test]
    fn debug_hides_header_values_and_query() {
        let mut c = SocketConfig::new("ws://h/s?token=secret");
        c.headers
            .push(("x-nh-signature".into(), "topsecret".into()));
        c.proxy = ProxyConfig::via("http://user:proxysecret@p:3128");
        let shown = format!("{c:?}");
        assert!(!shown.contains("secret"), "{shown}");
        assert!(shown.contains("p:3128"), "{shown}");
    }
}
