//! nerves_hub_channel: a Phoenix channels client and NervesHub device layer.
//!
//! The core is a [`Socket`] (one websocket connection, re-made as needed)
//! carrying [`Channel`]s. Everything the socket observes arrives as one
//! ordered stream of [`Event`]s, consumed by async code
//! ([`Socket::next_event`]), by a blocking or poll()-driven loop
//! ([`Socket::recv_timeout`], [`Socket::event_fd`]), or by a handler on the
//! library's dispatcher thread ([`Socket::set_handler`]).

mod actor;
pub mod backoff;
mod calendar;
mod channel;
pub mod codec;
pub mod config;
mod dispatcher;
pub mod error;
pub mod event;
mod handle;
pub mod log_policy;
pub mod message;
pub mod nerves_hub;
pub mod proxy;
mod pull;
mod queue;
mod reconnect;
mod redirect;
pub mod runtime;
mod signal_fd;
mod socket;
pub mod tls;
mod transport;
mod user_agent;

pub use actor::{ConnectionState, JoinParams};
pub use backoff::Backoff;
pub use channel::{Channel, ChannelState, Reply as PendingReply};
pub use config::{HeaderProvider, SocketConfig};
pub use dispatcher::on_dispatcher_thread;
pub use error::{Error, Result};
pub use event::{ChannelId, Event, JoinFailure, PushId, PushOutcome};
pub use handle::Handle;
pub use message::{Inbound, JsonText, Message, Payload, Reply};
pub use proxy::ProxyConfig;
pub use pull::{EventSource, Puller};
pub use queue::Handler;
pub use socket::Socket;
pub use tls::pkcs11::{Pkcs11Key, Pkcs11KeyOptions, Pkcs11Pin};
pub use tls::signer::{KeyAlgorithm, KeySigner, SignRequest, SignatureAlgorithm};
pub use tls::{ExternalKey, PemSource, TlsOptions};
