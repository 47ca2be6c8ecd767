//! An HTTP refusal of the websocket upgrade, as NervesHub sends it.

use tokio_tungstenite::tungstenite::handshake::server::ErrorResponse;
use tokio_tungstenite::tungstenite::http::{header, Response, StatusCode};

/// An HTTP refusal of the upgrade.
#[derive(Debug, Clone)]
pub struct Rejection {
    pub status: u16,
    /// The `nh-connection-error-reason` header, which NervesHub also sends as the body.
    pub reason: Option<&'static str>,
    pub body: String,
    /// The `Location` header of a redirect.
    pub location: Option<String>,
}

impl Rejection {
    pub fn not_found() -> Rejection {
        Rejection {
            status: 404,
            reason: None,
            body: "Not Found".into(),
            location: None,
        }
    }

    /// Phoenix refuses an unknown serializer version with an empty 403.
    pub fn forbidden() -> Rejection {
        Rejection {
            status: 403,
            reason: None,
            body: String::new(),
            location: None,
        }
    }

    pub fn unauthorized(reason: &'static str) -> Rejection {
        Rejection {
            status: 401,
            reason: Some(reason),
            body: reason.into(),
            location: None,
        }
    }

    /// A load balancer's redirect of the upgrade (307, or `status`).
    pub fn redirect(status: u16, location: String) -> Rejection {
        Rejection {
            status,
            reason: None,
            body: String::new(),
            location: Some(location),
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
        if let Some(location) = &self.location {
            builder = builder.header(header::LOCATION, location.as_str());
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
