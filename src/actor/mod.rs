//! The connection task: one per socket, owning the websocket, every channel's
//! state, pending pushes and all timers. Handles talk to it through commands;
//! it talks back through the event queue. Nothing here blocks on user code.

mod channels;
mod finished;
mod link;
mod pushes;
mod timer;

use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::{FutureExt, SinkExt, StreamExt};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Error as WsError;
use tokio_tungstenite::tungstenite::Message as WsMessage;

use crate::codec;
use crate::config::SocketConfig;
use crate::error::Error;
use crate::event::{ChannelId, Event, JoinFailure, PushId, PushOutcome};
use crate::message::{Message, Payload};
use crate::queue::EventQueue;
use crate::reconnect::Reconnects;
use crate::tls::TlsClient;
use crate::transport::{ConnectFailure, WsStream};

use channels::ChannelState;
pub use channels::JoinParams;
use finished::{Finished, MarkOnDrop};
use pushes::PushRecord;

/// Where the end of a push is reported.
pub(crate) enum ReplyTo {
    Future(oneshot::Sender<PushOutcome>),
    Event,
    /// Fire-and-forget: only a failure to send is reported, as an event.
    Cast,
}

pub(crate) struct PushRequest {
    pub channel: ChannelId,
    pub push: PushId,
    pub event: String,
    pub payload: Payload,
    pub timeout: Duration,
    pub reply: ReplyTo,
}

pub(crate) type JoinWaiter = oneshot::Sender<Result<Payload, JoinFailure>>;

pub(crate) enum Command {
    Connect,
    Disconnect,
    Shutdown,
    Join {
        channel: ChannelId,
        topic: String,
        params: JoinParams,
        state: crate::channel::StateCell,
        timeout: Duration,
        waiter: Option<JoinWaiter>,
    },
    Leave {
        channel: ChannelId,
        timeout: Duration,
        waiter: Option<oneshot::Sender<()>>,
    },
    Push(PushRequest),
}

/// Connection state shared with the handles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ConnectionState {
    Disconnected = 0,
    Connecting = 1,
    Connected = 2,
    Closed = 3,
}

pub(crate) struct Shared {
    pub state: AtomicU8,
    /// Pushes accepted by handles and not yet on the wire or finished.
    pub outbound: AtomicUsize,
    /// Our end of the current (or last) connection.
    pub local_addr: std::sync::Mutex<Option<std::net::SocketAddr>>,
    /// Marked when the connection task has dropped everything it held.
    pub finished: Finished,
}

impl Shared {
    pub fn new() -> Shared {
        Shared {
            state: AtomicU8::new(ConnectionState::Disconnected as u8),
            outbound: AtomicUsize::new(0),
            local_addr: std::sync::Mutex::new(None),
            finished: Finished::default(),
        }
    }

    pub fn local_addr(&self) -> Option<std::net::SocketAddr> {
        *self
            .local_addr
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn state(&self) -> ConnectionState {
        match self.state.load(Ordering::Acquire) {
            1 => ConnectionState::Connecting,
            2 => ConnectionState::Connected,
            3 => ConnectionState::Closed,
            _ => ConnectionState::Disconnected,
        }
    }
}

type Connecting =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<WsStream, ConnectFailure>> + Send>>;

struct Heartbeat {
    next_at: Option<Instant>,
    /// Ref and deadline of the heartbeat awaiting its reply.
    pending: Option<(String, Instant)>,
    /// We stopped reading (slow consumer) since the pending heartbeat was sent,
    /// so a late reply proves nothing about the server.
    paused: bool,
}

pub(crate) struct Actor {
    config: SocketConfig,
    url: url::Url,
    tls: Option<TlsClient>,
    commands: mpsc::UnboundedReceiver<Command>,
    queue: Arc<EventQueue>,
    shared: Arc<Shared>,
    ws: Option<WsStream>,
    dirty: bool,
    connecting: Option<Connecting>,
    want_connected: bool,
    reconnect_at: Option<Instant>,
    /// Backoff position and the run of short sessions.
    reconnects: Reconnects,
    /// When the current connection first joined (or connected, with nothing
    /// to join): how long a session lasted decides its effect on the backoff.
    joined_at: Option<Instant>,
    server_date: Option<String>,
    next_ref: u64,
    heartbeat: Heartbeat,
    /// Boxed: a map node holds room for eleven entries, and a socket usually
    /// has one or two channels (2.9 KB of node per socket unboxed).
    channels: BTreeMap<ChannelId, Box<ChannelState>>,
    pushes: HashMap<PushId, PushRecord>,
    inflight: HashMap<String, PushId>,
    deadlines: BinaryHeap<std::cmp::Reverse<(Instant, PushId)>>,
    exit: bool,
    /// Last field: marks `Shared::finished` after every other one dropped.
    _finished: MarkOnDrop,
}

/// Commands handled per wake-up before the socket is read again.
const COMMAND_BATCH: usize = 256;

/// Frames already buffered that are handled in one go before commands and
/// timers get their turn; bounds the delay a burst adds to the first event.
const FRAME_BATCH: usize = 128;

impl Actor {
    pub fn new(
        config: SocketConfig,
        url: url::Url,
        tls: Option<TlsClient>,
        commands: mpsc::UnboundedReceiver<Command>,
        queue: Arc<EventQueue>,
        shared: Arc<Shared>,
    ) -> Actor {
        let shared_for_latch = shared.clone();
        Actor {
            config,
            url,
            tls,
            commands,
            queue,
            shared,
            ws: None,
            dirty: false,
            connecting: None,
            want_connected: false,
            reconnect_at: None,
            reconnects: Reconnects::default(),
            joined_at: None,
            server_date: None,
            next_ref: 0,
            heartbeat: Heartbeat {
                next_at: None,
                pending: None,
                paused: false,
            },
            channels: BTreeMap::new(),
            pushes: HashMap::new(),
            inflight: HashMap::new(),
            deadlines: BinaryHeap::new(),
            exit: false,
            _finished: MarkOnDrop(shared_for_latch),
        }
    }

    /// The connection task. The actor lives in its own allocation and the
    /// task holds a pointer: an `async fn` taking `self` by value would keep
    /// a second copy of it (1.3 KB) in the task for its whole life. Rare,
    /// large steps (connect results, timers, shutdown) are boxed for the
    /// same reason: a task is as large as its largest inline step, and 1,000
    /// sockets pay for it 1,000 times.
    pub fn run(self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut actor = Box::new(self);
        async move { actor.serve().await }
    }

    async fn serve(&mut self) {
        // The timer of `next_deadline`, kept from one turn to the next and
        // armed only when the deadline moves: a fresh one per turn would
        // enter and leave the runtime's timer wheel for every frame.
        let mut timer = timer::Timer::new();
        while !self.exit {
            let wake = self.next_deadline();
            if let Some(at) = wake {
                timer.set(at);
            }
            let reading = self.ws.is_some() && !self.queue.is_full();
            if self.ws.is_some() && !reading {
                self.heartbeat.paused = true;
            }
            tokio::select! {
                cmd = self.commands.recv() => match cmd {
                    Some(cmd) => {
                        self.handle(cmd).await;
                        for _ in 1..COMMAND_BATCH {
                            match self.commands.try_recv() {
                                Ok(cmd) => self.handle(cmd).await,
                                Err(_) => break,
                            }
                        }
                    }
                    // Every handle is gone: nobody can observe us any more.
                    None => Box::pin(self.shutdown()).await,
                },
                result = poll_connecting(&mut self.connecting) => {
                    self.connecting = None;
                    Box::pin(self.on_connect_result(result)).await;
                }
                frame = next_frame(&mut self.ws), if reading => self.on_frames(frame).await,
                _ = self.queue.space_available(), if self.ws.is_some() && !reading => {}
                () = timer.fired(), if wake.is_some() => Box::pin(self.on_timers()).await,
            }
            self.flush().await;
        }
    }

    async fn handle(&mut self, cmd: Command) {
        match cmd {
            Command::Connect => self.connect_now(),
            Command::Disconnect => {
                self.disconnect(Error::Closed("disconnected by the user".into()), None)
                    .await
            }
            Command::Shutdown => self.shutdown().await,
            Command::Join {
                channel,
                topic,
                params,
                state,
                timeout,
                waiter,
            } => {
                self.join(channel, topic, params, state, timeout, waiter)
                    .await
            }
            Command::Leave {
                channel,
                timeout,
                waiter,
            } => self.leave(channel, timeout, waiter).await,
            Command::Push(request) => self.push(request).await,
        }
    }

    /// Handles `first`, then the frames that are readable without waiting,
    /// waking the event consumers once for all of them.
    async fn on_frames(&mut self, first: Option<Result<WsMessage, WsError>>) {
        self.queue.hold();
        self.on_frame(first).await;
        for _ in 1..FRAME_BATCH {
            if self.queue.is_full() {
                break;
            }
            let Some(ws) = self.ws.as_mut() else { break };
            // Polling with a no-op waker is fine: `run` polls the stream again
            // with its own waker before it sleeps.
            match ws.next().now_or_never() {
                Some(frame) => self.on_frame(frame).await,
                None => break,
            }
        }
        self.queue.release();
    }

    fn make_ref(&mut self) -> String {
        self.next_ref = self.next_ref.wrapping_add(1);
        self.next_ref.to_string()
    }

    fn emit(&self, event: Event) {
        self.queue.push(event);
    }

    fn set_state(&self, state: ConnectionState) {
        self.shared.state.store(state as u8, Ordering::Release);
    }

    /// Queues a message on the websocket; a failure tears the connection down.
    async fn send(&mut self, msg: &Message) -> bool {
        let Some(ws) = self.ws.as_mut() else {
            return false;
        };
        let frame = match self.config.serializer.encode_client(msg) {
            Ok(codec::Frame::Text(text)) => WsMessage::text(text),
            Ok(codec::Frame::Binary(bytes)) => WsMessage::binary(bytes),
            Err(e) => {
                log::warn!("cannot encode a message on {}: {e}", msg.topic);
                return false;
            }
        };
        match ws.feed(frame).await {
            Ok(()) => {
                self.dirty = true;
                true
            }
            Err(e) => {
                self.connection_lost(Error::Connect(format!("write failed: {e}")))
                    .await;
                false
            }
        }
    }

    async fn flush(&mut self) {
        if !self.dirty {
            return;
        }
        self.dirty = false;
        if let Some(ws) = self.ws.as_mut() {
            if let Err(e) = ws.flush().await {
                self.connection_lost(Error::Connect(format!("write failed: {e}")))
                    .await;
            }
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        let hb = self
            .heartbeat
            .pending
            .as_ref()
            .map(|(_, at)| *at)
            .or(self.heartbeat.next_at);
        let push = self.deadlines.peek().map(|r| r.0 .0);
        let chan = self
            .channels
            .values()
            .filter_map(|ch| ch.next_deadline())
            .min();
        [hb, push, chan, self.reconnect_at]
            .into_iter()
            .flatten()
            .min()
    }

    async fn on_timers(&mut self) {
        let now = Instant::now();
        self.expire_pushes(now);
        self.channel_timers(now).await;
        self.heartbeat_timers(now).await;
        if self.reconnect_at.is_some_and(|at| at <= now) {
            self.reconnect_at = None;
            self.connect_now();
        }
    }

    async fn shutdown(&mut self) {
        self.disconnect(Error::Closed("socket closed".into()), None)
            .await;
        self.finalize();
    }

    /// Ends everything still pending so no waiter hangs and `Closed` is
    /// always the last event, also when the runtime stops under us.
    fn finalize(&mut self) {
        let closed = || Error::Closed("socket closed".into());
        // From here on handles get `Closed`; what is already queued still ends properly.
        self.commands.close();
        while let Ok(cmd) = self.commands.try_recv() {
            match cmd {
                Command::Push(req) => {
                    self.pushes.insert(req.push, PushRecord::unsent(req));
                }
                Command::Join {
                    waiter: Some(w), ..
                } => {
                    let _ = w.send(Err(JoinFailure::Closed(closed())));
                }
                _ => {}
            }
        }
        let ids: Vec<PushId> = self.pushes.keys().copied().collect();
        for id in ids {
            self.finish_push(id, PushOutcome::NotSent(closed()));
        }
        for (_, mut ch) in std::mem::take(&mut self.channels) {
            ch.mark_closed();
            ch.fail_waiters(JoinFailure::Closed(closed()));
        }
        self.set_state(ConnectionState::Closed);
        self.emit(Event::Closed);
        self.queue.close();
        self.exit = true;
    }
}

impl Drop for Actor {
    fn drop(&mut self) {
        // Cancelled by a runtime shutdown before it handled Shutdown.
        if !self.exit {
            self.ws = None;
            self.connecting = None;
            self.finalize();
        }
    }
}

async fn poll_connecting(connecting: &mut Option<Connecting>) -> Result<WsStream, ConnectFailure> {
    match connecting {
        Some(fut) => fut.await,
        None => std::future::pending().await,
    }
}

async fn next_frame(
    ws: &mut Option<WsStream>,
) -> Option<Result<WsMessage, tokio_tungstenite::tungstenite::Error>> {
    match ws {
        Some(ws) => ws.next().await,
        None => std::future::pending().await,
    }
}
