//! A load balancer in front of the endpoint that redirects the websocket
//! upgrade, for the client's redirect tests. NervesHub itself serves no
//! such paths (it answers them 404); only a proxy or balancer would.
//!
//! - `/lb/<n>/<path>`: 307 to `/lb/<n-1>/<path>`, and `/lb/1/<path>` to
//!   `/<path>` (relative `Location`, same scheme, host and query): `n` hops.
//! - `/lb-plain/<path>`: 302 to `http://<Host><path>`, an absolute
//!   plain-text URL (a client on wss must refuse to follow it).

use tokio_tungstenite::tungstenite::handshake::server::Request;

use crate::rejection::Rejection;

pub(crate) fn redirect(request: &Request) -> Option<Rejection> {
    let uri = request.uri();
    let query = uri.query().map(|q| format!("?{q}")).unwrap_or_default();
    let path = uri.path();
    if let Some(rest) = path.strip_prefix("/lb-plain/") {
        let host = request.headers().get("host")?.to_str().ok()?;
        return Some(Rejection::redirect(
            302,
            format!("http://{host}/{rest}{query}"),
        ));
    }
    let rest = path.strip_prefix("/lb/")?;
    let (hops, rest) = rest.split_once('/')?;
    let hops: u32 = hops.parse().ok().filter(|n| *n > 0)?;
    let next = if hops == 1 {
        format!("/{rest}{query}")
    } else {
        format!("/lb/{}/{rest}{query}", hops - 1)
    };
    Some(Rejection::redirect(307, next))
}
