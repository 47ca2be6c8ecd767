//! Who is connecting. This is the one place that turns what the transport and
//! the upgrade request show into an identity or a refusal: a client
//! certificate, NH1 shared-secret headers (`x-nh-*`, verified in `nh1`), or
//! nothing.

use std::sync::Arc;

use tokio_tungstenite::tungstenite::handshake::server::Request;

use crate::clock::ServerClock;
use crate::nh1::Nh1Store;
use crate::rejection::Rejection;

/// NervesHub's exact reason when a device brings no credentials at all.
pub const NO_CREDENTIALS: &str =
    "no certificate pair or shared secrets connection settings were provided";

/// What the transport learned before the HTTP upgrade.
#[derive(Debug, Clone, Default)]
pub(crate) struct Peer {
    /// The client certificate, already verified against the dev CA by rustls.
    pub client_cert: Option<ClientCert>,
}

#[derive(Debug, Clone)]
pub(crate) struct ClientCert {
    pub common_name: Option<String>,
}

pub(crate) enum AuthOutcome {
    Accept { identity: Option<String> },
    Reject(Rejection),
}

pub(crate) trait Authenticator: Send + Sync {
    fn authenticate(&self, peer: &Peer, request: &Request) -> AuthOutcome;
}

/// NH1 verification against the configured secrets and the server's clock.
#[derive(Clone)]
pub(crate) struct SharedSecrets {
    pub store: Arc<Nh1Store>,
    pub clock: Arc<ServerClock>,
}

impl SharedSecrets {
    /// NervesHub answers every refused credential with a bare 401: no
    /// reason header, empty body. The reason is logged here instead.
    fn authenticate(&self, request: &Request) -> AuthOutcome {
        match self.store.verify(request.headers(), self.clock.now_ms()) {
            Ok(identifier) => AuthOutcome::Accept {
                identity: Some(identifier),
            },
            Err(refusal) => {
                log::info!("NH1 refused: {refusal}");
                AuthOutcome::Reject(Rejection {
                    status: 401,
                    reason: None,
                    body: String::new(),
                    location: None,
                })
            }
        }
    }
}

fn has_header_prefixed(request: &Request, prefix: &str) -> bool {
    request
        .headers()
        .keys()
        .any(|name| name.as_str().starts_with(prefix))
}

/// NervesHub's shared-secret mount, where devices without TLS client
/// certificates connect.
pub(crate) const SHARED_SECRET_PATH: &str = "/device-socket/websocket";

/// The plain ws listener. `/device-socket/websocket` is NervesHub's device
/// endpoint for shared secrets: anonymous clients get its 401 with
/// `nh-connection-error-reason`. `/socket/websocket` stays a generic
/// Phoenix socket that anyone may join anonymously (the core's channel
/// tests) but that is no device socket, like NervesHub's `UserSocket`
/// there: a client that sends `x-nh-*` headers is held to them, yet stays
/// anonymous, so `device`, `console` and `extensions` do not route.
pub(crate) struct Open {
    pub nh1: SharedSecrets,
}

impl Authenticator for Open {
    fn authenticate(&self, _peer: &Peer, request: &Request) -> AuthOutcome {
        let device_mount = request.uri().path() == SHARED_SECRET_PATH;
        if has_header_prefixed(request, "x-nh-") {
            match self.nh1.authenticate(request) {
                AuthOutcome::Accept { .. } if !device_mount => {
                    AuthOutcome::Accept { identity: None }
                }
                outcome => outcome,
            }
        } else if device_mount {
            AuthOutcome::Reject(Rejection::unauthorized(NO_CREDENTIALS))
        } else {
            AuthOutcome::Accept { identity: None }
        }
    }
}

/// The device endpoint, in NervesHub's order: a client certificate
/// (identity = its CN); else, if the request has any `x-*` header (Phoenix's
/// `x_headers`), the shared-secret path (identity = the signed identifier);
/// else NervesHub's 401 with its reason.
pub(crate) struct DeviceAuth {
    pub nh1: SharedSecrets,
}

impl Authenticator for DeviceAuth {
    fn authenticate(&self, peer: &Peer, request: &Request) -> AuthOutcome {
        if let Some(cert) = &peer.client_cert {
            return AuthOutcome::Accept {
                identity: cert.common_name.clone(),
            };
        }
        if has_header_prefixed(request, "x-") {
            return self.nh1.authenticate(request);
        }
        AuthOutcome::Reject(Rejection::unauthorized(NO_CREDENTIALS))
    }
}
