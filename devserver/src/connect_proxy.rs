//! A small HTTP `CONNECT` proxy with scripted failures: refuse every
//! tunnel (403...), require basic authentication (407), cut tunnels after
//! a number of bytes (a proxy dropping a download). It counts the bytes
//! each tunnel relays, which is what the bytes-on-the-wire benchmark reads.
//! Credentials are compared, never logged or reported.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::http::{Request, Response};

const MAX_HEAD: usize = 16 * 1024;

/// How the proxy treats the next tunnels. The default relays everything.
#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProxyRules {
    /// `user:password`: a CONNECT without these basic credentials gets 407.
    pub credentials: Option<String>,
    /// Answer every CONNECT with this status (403, 502...) instead.
    pub refuse: Option<u16>,
    /// Close a tunnel once it relayed this many bytes towards the client.
    pub cut_after_bytes: Option<u64>,
    /// Cut at most this many tunnels (default: every one that gets there).
    pub cuts: Option<u32>,
}

// Hand-written: `credentials` is a secret.
impl std::fmt::Debug for ProxyRules {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProxyRules")
            .field("credentials", &self.credentials.is_some())
            .field("refuse", &self.refuse)
            .field("cut_after_bytes", &self.cut_after_bytes)
            .field("cuts", &self.cuts)
            .finish()
    }
}

/// One CONNECT request and, if it was granted, its tunnel.
#[derive(Debug, Default)]
struct Tunnel {
    target: String,
    status: u16,
    credentials_sent: bool,
    to_server: AtomicU64,
    to_client: AtomicU64,
    cut: AtomicBool,
}

/// What `tunnels()` reports about one CONNECT.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TunnelRecord {
    /// `host:port` asked for.
    pub target: String,
    /// The proxy's answer (200 when the tunnel opened).
    pub status: u16,
    /// Whether a `Proxy-Authorization` header came (its value is not kept).
    pub credentials_sent: bool,
    /// Bytes relayed from the client to the server.
    pub to_server: u64,
    /// Bytes relayed from the server to the client.
    pub to_client: u64,
    /// The proxy cut this tunnel (`cut_after_bytes`).
    pub cut: bool,
}

#[derive(Default)]
struct State {
    rules: ProxyRules,
    cuts_done: u32,
    tunnels: Vec<Arc<Tunnel>>,
}

/// A running proxy; stops when dropped.
pub struct ConnectProxy {
    addr: SocketAddr,
    state: Arc<Mutex<State>>,
    task: JoinHandle<()>,
}

impl Drop for ConnectProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl ConnectProxy {
    /// Listens on an ephemeral port of 127.0.0.1.
    pub async fn start() -> std::io::Result<ConnectProxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(Mutex::new(State::default()));
        let task = tokio::spawn(accept_loop(listener, state.clone()));
        Ok(ConnectProxy { addr, state, task })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Replaces the rules and forgets the tunnels seen so far.
    pub fn set_rules(&self, rules: ProxyRules) {
        let mut state = lock(&self.state);
        *state = State {
            rules,
            ..State::default()
        };
    }

    /// Every CONNECT since the last `set_rules`, oldest first.
    pub fn tunnels(&self) -> Vec<TunnelRecord> {
        lock(&self.state)
            .tunnels
            .iter()
            .map(|t| TunnelRecord {
                target: t.target.clone(),
                status: t.status,
                credentials_sent: t.credentials_sent,
                to_server: t.to_server.load(Ordering::Relaxed),
                to_client: t.to_client.load(Ordering::Relaxed),
                cut: t.cut.load(Ordering::Relaxed),
            })
            .collect()
    }
}

fn lock(state: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|p| p.into_inner())
}

async fn accept_loop(listener: TcpListener, state: Arc<Mutex<State>>) {
    loop {
        match listener.accept().await {
            Ok((client, _)) => {
                let _ = client.set_nodelay(true);
                tokio::spawn(serve(client, state.clone()));
            }
            Err(e) => {
                log::warn!("proxy accept failed: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}

async fn answer(client: &mut TcpStream, status: u16, phrase: &str, extra: &str) {
    let head = format!(
        "HTTP/1.1 {status} {phrase}\r\n{extra}Content-Length: 0\r\nConnection: close\r\n\r\n"
    );
    let _ = client.write_all(head.as_bytes()).await;
    let _ = client.shutdown().await;
}

async fn serve(mut client: TcpStream, state: Arc<Mutex<State>>) {
    let mut head = Vec::with_capacity(512);
    let mut piece = [0u8; 1024];
    let head_len = loop {
        if let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") {
            break end + 4;
        }
        if head.len() > MAX_HEAD {
            return answer(&mut client, 431, "Request Header Fields Too Large", "").await;
        }
        match client.read(&mut piece).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&piece[..n]),
        }
    };
    let mut slots = [httparse::EMPTY_HEADER; 64];
    let mut request = httparse::Request::new(&mut slots);
    if !matches!(
        request.parse(&head[..head_len]),
        Ok(httparse::Status::Complete(_))
    ) {
        return answer(&mut client, 400, "Bad Request", "").await;
    }
    if request.method != Some("CONNECT") {
        return answer(&mut client, 405, "Method Not Allowed", "Allow: CONNECT\r\n").await;
    }
    let target = request.path.unwrap_or("").to_owned();
    let authorization = request
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("proxy-authorization"))
        .map(|h| String::from_utf8_lossy(h.value).trim().to_owned());
    let leftover = head[head_len..].to_vec();

    let rules = lock(&state).rules.clone();
    let authorized = match &rules.credentials {
        None => true,
        Some(expected) => authorization.as_deref().is_some_and(|value| {
            value
                .strip_prefix("Basic ")
                .and_then(|b| {
                    base64::engine::general_purpose::STANDARD
                        .decode(b.trim())
                        .ok()
                })
                .is_some_and(|decoded| decoded == expected.as_bytes())
        }),
    };
    let status = match (rules.refuse, authorized) {
        (Some(status), _) => status,
        (None, false) => 407,
        (None, true) => 200,
    };
    let mut server = None;
    let status = if status == 200 {
        match TcpStream::connect(target.as_str()).await {
            Ok(s) => {
                server = Some(s);
                200
            }
            Err(e) => {
                log::info!("proxy: cannot reach {target}: {e}");
                502
            }
        }
    } else {
        status
    };
    let tunnel = Arc::new(Tunnel {
        target: target.clone(),
        status,
        credentials_sent: authorization.is_some(),
        ..Tunnel::default()
    });
    lock(&state).tunnels.push(tunnel.clone());
    log::info!("proxy: CONNECT {target} -> {status}");
    let Some(mut server) = server else {
        let (phrase, extra) = match status {
            407 => (
                "Proxy Authentication Required",
                "Proxy-Authenticate: Basic realm=\"nhc-devserver\"\r\n",
            ),
            403 => ("Forbidden", ""),
            502 => ("Bad Gateway", ""),
            _ => ("Refused", ""),
        };
        return answer(&mut client, status, phrase, extra).await;
    };
    let _ = server.set_nodelay(true);
    if client
        .write_all(b"HTTP/1.1 200 Connection established\r\n\r\n")
        .await
        .is_err()
    {
        return;
    }
    if !leftover.is_empty() {
        if server.write_all(&leftover).await.is_err() {
            return;
        }
        tunnel
            .to_server
            .fetch_add(leftover.len() as u64, Ordering::Relaxed);
    }
    relay(client, server, tunnel, state, rules.cut_after_bytes).await;
}

/// Copies both ways until either side closes, or until the cut.
async fn relay(
    client: TcpStream,
    server: TcpStream,
    tunnel: Arc<Tunnel>,
    state: Arc<Mutex<State>>,
    cut_after: Option<u64>,
) {
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let up = {
        let tunnel = tunnel.clone();
        async move {
            let mut buf = vec![0u8; 16 * 1024];
            loop {
                let n = match client_read.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => n,
                };
                if server_write.write_all(&buf[..n]).await.is_err() {
                    break;
                }
                tunnel.to_server.fetch_add(n as u64, Ordering::Relaxed);
            }
            let _ = server_write.shutdown().await;
        }
    };
    let down = async move {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = match server_read.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let sent = tunnel.to_client.load(Ordering::Relaxed);
            let budget = cut_after.map(|limit| limit.saturating_sub(sent));
            if let Some(budget) = budget.filter(|b| (n as u64) > *b) {
                let allowed = {
                    let mut s = lock(&state);
                    let allowed = s.rules.cuts.is_none_or(|max| s.cuts_done < max);
                    if allowed {
                        s.cuts_done += 1;
                    }
                    allowed
                };
                if allowed {
                    let budget = budget as usize;
                    let _ = client_write.write_all(&buf[..budget]).await;
                    tunnel.to_client.fetch_add(budget as u64, Ordering::Relaxed);
                    tunnel.cut.store(true, Ordering::Relaxed);
                    log::info!(
                        "proxy: cutting the tunnel to {} after {} bytes",
                        tunnel.target,
                        sent + budget as u64
                    );
                    // Dropping both halves closes the client's connection.
                    return true;
                }
            }
            if client_write.write_all(&buf[..n]).await.is_err() {
                break;
            }
            tunnel.to_client.fetch_add(n as u64, Ordering::Relaxed);
        }
        let _ = client_write.shutdown().await;
        false
    };
    tokio::pin!(up);
    tokio::pin!(down);
    tokio::select! {
        _ = &mut up => { let _ = down.await; }
        _cut = &mut down => {}
    }
}

/// `GET /proxy`: the tunnels; `POST /proxy`: new rules (JSON `ProxyRules`).
pub(crate) fn route(proxy: &ConnectProxy, request: &Request) -> Option<Response> {
    if request.path != "/proxy" {
        return None;
    }
    Some(match request.method.as_str() {
        "GET" => Response::json(
            200,
            &json!({"tunnels": proxy.tunnels(), "url": proxy.url()}),
        ),
        "POST" => {
            let bytes: &[u8] = if request.body.iter().all(u8::is_ascii_whitespace) {
                b"{}"
            } else {
                &request.body
            };
            match serde_json::from_slice::<ProxyRules>(bytes) {
                Ok(rules) => {
                    proxy.set_rules(rules);
                    Response::json(200, &json!({"ok": true}))
                }
                Err(e) => Response::error(400, format!("bad proxy rules: {e}")),
            }
        }
        other => Response::error(405, format!("/proxy takes GET or POST, not {other}")),
    })
}
