//! `DevServer`: PKI, the ws, wss and control listeners, and their lifetime.

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

use crate::api::{self, ApiContext};
use crate::auth::{DeviceAuth, Open, SharedSecrets};
use crate::clock::ServerClock;
use crate::connect_proxy::ConnectProxy;
use crate::control::Control;
use crate::firmware::Firmware;
use crate::listener::{accept_loop, Endpoint};
use crate::nh1::{Nh1Store, SharedSecretEntry};
use crate::pki::Pki;
use crate::state::Shared;
use crate::{http, tls, Config};

/// A running server; dropping it stops it too (without waiting).
pub struct DevServer {
    shared: Arc<Shared>,
    pki: Pki,
    ws_port: u16,
    wss_port: u16,
    control_addr: SocketAddr,
    tasks: Vec<JoinHandle<()>>,
    firmware: Firmware,
    /// A CONNECT proxy in front of every listener (`proxy_url`).
    proxy: Arc<ConnectProxy>,
    /// NH1 shared secrets and the server clock they are checked against.
    nh1: SharedSecrets,
    /// A PKI directory this server invented, removed when it stops.
    temp_dir: Option<PathBuf>,
}

fn temp_pki_dir() -> PathBuf {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    std::env::temp_dir().join(format!("nhc-devserver-{}-{n}-{nanos}", std::process::id()))
}

async fn bind() -> io::Result<TcpListener> {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await
}

impl DevServer {
    /// Generates (or reuses) the PKI and starts listening on 127.0.0.1 ephemeral ports.
    pub async fn start(config: Config) -> io::Result<DevServer> {
        let (dir, temp_dir) = match &config.pki_dir {
            Some(dir) => (dir.clone(), None),
            None => {
                let dir = temp_pki_dir();
                (dir.clone(), Some(dir))
            }
        };
        let pki = tokio::task::spawn_blocking(move || Pki::load_or_create(&dir))
            .await
            .map_err(io::Error::other)??;
        let temp_dir = temp_dir.map(|_| pki.dir.clone());
        let acceptor = TlsAcceptor::from(tls::server_config(&pki)?);
        let shared = Shared::new(config.idle_timeout, config.demo);
        let store = Nh1Store::new(&config.shared_secrets).map_err(|e| {
            io::Error::new(io::ErrorKind::InvalidInput, format!("shared secret: {e}"))
        })?;
        let clock = Arc::new(ServerClock::default());
        let nh1 = SharedSecrets {
            store: Arc::new(store),
            clock: clock.clone(),
        };

        let (ws, wss, control) = (bind().await?, bind().await?, bind().await?);
        let (ws_port, wss_port) = (ws.local_addr()?.port(), wss.local_addr()?.port());
        let control_addr = control.local_addr()?;

        let plain = Endpoint {
            tls: None,
            auth: Arc::new(Open { nh1: nh1.clone() }),
            clock: clock.clone(),
        };
        let secure = Endpoint {
            tls: Some(acceptor),
            auth: Arc::new(DeviceAuth { nh1: nh1.clone() }),
            clock,
        };
        let mut tasks = vec![
            tokio::spawn(accept_loop(ws, plain, shared.clone())),
            tokio::spawn(accept_loop(wss, secure.clone(), shared.clone())),
        ];
        // "localhost" may resolve to ::1 first; serve it there too when the port is free.
        match TcpListener::bind(("::1", wss_port)).await {
            Ok(v6) => tasks.push(tokio::spawn(accept_loop(v6, secure, shared.clone()))),
            Err(e) => log::debug!("no wss listener on [::1]:{wss_port}: {e}"),
        }

        let proxy = Arc::new(ConnectProxy::start().await?);
        let mut server = DevServer {
            proxy,
            shared,
            pki,
            ws_port,
            wss_port,
            control_addr,
            tasks,
            firmware: Firmware::new(format!("http://{control_addr}")),
            nh1,
            temp_dir,
        };
        let ctx = Arc::new(ApiContext {
            control: server.control(),
            info: server.info(),
            pki: server.pki.clone(),
            nh1: server.nh1.clone(),
            firmware: server.firmware(),
            proxy: server.proxy.clone(),
        });
        let handler = move |request| {
            let ctx = ctx.clone();
            async move { api::handle(&ctx, request).await }
        };
        server.tasks.push(tokio::spawn(http::serve(
            control,
            server.shared.clone(),
            handler,
        )));
        if config.demo {
            // A firmware a little over 3 MiB, so progress and per-MiB checks show.
            let offer = server
                .firmware
                .add(
                    "demo-1.1.0.fw",
                    crate::firmware::random_image(3 * 1024 * 1024 + 4096, 11),
                )
                .map_err(|e| std::io::Error::other(format!("demo firmware: {e}")))?;
            // About 2 s of download, so the progress reports show.
            let slow = crate::firmware::FirmwareFaults {
                bytes_per_second: Some(1536 * 1024),
                ..Default::default()
            };
            server
                .firmware
                .set_faults("demo-1.1.0.fw", slow)
                .map_err(std::io::Error::other)?;
            let update = offer.get("update").cloned();
            server.shared.update(|state| state.demo_update = update);
        }
        log::info!("listening: {}", server.info());
        Ok(server)
    }

    /// `ws://127.0.0.1:PORT/socket/websocket`
    pub fn ws_url(&self) -> String {
        format!("ws://127.0.0.1:{}/socket/websocket", self.ws_port)
    }

    /// `ws://127.0.0.1:PORT/device-socket/websocket`: NervesHub's NH1
    /// shared-secret mount, where devices without a client certificate connect.
    pub fn device_socket_url(&self) -> String {
        format!("ws://127.0.0.1:{}/device-socket/websocket", self.ws_port)
    }

    /// `wss://localhost:PORT/socket/websocket` (the server certificate names localhost).
    pub fn wss_url(&self) -> String {
        format!("wss://localhost:{}/socket/websocket", self.wss_port)
    }

    /// `http://127.0.0.1:PORT`
    pub fn control_url(&self) -> String {
        format!("http://{}", self.control_addr)
    }

    pub fn pki(&self) -> &Pki {
        &self.pki
    }

    pub fn control(&self) -> Control {
        Control::new(self.shared.clone())
    }

    /// Firmware images served at `control_url()/firmware/<name>`, with faults.
    pub fn firmware(&self) -> Firmware {
        self.firmware.clone()
    }

    /// The CONNECT proxy started with the server (`POST /proxy` scripts it).
    pub fn proxy(&self) -> &ConnectProxy {
        &self.proxy
    }

    /// Accepts another NH1 shared secret (or replaces the one with that key).
    pub fn add_shared_secret(&self, entry: SharedSecretEntry) -> Result<(), String> {
        self.nh1.store.add(entry)
    }

    /// Shifts the server's "now" by `seconds` for NH1 checks and the `Date`
    /// header of refusals (negative: the server's clock is behind).
    pub fn set_clock_skew(&self, seconds: i64) {
        self.nh1.clock.set_skew(seconds);
    }

    /// URLs and PKI paths as one JSON object: the binary's ready line and `GET /`.
    pub fn info(&self) -> Value {
        let path = |p: &PathBuf| p.display().to_string();
        json!({
            "ws_url": self.ws_url(),
            "wss_url": self.wss_url(),
            "device_socket_url": self.device_socket_url(),
            "control_url": self.control_url(),
            "proxy_url": self.proxy.url(),
            "pki_dir": path(&self.pki.dir),
            "ca": path(&self.pki.ca),
            "device_cert": path(&self.pki.device_cert),
            "device_key": path(&self.pki.device_key),
        })
    }

    /// Closes the listeners and every connection (abruptly), and waits for the listeners.
    pub async fn shutdown(mut self) {
        self.stop();
        for task in self.tasks.drain(..) {
            let _ = task.await;
        }
    }

    fn stop(&self) {
        self.shared.shutdown.send_replace(true);
        self.shared.update(|state| {
            for conn in std::mem::take(&mut state.conns).values() {
                conn.abort.notify_one();
            }
        });
    }
}

impl Drop for DevServer {
    fn drop(&mut self) {
        self.stop();
        if let Some(dir) = &self.temp_dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}
