//! The socket handle: configuration, connection control and the event stream.

use std::os::fd::RawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use crate::actor::{Actor, Command, ConnectionState, JoinParams, Shared};
use crate::channel::Channel;
use crate::config::SocketConfig;
use crate::error::{Error, Result};
use crate::event::{ChannelId, Event, PushId};
use crate::pull::Puller;
use crate::queue::{EventQueue, Handler};
use crate::runtime::{self, Closable};
use crate::tls::TlsClient;

/// A Phoenix socket: one websocket connection (re-made as needed) carrying
/// any number of channels. Cheap to clone; every clone is the same socket.
/// All methods may be called from any thread, including from event handlers.
#[derive(Clone)]
pub struct Socket {
    pub(crate) inner: Arc<SocketInner>,
}

pub(crate) struct SocketInner {
    commands: mpsc::UnboundedSender<Command>,
    pub(crate) queue: Arc<EventQueue>,
    pub(crate) shared: Arc<Shared>,
    next_channel: AtomicU64,
    next_push: AtomicU64,
    pub(crate) default_timeout: Duration,
    outbound_capacity: usize,
}

impl Closable for SocketInner {
    fn close_now(&self) {
        let _ = self.commands.send(Command::Shutdown);
    }
}

impl Drop for SocketInner {
    fn drop(&mut self) {
        let _ = self.commands.send(Command::Shutdown);
    }
}

impl Socket {
    /// Validates the configuration (URL, headers, certificates and keys) and
    /// prepares the socket. Nothing is sent until `connect`.
    pub fn new(config: SocketConfig) -> Result<Socket> {
        config.validate()?;
        let url = config.endpoint_url()?;
        let tls = if url.scheme() == "wss" {
            Some(TlsClient::new(&config.tls)?)
        } else {
            None
        };
        let handle = runtime::handle()?;
        let (tx, rx) = mpsc::unbounded_channel();
        let queue = EventQueue::new(config.event_capacity);
        let shared = Arc::new(Shared::new());
        let inner = Arc::new(SocketInner {
            commands: tx,
            queue: queue.clone(),
            shared: shared.clone(),
            next_channel: AtomicU64::new(1),
            next_push: AtomicU64::new(1),
            default_timeout: config.default_timeout,
            outbound_capacity: config.outbound_capacity,
        });
        runtime::register(runtime::closable(&inner));
        let actor = Actor::new(config, url, tls, rx, queue, shared);
        handle.spawn(actor.run());
        Ok(Socket { inner })
    }

    pub(crate) fn command(&self, cmd: Command) -> Result<()> {
        runtime::ensure_not_forked()?;
        self.inner
            .commands
            .send(cmd)
            .map_err(|_| Error::Closed("the socket is closed".into()))
    }

    /// Starts connecting (and reconnecting after failures) in the background.
    pub fn connect(&self) -> Result<()> {
        self.command(Command::Connect)
    }

    /// Closes the connection; channels stay and rejoin on the next `connect`.
    pub fn disconnect(&self) -> Result<()> {
        self.command(Command::Disconnect)
    }

    /// Closes the socket for good: pending pushes end as not sent, then
    /// `Event::Closed` is the last event.
    pub fn close(&self) {
        let _ = self.inner.commands.send(Command::Shutdown);
    }

    /// After `close`: waits up to `timeout` until the connection task has
    /// ended and dropped everything it held, the TLS client key among it (a
    /// PKCS#11 session, a signing callback). Whether it ended. On one of the
    /// library's I/O threads it does not wait (the task may be its own); on
    /// an application's tokio runtime it does, since the task never runs
    /// there.
    pub fn wait_closed(&self, timeout: Duration) -> bool {
        let finished = &self.inner.shared.finished;
        if runtime::ensure_not_forked().is_err() || runtime::on_io_thread() {
            return finished.wait(Duration::ZERO);
        }
        finished.wait(timeout)
    }

    pub fn state(&self) -> ConnectionState {
        self.inner.shared.state()
    }

    /// Our end of the current connection (the last one while
    /// disconnected), `None` before the first.
    pub fn local_addr(&self) -> Option<std::net::SocketAddr> {
        self.inner.shared.local_addr()
    }

    /// A channel on `topic`; nothing is sent until `Channel::join`.
    pub fn channel(&self, topic: &str, params: JoinParams) -> Result<Channel> {
        if topic.is_empty() {
            return Err(Error::InvalidArgument("topic must not be empty".into()));
        }
        let id: ChannelId = self.inner.next_channel.fetch_add(1, Ordering::Relaxed);
        Ok(Channel::new(self.clone(), id, topic.to_owned(), params))
    }

    pub(crate) fn next_push_id(&self) -> PushId {
        self.inner.next_push.fetch_add(1, Ordering::Relaxed)
    }

    /// Reserves room for one push in the bounded outbound buffer.
    pub(crate) fn reserve_outbound(&self) -> Result<()> {
        let outbound = &self.inner.shared.outbound;
        let capacity = self.inner.outbound_capacity;
        outbound
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < capacity).then_some(n + 1)
            })
            .map(|_| ())
            .map_err(|_| {
                Error::BufferFull(format!(
                    "{capacity} pushes are already waiting to be sent (outbound_capacity)"
                ))
            })
    }

    pub(crate) fn release_outbound(&self) {
        self.inner.shared.outbound.fetch_sub(1, Ordering::AcqRel);
    }

    /// The next event; `None` once the socket is closed and drained.
    pub async fn next_event(&self) -> Option<Event> {
        self.inner.queue.pop_async().await
    }

    /// Waits up to `timeout` for the next event.
    pub fn recv_timeout(&self, timeout: Duration) -> Option<Event> {
        self.inner.queue.pop_timeout(timeout)
    }

    pub fn try_recv(&self) -> Option<Event> {
        self.inner.queue.try_pop()
    }

    /// A file descriptor that is readable while events are pending (polled
    /// mode, for poll/select/epoll loops). Owned by the socket.
    pub fn event_fd(&self) -> Result<RawFd> {
        self.inner
            .queue
            .fd()
            .map_err(|e| Error::Connect(format!("cannot create the event descriptor: {e}")))
    }

    /// Threaded mode: `handler` is called with every event, in order, on the
    /// library's dispatcher thread. `None` removes it; a handler removed from
    /// inside its own call is dropped after that call returns.
    pub fn set_handler(&self, handler: Option<Handler>) {
        self.inner.queue.set_handler(handler);
    }

    /// Inline mode: `handler` is called with every event, in order, on the
    /// socket's I/O thread, as the connection task reads it. It skips the
    /// hand-off to the dispatcher thread (a wake-up and a context switch per
    /// message), which is most of a small message's cost. The contract:
    /// - the handler must not block: while it runs, no socket on that I/O
    ///   thread reads, writes or heartbeats;
    /// - it may push, join and leave (they are queued for the connection
    ///   task and sent once the handler returns), close the socket, and
    ///   replace or remove itself; it must not wait for a `Reply` (its
    ///   answer could only come once the handler returned; `Reply::wait`
    ///   panics on an I/O thread): use `push_tracked` and take the reply
    ///   as an event;
    /// - a panic is caught and logged; the event is dropped.
    ///
    /// Events queued before it is installed go through the dispatcher
    /// thread. `set_handler(None)` removes it.
    pub fn set_inline_handler(&self, handler: Handler) {
        self.inner.queue.set_inline_handler(handler);
    }

    /// Pulled mode (see [`Puller`]): a consumer on a thread of its own takes
    /// the events, told by `puller` when there are some. Instead of a
    /// handler, installed once; refused if a handler or puller is in place.
    pub fn set_pull(&self, puller: Arc<dyn Puller<Event>>) -> Result<()> {
        self.inner.queue.set_pull(puller)
    }
}
