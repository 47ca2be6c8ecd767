//! The one redirect rule of the library, for the websocket upgrade and for
//! firmware downloads alike: resolve `Location` against the URL that
//! answered, keep the connection kind (an `http(s)` Location on a
//! websocket becomes `ws(s)`, as nerves_hub_link does), never go from a
//! secure scheme to a plain one, and stop after a bounded number of hops.

use url::Url;

use crate::config::redact_query;

/// Redirects followed on one websocket upgrade (nerves_hub_link's
/// `@max_redirects`).
pub(crate) const MAX_UPGRADE_REDIRECTS: usize = 2;
/// Redirects followed on one firmware request (signed URL services chain
/// a few: hub, CDN, storage).
pub(crate) const MAX_DOWNLOAD_REDIRECTS: usize = 5;

/// True for the 3xx statuses that carry a `Location` to follow.
pub(crate) fn is_redirect(status: u16) -> bool {
    matches!(status, 301 | 302 | 303 | 307 | 308)
}

/// Where a redirect from `from` (answered with `status` and `location`)
/// leads, or why it is not followed. `hops` counts the redirects already
/// followed; `limit` is the use's maximum. Messages hide URL queries
/// (signed URLs carry credentials there).
pub(crate) fn follow(
    from: &Url,
    status: u16,
    location: Option<&str>,
    hops: usize,
    limit: usize,
) -> Result<Url, String> {
    let shown_from = redact_query(from.as_str());
    if hops >= limit {
        return Err(format!(
            "more than {limit} redirects; the last, HTTP {status} from {shown_from}, was not followed"
        ));
    }
    let location = location
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .ok_or_else(|| format!("HTTP {status} from {shown_from} without a Location header"))?;
    let mut next = from
        .join(location)
        .map_err(|e| format!("bad redirect Location from {shown_from}: {e}"))?;
    let websocket = matches!(from.scheme(), "ws" | "wss");
    let scheme = match (websocket, next.scheme()) {
        (true, "http" | "ws") => "ws",
        (true, "https" | "wss") => "wss",
        (false, "http") => "http",
        (false, "https") => "https",
        (_, other) => {
            return Err(format!(
                "refusing a redirect from {shown_from} to an unsupported scheme {other:?}"
            ))
        }
    };
    if next.scheme() != scheme && next.set_scheme(scheme).is_err() {
        return Err(format!(
            "cannot use the redirect Location from {shown_from}"
        ));
    }
    let secure = |u: &Url| matches!(u.scheme(), "https" | "wss");
    if secure(from) && !secure(&next) {
        return Err(format!(
            "refusing a redirect from {shown_from} to {} (from TLS to plain text)",
            redact_query(next.as_str())
        ));
    }
    Ok(next)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn websocket_locations_keep_the_websocket_kind() {
        let from = url("wss://lb.example/socket/websocket?vsn=2.0.0");
        let to = follow(
            &from,
            302,
            Some("https://node1.example/socket/websocket?vsn=2.0.0"),
            0,
            2,
        );
        assert_eq!(
            to.unwrap().as_str(),
            "wss://node1.example/socket/websocket?vsn=2.0.0"
        );
        let relative = follow(&from, 307, Some("/other/websocket"), 1, 2).unwrap();
        assert_eq!(relative.as_str(), "wss://lb.example/other/websocket");
        let plain = url("ws://h:4000/socket/websocket");
        assert_eq!(
            follow(&plain, 301, Some("wss://h:4001/s"), 0, 2)
                .unwrap()
                .as_str(),
            "wss://h:4001/s"
        );
    }

    #[test]
    fn never_from_tls_to_plain_text() {
        for (from, to) in [
            ("wss://h/s", "http://h/s"),
            ("wss://h/s", "ws://h/s"),
            ("https://h/f?sig=secret", "http://h/f?sig=secret"),
        ] {
            let err = follow(&url(from), 302, Some(to), 0, 5).unwrap_err();
            assert!(err.contains("from TLS to plain text"), "{err}");
            assert!(!err.contains("secret"), "{err}");
        }
        assert_eq!(
            follow(&url("http://h/f"), 302, Some("https://h/g"), 0, 5)
                .unwrap()
                .as_str(),
            "https://h/g"
        );
    }

    #[test]
    fn limits_missing_locations_and_odd_schemes() {
        let from = url("wss://h/s");
        assert!(follow(&from, 302, Some("/a"), 2, 2)
            .unwrap_err()
            .contains("more than 2 redirects"));
        assert!(follow(&from, 302, None, 0, 2)
            .unwrap_err()
            .contains("without a Location"));
        assert!(follow(&url("https://h/f"), 302, Some("ftp://h/f"), 0, 5)
            .unwrap_err()
            .contains("unsupported scheme"));
        assert!(follow(&url("https://h/f"), 302, Some("wss://h/f"), 0, 5).is_err());
        assert!(is_redirect(308) && !is_redirect(304) && !is_redirect(300));
    }
}
