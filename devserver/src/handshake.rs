//! The websocket upgrade: path and `vsn` checks, authentication, and the
//! HTTP refusals a Phoenix/NervesHub endpoint gives.

use tokio_tungstenite::tungstenite::handshake::server::Request;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use nerves_hub_channel::codec::Serializer;

use crate::auth::{AuthOutcome, Authenticator, Peer};

/// The mounts NervesHub's device endpoint serves.
pub const SOCKET_PATHS: [&str; 2] = ["/socket/websocket", "/device-socket/websocket"];
/// Largest message accepted from a client; firmware chunks are far smaller.
pub const MAX_MESSAGE_SIZE: usize = 8 << 20;
/// Small read buffers keep a fleet of idle connections cheap (DESIGN.md section 3).
const READ_BUFFER_SIZE: usize = 8 << 10;

pub use crate::rejection::Rejection;

/// What an accepted upgrade knows about the connection.
#[derive(Debug, Clone)]
pub(crate) struct Accepted {
    pub path: String,
    pub identity: Option<String>,
    /// What the client's `vsn` selected.
    pub serializer: Serializer,
}

fn vsn(request: &Request) -> Option<&str> {
    request
        .uri()
        .query()?
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(key, _)| *key == "vsn")
        .map(|(_, value)| value)
}

/// Phoenix's order: route, then serializer negotiation, then the socket's `connect/3`.
/// A load balancer in front of it may redirect first (`lb_redirect`).
pub(crate) fn check(
    request: &Request,
    peer: &Peer,
    auth: &dyn Authenticator,
) -> Result<Accepted, Rejection> {
    if let Some(redirect) = crate::lb_redirect::redirect(request) {
        return Err(redirect);
    }
    let path = request.uri().path();
    if !SOCKET_PATHS.contains(&path) {
        return Err(Rejection::not_found());
    }
    // NervesHub's endpoint offers `~> 3.0.0` (MessagePack) and `~> 2.0.0`
    // (JSON); Phoenix refuses any other `vsn`, or none, before `connect/3`.
    let Some(serializer) = Serializer::negotiate(vsn(request)) else {
        return Err(Rejection::forbidden());
    };
    match auth.authenticate(peer, request) {
        AuthOutcome::Accept { identity } => Ok(Accepted {
            path: path.to_owned(),
            identity,
            serializer,
        }),
        AuthOutcome::Reject(rejection) => Err(rejection),
    }
}

pub(crate) fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER_SIZE)
        .max_message_size(Some(MAX_MESSAGE_SIZE))
        .max_frame_size(Some(MAX_MESSAGE_SIZE))
}
