//! HTTP proxies: which one a connection goes through (explicit setting or
//! the conventional environment variables), and opening the tunnel.
//!
//! Precedence, for one connection to `scheme://host:port`:
//! 1. `ProxyConfig::url` set: that proxy, unless `host` matches
//!    `ProxyConfig::no_proxy`. The environment is not read.
//! 2. Otherwise, with `from_env` (the default): `https_proxy`, then
//!    `HTTPS_PROXY`, for `wss`/`https`; `http_proxy` for `ws`/`http`
//!    (not `HTTP_PROXY`, which a CGI program cannot trust: "httpoxy"),
//!    unless `host` matches `no_proxy` (then `NO_PROXY`).
//! 3. Otherwise a direct connection.
//!
//! Credentials travel in the proxy URL's user info and are sent as
//! `Proxy-Authorization: Basic`; nothing here displays them.

mod no_proxy;
mod tunnel;

use std::fmt;

use base64::Engine;
use url::Url;

use crate::error::{Error, Result};

pub(crate) use tunnel::open_tcp;

/// How connections find their HTTP proxy. The default reads the
/// environment; `ProxyConfig::direct()` never uses a proxy.
#[derive(Clone, PartialEq, Eq)]
pub struct ProxyConfig {
    /// `http://[user:password@]host[:port]` (port 80 when omitted; user and
    /// password percent-encoded). Set: used for every connection whose
    /// host is not in `no_proxy`, and the environment is not read.
    pub url: Option<String>,
    /// Hosts reached directly, in the `no_proxy` format: comma-separated
    /// names (`example.com` also covers its subdomains, as does
    /// `.example.com`), IP addresses, or `*` for all. Used with `url`;
    /// with the environment, the `no_proxy`/`NO_PROXY` variable applies.
    pub no_proxy: Option<String>,
    /// Without `url`: read `https_proxy`/`HTTPS_PROXY`/`http_proxy` and
    /// `no_proxy`/`NO_PROXY` (default true).
    pub from_env: bool,
}

impl Default for ProxyConfig {
    fn default() -> ProxyConfig {
        ProxyConfig {
            url: None,
            no_proxy: None,
            from_env: true,
        }
    }
}

impl fmt::Debug for ProxyConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProxyConfig")
            .field("url", &self.url.as_deref().map(redact_proxy_url))
            .field("no_proxy", &self.no_proxy)
            .field("from_env", &self.from_env)
            .finish()
    }
}

/// A proxy URL with its user info (credentials) replaced, for messages.
pub fn redact_proxy_url(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => match rest.rsplit_once('@') {
            Some((_, host)) => format!("{scheme}://<credentials>@{host}"),
            None => url.to_owned(),
        },
        None => match url.rsplit_once('@') {
            Some((_, host)) => format!("<credentials>@{host}"),
            None => url.to_owned(),
        },
    }
}

/// One proxy, parsed. `Debug` and `Display` never show the credentials.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct ProxyEndpoint {
    pub host: String,
    pub port: u16,
    /// The `Proxy-Authorization` header value, when the URL has user info.
    authorization: Option<String>,
    /// Where the setting came from, for messages (`proxy`, `https_proxy`...).
    pub source: &'static str,
}

impl fmt::Debug for ProxyEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProxyEndpoint")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("credentials", &self.authorization.is_some())
            .field("source", &self.source)
            .finish()
    }
}

impl fmt::Display for ProxyEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

impl ProxyEndpoint {
    /// Parses a proxy URL; `source` names the setting in errors.
    pub(crate) fn parse(text: &str, source: &'static str) -> Result<ProxyEndpoint> {
        let text = text.trim();
        let shown = redact_proxy_url(text);
        // curl and most tools accept `host:port` without a scheme.
        let with_scheme = if text.contains("://") {
            text.to_owned()
        } else {
            format!("http://{text}")
        };
        let url = Url::parse(&with_scheme).map_err(|e| {
            Error::InvalidArgument(format!("{source} {shown:?} is not a proxy URL: {e}"))
        })?;
        if url.scheme() != "http" {
            return Err(Error::InvalidArgument(format!(
                "{source} {shown:?}: only http:// proxies (HTTP CONNECT) are supported, not {}://",
                url.scheme()
            )));
        }
        let host = match url.host() {
            Some(url::Host::Domain(d)) if !d.is_empty() => d.to_owned(),
            Some(url::Host::Ipv4(ip)) => ip.to_string(),
            Some(url::Host::Ipv6(ip)) => ip.to_string(),
            _ => {
                return Err(Error::InvalidArgument(format!(
                    "{source} {shown:?} has no host"
                )))
            }
        };
        if !matches!(url.path(), "" | "/") || url.query().is_some() {
            return Err(Error::InvalidArgument(format!(
                "{source} {shown:?}: a proxy URL has no path or query"
            )));
        }
        let authorization = if url.username().is_empty() && url.password().is_none() {
            None
        } else {
            let user = decode(url.username(), source)?;
            let password = decode(url.password().unwrap_or(""), source)?;
            let token =
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
            Some(format!("Basic {token}"))
        };
        Ok(ProxyEndpoint {
            host,
            port: url.port_or_known_default().unwrap_or(80),
            authorization,
            source,
        })
    }

    pub(crate) fn authorization(&self) -> Option<&str> {
        self.authorization.as_deref()
    }
}

fn decode(part: &str, source: &'static str) -> Result<String> {
    percent_decode(part).ok_or_else(|| {
        Error::InvalidArgument(format!(
            "{source}: the proxy credentials are not valid percent-encoded UTF-8"
        ))
    })
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

impl ProxyConfig {
    /// Never a proxy, whatever the environment says.
    pub fn direct() -> ProxyConfig {
        ProxyConfig {
            url: None,
            no_proxy: None,
            from_env: false,
        }
    }

    /// Always `url` (no environment lookup).
    pub fn via(url: impl Into<String>) -> ProxyConfig {
        ProxyConfig {
            url: Some(url.into()),
            no_proxy: None,
            from_env: false,
        }
    }

    /// Checks the explicit URL and, when the environment is read, its
    /// variables, so that a bad setting fails at configuration time.
    pub fn validate(&self) -> Result<()> {
        self.validate_with(&env_var)
    }

    pub(crate) fn validate_with(&self, env: &dyn Fn(&str) -> Option<String>) -> Result<()> {
        if let Some(url) = self.explicit_url() {
            ProxyEndpoint::parse(url, "proxy")?;
            return Ok(());
        }
        if self.from_env {
            for secure in [true, false] {
                if let Some((name, value)) = env_proxy(secure, env) {
                    ProxyEndpoint::parse(&value, name)?;
                }
            }
        }
        Ok(())
    }

    fn explicit_url(&self) -> Option<&str> {
        self.url.as_deref().filter(|u| !u.trim().is_empty())
    }

    /// The proxy for a connection to `host` over a secure (`wss`/`https`)
    /// or plain scheme; `None`: connect directly.
    pub(crate) fn resolve(&self, host: &str, secure: bool) -> Result<Option<ProxyEndpoint>> {
        self.resolve_with(host, secure, &env_var)
    }

    pub(crate) fn resolve_with(
        &self,
        host: &str,
        secure: bool,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Option<ProxyEndpoint>> {
        if let Some(url) = self.explicit_url() {
            if no_proxy::matches(self.no_proxy.as_deref().unwrap_or(""), host) {
                return Ok(None);
            }
            return ProxyEndpoint::parse(url, "proxy").map(Some);
        }
        if !self.from_env {
            return Ok(None);
        }
        let Some((name, value)) = env_proxy(secure, env) else {
            return Ok(None);
        };
        let bypass = env("no_proxy")
            .or_else(|| env("NO_PROXY"))
            .unwrap_or_default();
        if no_proxy::matches(&bypass, host) {
            return Ok(None);
        }
        ProxyEndpoint::parse(&value, name).map(Some)
    }
}

fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

/// The variable naming the proxy for a secure or plain scheme, if set.
fn env_proxy(secure: bool, env: &dyn Fn(&str) -> Option<String>) -> Option<(&'static str, String)> {
    let names: &[&'static str] = if secure {
        &["https_proxy", "HTTPS_PROXY"]
    } else {
        &["http_proxy"]
    };
    names.iter().find_map(|name| {
        env(name)
            .filter(|v| !v.trim().is_empty())
            .map(|v| (*name, v))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            vars.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn explicit_url_wins_and_the_environment_is_not_read() {
        let vars = [("https_proxy", "http://env:1")];
        let c = ProxyConfig {
            url: Some("http://explicit:3128".into()),
            ..ProxyConfig::default()
        };
        let p = c.resolve_with("hub", true, &env(&vars)).unwrap().unwrap();
        assert_eq!(
            (p.host.as_str(), p.port, p.source),
            ("explicit", 3128, "proxy")
        );
        let bypass = ProxyConfig {
            no_proxy: Some("hub".into()),
            ..c
        };
        assert_eq!(bypass.resolve_with("hub", true, &env(&vars)).unwrap(), None);
    }

    #[test]
    fn environment_precedence_and_switching_it_off() {
        let vars = [
            ("https_proxy", "http://lower:1"),
            ("HTTPS_PROXY", "http://upper:2"),
            ("http_proxy", "plain:3"),
            ("HTTP_PROXY", "http://ignored:4"),
        ];
        let c = ProxyConfig::default();
        let secure = c.resolve_with("hub", true, &env(&vars)).unwrap().unwrap();
        assert_eq!(
            (secure.host.as_str(), secure.source),
            ("lower", "https_proxy")
        );
        let upper = c
            .resolve_with("hub", true, &env(&vars[1..]))
            .unwrap()
            .unwrap();
        assert_eq!(
            (upper.host.as_str(), upper.source),
            ("upper", "HTTPS_PROXY")
        );
        let plain = c.resolve_with("hub", false, &env(&vars)).unwrap().unwrap();
        assert_eq!((plain.host.as_str(), plain.port), ("plain", 3));
        // HTTP_PROXY alone is not used (httpoxy).
        assert_eq!(
            c.resolve_with("hub", false, &env(&vars[3..])).unwrap(),
            None
        );
        assert_eq!(
            ProxyConfig::direct()
                .resolve_with("hub", true, &env(&vars))
                .unwrap(),
            None
        );
    }

    #[test]
    fn no_proxy_then_upper_case_no_proxy() {
        let vars = [
            ("https_proxy", "http://p:1"),
            ("NO_PROXY", "other.example"),
            ("no_proxy", "hub.example"),
        ];
        let c = ProxyConfig::default();
        assert_eq!(
            c.resolve_with("hub.example", true, &env(&vars)).unwrap(),
            None
        );
        assert!(c
            .resolve_with("other.example", true, &env(&vars))
            .unwrap()
            .is_some());
        assert_eq!(
            c.resolve_with("other.example", true, &env(&vars[..2]))
                .unwrap(),
            None
        );
    }

    #[test]
    fn credentials_are_decoded_and_never_shown() {
        let p = ProxyEndpoint::parse("http://us%40er:p%3Ass@proxy:8080", "proxy").unwrap();
        // base64("us@er:p:ss")
        assert_eq!(p.authorization(), Some("Basic dXNAZXI6cDpzcw=="));
        let shown = format!("{p:?} {p}");
        assert!(
            !shown.contains("p%3Ass") && !shown.contains("dXNA"),
            "{shown}"
        );
        let c = ProxyConfig::via("http://user:hunter2@proxy:8080");
        assert!(!format!("{c:?}").contains("hunter2"));
        assert_eq!(
            redact_proxy_url("http://user:hunter2@proxy:8080"),
            "http://<credentials>@proxy:8080"
        );
    }

    #[test]
    fn bad_proxy_urls_are_clear_errors_without_credentials() {
        for (url, expected) in [
            ("https://user:hunter2@p:1", "only http:// proxies"),
            ("socks5://user:hunter2@p:1", "only http:// proxies"),
            ("http://user:hunter2@p:1/path", "no path"),
            ("http://user:hunter2@", "not a proxy URL"),
        ] {
            let err = ProxyConfig::via(url).validate().unwrap_err();
            let text = err.to_string();
            assert_eq!(err.kind(), "invalid_argument");
            assert!(text.contains(expected), "{url}: {text}");
            assert!(!text.contains("hunter2"), "{text}");
        }
        let vars = [("https_proxy", "socks5://p:1")];
        let err = ProxyConfig::default()
            .validate_with(&env(&vars))
            .unwrap_err();
        assert!(err.to_string().contains("https_proxy"), "{err}");
    }

    #[test]
    fn default_port_and_ipv6() {
        let p = ProxyEndpoint::parse("http://[::1]", "proxy").unwrap();
        assert_eq!((p.host.as_str(), p.port), ("::1", 80));
        assert_eq!(p.to_string(), "[::1]:80");
    }
}
