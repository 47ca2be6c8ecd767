//! The websocket upgrade: path and `vsn` checks, authentication, and the
//! HTTP refusals a Phoenix/NervesHub endpoint gives.

use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request};
use tokio_tungstenite::tungstenite::http::{header, Response, StatusCode};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::auth::{AuthOutcome, Authenticator, Peer};

/// The mounts NervesHub's device endpoint serves.
pub const SOCKET_PATHS: [&str; 2] = ["/socket/websocket", "/device-socket/websocket"];
/// Largest message accepted from a client; firmware chunks are far smaller.
pub const MAX_MESSAGE_SIZE: usize = 8 << 20;
/// Small read buffers keep a fleet of idle connections cheap (DESIGN.md section 3).
const READ_BUFFER_SIZE: usize = 8 << 10;

/// An HTTP refusal of the upgrade.
#[derive(Debug, Clone)]
pub struct Rejection {
    pub status: u16,
    /// The `nh-connection-error-reason` header, which NervesHub also sends as the body.
    pub reason: Option<&'static str>,
    pub body: String,
}

impl Rejection {
    pub fn not_found() -> Rejection {
        Rejection {
            status: 404,
            reason: None,
            body: "Not Found".into(),
        }
    }

    /// Phoenix refuses an unknown serializer version with an empty 403.
    pub fn forbidden() -> Rejection {
        Rejection {
            status: 403,
            reason: None,
            body: String::new(),
        }
    }

    pub fn unauthorized(reason: &'static str) -> Rejection {
        Rejection {
            status: 401,
            reason: Some(reason),
            body: reason.into(),
        }
    }

    /// `date` is the server's `Date` header value (its clock may be skewed for tests).
    pub(crate) fn into_response(self, date: String) -> ErrorResponse {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::FORBIDDEN);
        let mut builder = Response::builder()
            .status(status)
            .header(header::DATE, date)
            .header(header::CONTENT_LENGTH, self.body.len())
            .header(header::CONNECTION, "close");
        if !self.body.is_empty() {
            builder = builder.header(header::CONTENT_TYPE, "text/plain; charset=utf-8");
        }
        if let Some(reason) = self.reason {
            builder = builder.header("nh-connection-error-reason", reason);
        }
        let body = (!self.body.is_empty()).then_some(self.body);
        builder.body(body).unwrap_or_else(|_| {
            let mut fallback = Response::new(None);
            *fallback.status_mut() = status;
            fallback
        })
    }
}

/// What an accepted upgrade knows about the connection.
#[derive(Debug, Clone)]
pub(crate) struct Accepted {
    pub path: String,
    pub identity: Option<String>,
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
pub(crate) fn check(
    request: &Request,
    peer: &Peer,
    auth: &dyn Authenticator,
) -> Result<Accepted, Rejection> {
    let path = request.uri().path();
    if !SOCKET_PATHS.contains(&path) {
        return Err(Rejection::not_found());
    }
    if vsn(request) != Some("2.0.0") {
        return Err(Rejection::forbidden());
    }
    match auth.authenticate(peer, request) {
        AuthOutcome::Accept { identity } => Ok(Accepted {
            path: path.to_owned(),
            identity,
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
