//! The ws and wss accept loops: TCP, optional TLS, the HTTP upgrade, then a session.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};

use crate::auth::{Authenticator, ClientCert, Peer};
use crate::clock::ServerClock;
use crate::handshake::{self, Accepted};
use crate::session;
use crate::state::Shared;
use crate::tls;

/// A client that connects and then says nothing must not hold a task forever.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How a listener turns TCP connections into websocket sessions.
#[derive(Clone)]
pub(crate) struct Endpoint {
    pub tls: Option<TlsAcceptor>,
    pub auth: Arc<dyn Authenticator>,
    /// Dates the refusals (shared with NH1 checks and `POST /clock_skew`).
    pub clock: Arc<ServerClock>,
}

pub(crate) async fn accept_loop(listener: TcpListener, endpoint: Endpoint, shared: Arc<Shared>) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = shared.stopped() => return,
        };
        match accepted {
            Ok((stream, addr)) => {
                log::debug!("tcp connection from {addr}");
                let _ = stream.set_nodelay(true);
                let (endpoint, shared) = (endpoint.clone(), shared.clone());
                tokio::spawn(async move {
                    tokio::select! {
                        () = serve(stream, endpoint, shared.clone()) => {}
                        () = shared.stopped() => {}
                    }
                });
            }
            // Typically EMFILE under a fleet test: back off briefly instead of spinning.
            Err(e) => {
                log::warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

async fn serve(stream: TcpStream, endpoint: Endpoint, shared: Arc<Shared>) {
    let Some(acceptor) = &endpoint.tls else {
        return upgrade(stream, Peer::default(), &endpoint, shared).await;
    };
    let tls_stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => return log::info!("TLS handshake failed: {e}"),
        Err(_) => return log::info!("TLS handshake timed out"),
    };
    let client_cert = tls_stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|chain| chain.first())
        .map(|cert| ClientCert {
            common_name: tls::common_name(cert),
        });
    upgrade(tls_stream, Peer { client_cert }, &endpoint, shared).await;
}

async fn upgrade<S>(stream: S, peer: Peer, endpoint: &Endpoint, shared: Arc<Shared>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut accepted: Option<Accepted> = None;
    // tungstenite fixes this callback's signature, large error type included.
    #[allow(clippy::result_large_err)]
    let callback = |request: &Request, response: Response| -> Result<Response, ErrorResponse> {
        match handshake::check(request, &peer, endpoint.auth.as_ref()) {
            Ok(ok) => {
                accepted = Some(ok);
                Ok(response)
            }
            Err(rejection) => {
                log::info!(
                    "refused upgrade of {}: HTTP {}",
                    request.uri(),
                    rejection.status
                );
                Err(rejection.into_response(endpoint.clock.http_date()))
            }
        }
    };
    let handshake = tokio_tungstenite::accept_hdr_async_with_config(
        stream,
        callback,
        Some(handshake::ws_config()),
    );
    let ws = match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await {
        Ok(Ok(ws)) => ws,
        Ok(Err(e)) => return log::debug!("websocket handshake ended: {e}"),
        Err(_) => return log::info!("websocket handshake timed out"),
    };
    match accepted {
        Some(accepted) => session::run(shared, ws, accepted).await,
        None => log::warn!("upgrade completed without a decision"),
    }
}
