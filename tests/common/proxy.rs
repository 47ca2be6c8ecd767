//! A fault-injecting TCP proxy for the chaos and dead-peer tests.
//!
//! Every accepted connection is forwarded to the current upstream address
//! (which can change, so a restarted dev server on a new port sits behind the
//! same URL). Faults are injected per connection, by id, at any time.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// What can go wrong on one proxied connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fault {
    /// Close both sides abruptly: the client gets a TCP reset.
    Reset,
    /// Close both sides cleanly (FIN), without a websocket close frame.
    Close,
    /// Stop forwarding in both directions but keep both sockets open: a
    /// half-open connection, as after a NAT timeout or a pulled cable.
    Stall,
    /// Hold every later chunk, in both directions, this long before forwarding it.
    Delay(Duration),
    /// Forward only the first half of the next chunk from the server (a
    /// websocket frame cut in the middle), then reset the connection.
    Truncate,
}

/// Counters of what the proxy did, for the report.
#[derive(Debug, Default, Clone, Copy)]
pub struct ProxyStats {
    pub accepted: u64,
    pub upstream_refused: u64,
    pub closed: u64,
}

struct Conn {
    faults: mpsc::UnboundedSender<Fault>,
}

struct Inner {
    upstream: Mutex<Option<SocketAddr>>,
    conns: Mutex<HashMap<u64, Conn>>,
    next_id: AtomicU64,
    accepted: AtomicU64,
    upstream_refused: AtomicU64,
    closed: AtomicU64,
}

/// The proxy; dropping it stops accepting (live connections end with their peers).
pub struct Proxy {
    addr: SocketAddr,
    inner: Arc<Inner>,
    accept: JoinHandle<()>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        for conn in self.inner.conns.lock().expect("proxy lock").values() {
            let _ = conn.faults.send(Fault::Reset);
        }
    }
}

impl Proxy {
    /// Listens on an ephemeral 127.0.0.1 port and forwards to `upstream`.
    pub async fn start(upstream: SocketAddr) -> io::Result<Proxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let inner = Arc::new(Inner {
            upstream: Mutex::new(Some(upstream)),
            conns: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            accepted: AtomicU64::new(0),
            upstream_refused: AtomicU64::new(0),
            closed: AtomicU64::new(0),
        });
        let accept = tokio::spawn(accept_loop(listener, inner.clone()));
        Ok(Proxy {
            addr,
            inner,
            accept,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Where new connections go; `None` refuses them (closed right after accept),
    /// as while a server restarts.
    pub fn set_upstream(&self, upstream: Option<SocketAddr>) {
        *self.inner.upstream.lock().expect("proxy lock") = upstream;
    }

    /// Ids of the connections currently forwarded (or stalled), oldest first.
    pub fn connections(&self) -> Vec<u64> {
        let mut ids: Vec<u64> = self
            .inner
            .conns
            .lock()
            .expect("proxy lock")
            .keys()
            .copied()
            .collect();
        ids.sort_unstable();
        ids
    }

    /// Injects `fault` into connection `id`; false if it is already gone.
    pub fn inject(&self, id: u64, fault: Fault) -> bool {
        self.inner
            .conns
            .lock()
            .expect("proxy lock")
            .get(&id)
            .is_some_and(|c| c.faults.send(fault).is_ok())
    }

    pub fn stats(&self) -> ProxyStats {
        ProxyStats {
            accepted: self.inner.accepted.load(Ordering::Relaxed),
            upstream_refused: self.inner.upstream_refused.load(Ordering::Relaxed),
            closed: self.inner.closed.load(Ordering::Relaxed),
        }
    }
}

async fn accept_loop(listener: TcpListener, inner: Arc<Inner>) {
    loop {
        let Ok((client, _)) = listener.accept().await else {
            continue;
        };
        inner.accepted.fetch_add(1, Ordering::Relaxed);
        let upstream = *inner.upstream.lock().expect("proxy lock");
        let inner = inner.clone();
        tokio::spawn(async move {
            let server = match upstream {
                Some(addr) => TcpStream::connect(addr).await.ok(),
                None => None,
            };
            let Some(server) = server else {
                inner.upstream_refused.fetch_add(1, Ordering::Relaxed);
                reset(client);
                return;
            };
            let id = inner.next_id.fetch_add(1, Ordering::Relaxed);
            let (tx, rx) = mpsc::unbounded_channel();
            inner
                .conns
                .lock()
                .expect("proxy lock")
                .insert(id, Conn { faults: tx });
            forward(client, server, rx).await;
            inner.conns.lock().expect("proxy lock").remove(&id);
            inner.closed.fetch_add(1, Ordering::Relaxed);
        });
    }
}

fn reset(stream: TcpStream) {
    // Zero linger turns the close into a RST.
    let _ = stream.set_zero_linger();
    drop(stream);
}

enum End {
    /// One side closed or failed: close the other one too.
    Peer,
    Reset,
    Close,
}

struct Halves {
    client_r: OwnedReadHalf,
    client_w: OwnedWriteHalf,
    server_r: OwnedReadHalf,
    server_w: OwnedWriteHalf,
}

async fn forward(client: TcpStream, server: TcpStream, faults: mpsc::UnboundedReceiver<Fault>) {
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (client_r, client_w) = client.into_split();
    let (server_r, server_w) = server.into_split();
    let mut h = Halves {
        client_r,
        client_w,
        server_r,
        server_w,
    };
    let end = pump(&mut h, faults).await;
    let (Ok(client), Ok(server)) = (
        h.client_r.reunite(h.client_w),
        h.server_r.reunite(h.server_w),
    ) else {
        return;
    };
    match end {
        End::Reset => {
            reset(client);
            reset(server);
        }
        End::Close | End::Peer => {
            drop(client);
            drop(server);
        }
    }
}

async fn pump(h: &mut Halves, mut faults: mpsc::UnboundedReceiver<Fault>) -> End {
    let mut up = vec![0u8; 16 * 1024];
    let mut down = vec![0u8; 16 * 1024];
    let mut delay = Duration::ZERO;
    let mut truncate = false;
    loop {
        tokio::select! {
            fault = faults.recv() => match fault {
                None | Some(Fault::Reset) => return End::Reset,
                Some(Fault::Close) => return End::Close,
                Some(Fault::Stall) => return stall(h, &mut faults).await,
                Some(Fault::Delay(d)) => delay = d,
                Some(Fault::Truncate) => truncate = true,
            },
            n = h.client_r.read(&mut up) => {
                let Ok(n @ 1..) = n else { return End::Peer };
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                if h.server_w.write_all(&up[..n]).await.is_err() {
                    return End::Peer;
                }
            }
            n = h.server_r.read(&mut down) => {
                let Ok(n @ 1..) = n else { return End::Peer };
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                if truncate {
                    let _ = h.client_w.write_all(&down[..n.div_ceil(2)]).await;
                    let _ = h.client_w.flush().await;
                    return End::Reset;
                }
                if h.client_w.write_all(&down[..n]).await.is_err() {
                    return End::Peer;
                }
            }
        }
    }
}

/// Half-open: nothing is forwarded any more, but both sockets stay open. The
/// client's bytes are read and discarded only so that its eventual close is
/// noticed and the connection does not outlive the test.
async fn stall(h: &mut Halves, faults: &mut mpsc::UnboundedReceiver<Fault>) -> End {
    let mut sink = vec![0u8; 16 * 1024];
    loop {
        tokio::select! {
            fault = faults.recv() => match fault {
                None | Some(Fault::Reset) => return End::Reset,
                Some(Fault::Close) => return End::Close,
                Some(_) => {}
            },
            n = h.client_r.read(&mut sink) => {
                if !matches!(n, Ok(1..)) {
                    return End::Peer;
                }
            }
        }
    }
}
