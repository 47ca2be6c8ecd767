//! `nhc-devserver`: a local server that behaves like Phoenix plus NervesHub's
//! device endpoint (ws and mutual-TLS wss), with a control API to script it.
//! Used in-process by the Rust tests and as a binary by the C and Python
//! tests and the demo (DESIGN.md section 7).

use std::path::PathBuf;
use std::time::Duration;

mod api;
mod auth;
mod channels;
mod clock;
mod connect_proxy;
mod console_files;
mod control;
mod demo;
mod device_messages;
mod firmware;
mod flood;
mod fw_meta;
mod handshake;
mod http;
mod httpdate;
mod hub;
mod hub_settings;
mod lb_redirect;
mod listener;
mod nh1;
mod paced;
mod pki;
mod rejection;
mod sec1;
mod server;
mod session;
mod state;
mod tls;

pub use auth::NO_CREDENTIALS;
pub use channels::is_routed;
pub use connect_proxy::{ConnectProxy, ProxyRules, TunnelRecord};
pub use control::Control;
pub use firmware::{random_image, Firmware, FirmwareFaults, FirmwareRequest};
pub use flood::Flood;
pub use handshake::{MAX_MESSAGE_SIZE, SOCKET_PATHS};
pub use httpdate::imf_fixdate;
pub use hub::DUMMY_PUBLIC_KEY;
pub use nh1::SharedSecretEntry;
pub use pki::{Pki, DEVICE_CN};
pub use server::DevServer;
pub use state::{ConnectionInfo, Received};

/// How to start a `DevServer`.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where the PKI lives; `None` makes a fresh temporary directory, removed when the server stops.
    pub pki_dir: Option<PathBuf>,
    /// A connection that sends nothing for this long is closed with code 1002.
    pub idle_timeout: Duration,
    /// Greet devices joining `device` and print what they send.
    pub demo: bool,
    /// NH1 shared secrets accepted on both listeners (`Debug` hides them).
    pub shared_secrets: Vec<SharedSecretEntry>,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            pki_dir: None,
            idle_timeout: Duration::from_secs(60),
            demo: false,
            shared_secrets: Vec::new(),
        }
    }
}
