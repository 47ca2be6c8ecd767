//! Everything the server remembers, behind one lock: live connections and
//! their channels, what clients sent, join counters and test overrides.
//!
//! Control actions and client frames both mutate channel state and queue the
//! resulting frames under this lock, so their order on the wire matches the
//! order of the decisions.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use nerves_hub_channel::codec::{Frame, Serializer};
use nerves_hub_channel::message::{Message, Reply};
use tokio::sync::{mpsc, oneshot, watch, Notify};
use tokio_tungstenite::tungstenite::Message as WsMessage;

/// What Bandit sends when Phoenix stops a socket with a `{:shutdown, _}` reason.
const CLOSE_NORMAL: u16 = 1000;

/// One message a client sent on a channel.
#[derive(Debug, Clone)]
pub struct Received {
    pub connection: u64,
    pub identity: Option<String>,
    pub message: Message,
    pub at: Instant,
}

/// A live websocket connection as the control API shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionInfo {
    pub id: u64,
    /// The client certificate's CN, if the client presented one.
    pub identity: Option<String>,
    /// `/socket/websocket` or `/device-socket/websocket`.
    pub path: String,
    /// Topics joined on this connection, sorted.
    pub topics: Vec<String>,
    /// What the client's `vsn` selected.
    pub serializer: Serializer,
}

/// What the connection's writer task is asked to do.
#[derive(Debug)]
pub(crate) enum Out {
    Frame(WsMessage),
    Close(u16, &'static str),
    /// Resolved when the writer reaches it, i.e. once every frame queued
    /// before it was handed to the socket: floods pace themselves with it.
    Taken(oneshot::Sender<()>),
}

pub(crate) struct Conn {
    pub identity: Option<String>,
    pub path: String,
    /// The connection's serializer (its `vsn`).
    pub serializer: Serializer,
    /// topic -> join_ref of the current join.
    pub channels: BTreeMap<String, Option<String>>,
    /// What the last `extensions` join attached.
    pub attached_extensions: Vec<String>,
    pub out: mpsc::UnboundedSender<Out>,
    /// Abrupt close: the session drops the socket without a close frame.
    pub abort: Arc<Notify>,
}

fn to_ws(frame: Frame) -> WsMessage {
    match frame {
        Frame::Text(text) => WsMessage::text(text),
        Frame::Binary(bytes) => WsMessage::binary(bytes),
    }
}

impl Conn {
    pub fn send_frame(&self, frame: Frame) {
        // A closed queue means the session is ending; the frame has nowhere to go.
        let _ = self.out.send(Out::Frame(to_ws(frame)));
    }

    pub fn send_message(&self, msg: &Message) -> bool {
        match self.serializer.encode_server_message(msg) {
            Ok(frame) => {
                self.send_frame(frame);
                true
            }
            Err(e) => {
                log::warn!("cannot encode {} {}: {e}", msg.topic, msg.event);
                false
            }
        }
    }

    pub fn reply(&self, join_ref: Option<&str>, msg_ref: Option<&str>, topic: &str, reply: &Reply) {
        match self
            .serializer
            .encode_server_reply(join_ref, msg_ref, topic, reply)
        {
            Ok(frame) => self.send_frame(frame),
            Err(e) => log::warn!("cannot encode a reply on {topic}: {e}"),
        }
    }

    pub fn close(&self, code: u16, reason: &'static str) {
        let _ = self.out.send(Out::Close(code, reason));
    }

    pub fn info(&self, id: u64) -> ConnectionInfo {
        ConnectionInfo {
            id,
            identity: self.identity.clone(),
            path: self.path.clone(),
            topics: self.channels.keys().cloned().collect(),
            serializer: self.serializer,
        }
    }
}

pub(crate) struct State {
    pub conns: BTreeMap<u64, Conn>,
    pub received: Vec<Received>,
    /// Successful joins per topic since start or reset.
    pub joins: HashMap<String, usize>,
    pub join_replies: HashMap<String, Reply>,
    pub answer_heartbeats: bool,
    /// NervesHub behaviour settings (public keys, enabled extensions).
    pub hub: crate::hub_settings::HubSettings,
    /// Bumped by every reset, so waiters scanning `received` incrementally know to start over.
    pub generation: u64,
    /// Demo mode: the `update` payload offered to devices not running that firmware.
    pub demo_update: Option<serde_json::Value>,
    /// Per device identity (`None`: anonymous), when updates may be offered
    /// again after a `rescheduled` status.
    pub updates_blocked_until: HashMap<Option<String>, SystemTime>,
    /// Connections closed because another one authenticated with the same
    /// identity, since start or reset.
    pub kicks: u64,
}

impl State {
    fn new() -> State {
        State {
            conns: BTreeMap::new(),
            received: Vec::new(),
            joins: HashMap::new(),
            join_replies: HashMap::new(),
            answer_heartbeats: true,
            hub: crate::hub_settings::HubSettings::default(),
            generation: 0,
            demo_update: None,
            updates_blocked_until: HashMap::new(),
            kicks: 0,
        }
    }

    pub fn reset(&mut self) {
        self.received.clear();
        self.joins.clear();
        self.join_replies.clear();
        self.answer_heartbeats = true;
        self.hub = crate::hub_settings::HubSettings::default();
        self.updates_blocked_until.clear();
        self.kicks = 0;
        self.generation += 1;
    }
}

/// `now + after`, saturating far in the future: timeouts come from users
/// and HTTP bodies, and `Instant` addition panics on overflow.
pub(crate) fn deadline_after(after: Duration) -> tokio::time::Instant {
    let now = tokio::time::Instant::now();
    now.checked_add(after)
        .unwrap_or_else(|| now + Duration::from_secs(100 * 365 * 86_400))
}

pub(crate) struct Shared {
    state: Mutex<State>,
    /// Bumped after every change a waiter might care about.
    changed: watch::Sender<u64>,
    pub shutdown: watch::Sender<bool>,
    pub idle_timeout: Duration,
    pub demo: bool,
    next_id: AtomicU64,
}

impl Shared {
    pub fn new(idle_timeout: Duration, demo: bool) -> Arc<Shared> {
        Arc::new(Shared {
            state: Mutex::new(State::new()),
            changed: watch::channel(0).0,
            shutdown: watch::channel(false).0,
            idle_timeout,
            demo,
            next_id: AtomicU64::new(1),
        })
    }

    /// The state lock. A panic while holding it cannot leave the state
    /// half-updated in a way that matters to a test server, so poisoning is ignored.
    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `f` under the lock and wakes every waiter afterwards.
    pub fn update<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        let out = f(&mut self.lock());
        self.changed.send_modify(|v| *v = v.wrapping_add(1));
        out
    }

    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// Adds an authenticated connection. As NervesHub does (`DeviceSocket`
    /// broadcasts "disconnect" to the socket id `device_socket:<device>`
    /// when a device authenticates), every older connection with the same
    /// identity (certificate CN or NH1 identifier) is closed: Phoenix stops
    /// that socket with `{:shutdown, :disconnected}`, which Bandit sends as
    /// close code 1000 without a reason; its channels get no message.
    pub fn register(&self, conn: Conn) -> u64 {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.update(|state| {
            if let Some(identity) = &conn.identity {
                let older: Vec<u64> = state
                    .conns
                    .iter()
                    .filter(|(_, c)| c.identity.as_ref() == Some(identity))
                    .map(|(id, _)| *id)
                    .collect();
                for older_id in older {
                    if let Some(older) = state.conns.remove(&older_id) {
                        log::info!(
                            "connection {older_id}: closed, {identity:?} connected again as {id}"
                        );
                        older.close(CLOSE_NORMAL, "");
                        state.kicks += 1;
                    }
                }
            }
            state.conns.insert(id, conn)
        });
        id
    }

    pub fn unregister(&self, id: u64) {
        self.update(|state| state.conns.remove(&id));
    }

    /// Resolves once the server is shutting down.
    pub async fn stopped(&self) {
        let mut rx = self.shutdown.subscribe();
        // The sender lives as long as `self`, so an error cannot happen here.
        let _ = rx.wait_for(|down| *down).await;
    }
}
