//! The channel handle: join, leave, push.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::sync::oneshot;

use crate::actor::{Command, JoinParams, PushRequest, ReplyTo};
use crate::error::{Error, Result};
use crate::event::{ChannelId, JoinFailure, PushId, PushOutcome};
use crate::message::Payload;
use crate::socket::Socket;

/// Where a channel is in its life, as seen by the connection task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ChannelState {
    /// Not joined: never joined, left, or closed by the server.
    Closed = 0,
    Joining = 1,
    Joined = 2,
    /// Wants to be joined: waits for a connection or its rejoin timer.
    Errored = 3,
    Leaving = 4,
}

impl ChannelState {
    pub(crate) fn from_u8(value: u8) -> ChannelState {
        match value {
            1 => ChannelState::Joining,
            2 => ChannelState::Joined,
            3 => ChannelState::Errored,
            4 => ChannelState::Leaving,
            _ => ChannelState::Closed,
        }
    }
}

/// The state cell shared by a channel's handles and the connection task.
pub(crate) type StateCell = Arc<AtomicU8>;

/// A channel on one topic of a socket. Cheap to clone.
#[derive(Clone)]
pub struct Channel {
    socket: Socket,
    id: ChannelId,
    topic: String,
    params: JoinParams,
    state: StateCell,
}

impl Channel {
    pub(crate) fn new(socket: Socket, id: ChannelId, topic: String, params: JoinParams) -> Channel {
        Channel {
            socket,
            id,
            topic,
            params,
            state: Arc::new(AtomicU8::new(ChannelState::Closed as u8)),
        }
    }

    /// The current state (it may change right after this returns).
    pub fn state(&self) -> ChannelState {
        ChannelState::from_u8(self.state.load(Ordering::Acquire))
    }

    pub fn id(&self) -> ChannelId {
        self.id
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }

    pub fn socket(&self) -> &Socket {
        &self.socket
    }

    /// Joins (with the socket's default timeout). The channel then stays
    /// joined: it rejoins after errors and reconnects until `leave`. The
    /// returned future resolves with the first join's outcome; it may be
    /// dropped, the outcome is also an event.
    pub fn join(&self) -> Result<Reply<std::result::Result<Payload, JoinFailure>>> {
        self.join_with_timeout(self.socket.inner.default_timeout)
    }

    pub fn join_with_timeout(
        &self,
        timeout: Duration,
    ) -> Result<Reply<std::result::Result<Payload, JoinFailure>>> {
        let (tx, rx) = oneshot::channel();
        self.socket.command(Command::Join {
            channel: self.id,
            topic: self.topic.clone(),
            params: self.params.clone(),
            state: self.state.clone(),
            timeout,
            waiter: Some(tx),
        })?;
        Ok(Reply { rx })
    }

    /// Leaves the channel; resolves once the server confirmed or the timeout passed.
    pub fn leave(&self) -> Result<Reply<()>> {
        let (tx, rx) = oneshot::channel();
        self.socket.command(Command::Leave {
            channel: self.id,
            timeout: self.socket.inner.default_timeout,
            waiter: Some(tx),
        })?;
        Ok(Reply { rx })
    }

    /// Pushes an event and resolves with its outcome (reply, error, timeout
    /// or not sent). Before the join and while disconnected the push waits in
    /// a bounded buffer until its timeout; a full buffer is an immediate error.
    pub fn push(&self, event: &str, payload: Payload) -> Result<Reply<PushOutcome>> {
        self.push_with_timeout(event, payload, self.socket.inner.default_timeout)
    }

    pub fn push_with_timeout(
        &self,
        event: &str,
        payload: Payload,
        timeout: Duration,
    ) -> Result<Reply<PushOutcome>> {
        let (tx, rx) = oneshot::channel();
        self.send_push(event, payload, timeout, ReplyTo::Future(tx))?;
        Ok(Reply { rx })
    }

    /// Pushes an event whose outcome arrives as `Event::Reply` in the socket's
    /// event stream, in order with everything else.
    pub fn push_tracked(&self, event: &str, payload: Payload, timeout: Duration) -> Result<PushId> {
        self.send_push(event, payload, timeout, ReplyTo::Event)
    }

    /// Fire-and-forget: no reply is awaited. If the push cannot be sent before
    /// `timeout`, an `Event::Reply` with the failure is emitted.
    pub fn cast(&self, event: &str, payload: Payload, timeout: Duration) -> Result<PushId> {
        self.send_push(event, payload, timeout, ReplyTo::Cast)
    }

    fn send_push(
        &self,
        event: &str,
        payload: Payload,
        timeout: Duration,
        reply: ReplyTo,
    ) -> Result<PushId> {
        if event.is_empty() {
            return Err(Error::InvalidArgument("event must not be empty".into()));
        }
        if timeout.is_zero() {
            return Err(Error::InvalidArgument(
                "timeout must be greater than zero".into(),
            ));
        }
        self.socket.reserve_outbound()?;
        let push = self.socket.next_push_id();
        let request = PushRequest {
            channel: self.id,
            push,
            event: event.to_owned(),
            payload,
            timeout,
            reply,
        };
        if let Err(e) = self.socket.command(Command::Push(request)) {
            self.socket.release_outbound();
            return Err(e);
        }
        Ok(push)
    }
}

/// The future outcome of a join, leave or push.
pub struct Reply<T> {
    rx: oneshot::Receiver<T>,
}

impl<T> Reply<T> {
    /// Blocks the current thread until the outcome (not from async code).
    pub fn wait(self) -> Result<T> {
        self.rx
            .blocking_recv()
            .map_err(|_| Error::Closed("the socket closed before answering".into()))
    }
}

impl<T> Future for Reply<T> {
    type Output = Result<T>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<T>> {
        Pin::new(&mut self.rx)
            .poll(cx)
            .map_err(|_| Error::Closed("the socket closed before answering".into()))
    }
}
