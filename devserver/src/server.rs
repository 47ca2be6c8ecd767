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
use crate::auth::{DeviceAuth, Open};
use crate::control::Control;
use crate::listener::{accept_loop, Endpoint};
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

        let (ws, wss, control) = (bind().await?, bind().await?, bind().await?);
        let (ws_port, wss_port) = (ws.local_addr()?.port(), wss.local_addr()?.port());
        let control_addr = control.local_addr()?;

        let plain = Endpoint {
            tls: None,
            auth: Arc::new(Open),
        };
        let secure = Endpoint {
            tls: Some(acceptor),
            auth: Arc::new(DeviceAuth),
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

        let mut server = DevServer {
            shared,
            pki,
            ws_port,
            wss_port,
            control_addr,
            tasks,
            temp_dir,
        };
        let ctx = Arc::new(ApiContext {
            control: server.control(),
            info: server.info(),
            pki: server.pki.clone(),
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
        log::info!("listening: {}", server.info());
        Ok(server)
    }

    /// `ws://127.0.0.1:PORT/socket/websocket`
    pub fn ws_url(&self) -> String {
        format!("ws://127.0.0.1:{}/socket/websocket", self.ws_port)
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

    /// URLs and PKI paths as one JSON object: the binary's ready line and `GET /`.
    pub fn info(&self) -> Value {
        let path = |p: &PathBuf| p.display().to_string();
        json!({
            "ws_url": self.ws_url(),
            "wss_url": self.wss_url(),
            "control_url": self.control_url(),
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
