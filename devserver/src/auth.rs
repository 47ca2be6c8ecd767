//! Who is connecting. This is the one place that turns what the transport and
//! the upgrade request show into an identity or a refusal, so NH1
//! shared-secret verification (`x-nh-*` headers) slots in as another
//! `Authenticator` or another branch of `DeviceAuth`.

use tokio_tungstenite::tungstenite::handshake::server::Request;

use crate::handshake::Rejection;

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

/// The plain ws listener: anyone may connect, anonymously.
pub(crate) struct Open;

impl Authenticator for Open {
    fn authenticate(&self, _peer: &Peer, _request: &Request) -> AuthOutcome {
        AuthOutcome::Accept { identity: None }
    }
}

/// The device endpoint: a client certificate (identity = its CN), otherwise
/// NervesHub's 401.
pub(crate) struct DeviceAuth;

impl Authenticator for DeviceAuth {
    fn authenticate(&self, peer: &Peer, _request: &Request) -> AuthOutcome {
        match &peer.client_cert {
            Some(cert) => AuthOutcome::Accept {
                identity: cert.common_name.clone(),
            },
            None => AuthOutcome::Reject(Rejection::unauthorized(NO_CREDENTIALS)),
        }
    }
}
