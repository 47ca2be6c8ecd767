"""The asyncio API: :class:`AsyncSocket`, :class:`AsyncChannel` and the
NervesHub :class:`AsyncDevice`.

Built on a socket in polled mode: its descriptor is watched with
``loop.add_reader`` and its events are dispatched on the event loop's own
thread, where they complete futures (joins, leaves, pushes) and feed the
channels' message queues. No thread is started per operation.
"""

import asyncio
import collections
import functools
import os
from typing import (
    Any,
    AsyncIterator,
    Callable,
    Deque,
    List,
    Literal,
    Mapping,
    NamedTuple,
    Optional,
    Sequence,
    Tuple,
    Union,
)

from . import _native
from ._aio_device import AsyncDevice
from ._aio_handle import _AsyncHandle
from ._errors import ClosedError, JoinError

__all__ = ["AsyncSocket", "AsyncChannel", "AsyncDevice", "Message"]

Pem = Union[str, bytes, "os.PathLike[str]"]
Pairs = Union[Mapping[str, str], Sequence[Tuple[str, str]]]


class Message(NamedTuple):
    """A message the server sent on a channel."""

    event: str
    """The event name, e.g. ``"update"``."""
    payload: Any
    """The decoded JSON payload, or ``bytes`` for a binary frame."""
    topic: str
    """The channel's topic."""


def _settle(fut: "asyncio.Future[Any]", ok: bool, value: Any) -> None:
    # The awaiting task may have given up (cancelled, timed out) already.
    if fut.done():
        return
    if ok:
        fut.set_result(value)
    else:
        fut.set_exception(value)


class AsyncSocket(_AsyncHandle[_native.Socket]):
    """A Phoenix socket for asyncio: one websocket connection (re-made after
    failures) carrying any number of :class:`AsyncChannel`.

    The arguments are those of :class:`nerves_hub_channel.Socket`;
    ``on_state(change)`` runs on the event loop. Use it as
    ``async with AsyncSocket(url, ...) as sock:`` (which connects and, on
    exit, closes), or call :meth:`connect` and :meth:`close` from a coroutine.
    """

    _noun = "socket"

    def __init__(
        self,
        url: str,
        *,
        ca: Optional[Pem] = None,
        cert: Optional[Pem] = None,
        key: Optional[Pem] = None,
        server_name: Optional[str] = None,
        headers: Optional[Pairs] = None,
        params: Optional[Pairs] = None,
        connect_timeout: float = 15.0,
        heartbeat_interval: float = 30.0,
        heartbeat_timeout: float = 30.0,
        timeout: float = 10.0,
        rejoin_after: float = 5.0,
        rejoin_after_close: bool = False,
        reconnect: bool = True,
        backoff_initial: float = 1.0,
        backoff_max: float = 60.0,
        backoff_jitter: float = 0.5,
        stable_after: float = 120.0,
        outbound_capacity: int = 1024,
        event_capacity: int = 1024,
        max_message_size: int = 8388608,
        read_buffer_size: int = 4096,
        on_state: Optional[Callable[[_native.StateChange], object]] = None,
        serializer: Literal["json", "msgpack"] = "json",
        proxy: Optional[str] = None,
        no_proxy: Optional[str] = None,
        proxy_from_env: bool = True,
    ) -> None:
        super().__init__(_native.Socket, locals())
        self._timeout = timeout
        self._channels: List["AsyncChannel"] = []

    def _backlogged(self) -> bool:
        return any(c._full() for c in self._channels)

    def _ended(self) -> None:
        for chan in self._channels:
            chan._end()

    def channel(self, topic: str, params: Any = None, *, max_pending: int = 1024) -> "AsyncChannel":
        """A channel on ``topic``; nothing is sent until :meth:`AsyncChannel.join`.

        ``params`` is the join payload, or a callable returning it, called
        again before every rejoin (on a library thread, so it must not
        touch the event loop). Up to ``max_pending`` received messages wait
        for :meth:`AsyncChannel.receive`; beyond that the socket stops
        reading until the channel is consumed."""
        if max_pending < 1:
            raise ValueError("max_pending must be at least 1")
        chan = AsyncChannel(self, self._native.channel(topic, params), max_pending)
        self._channels.append(chan)
        return chan



class AsyncChannel:
    """A channel of an :class:`AsyncSocket`, made by :meth:`AsyncSocket.channel`.

    Once joined it stays joined (rejoining after errors and reconnects)
    until :meth:`leave`. Iterate it to receive the server's messages::

        async for message in channel:
            print(message.event, message.payload)

    Iteration ends when the channel is closed (left, or closed by the
    server) or the socket is closed.
    """

    def __init__(self, socket: AsyncSocket, native: _native.Channel, max_pending: int) -> None:
        self._socket = socket
        self._native = native
        self._max_pending = max_pending
        self._messages: Deque[Message] = collections.deque()
        self._readers: Deque["asyncio.Future[None]"] = collections.deque()
        self._ended = False
        native.on("*", self._on_message)
        native.on_state(self._on_state)

    def _full(self) -> bool:
        return len(self._messages) >= self._max_pending

    def _on_message(self, event: str, payload: Any) -> None:
        self._messages.append(Message(event, payload, self._native.topic))
        self._wake_reader()

    def _on_state(self, state: str, detail: Any) -> None:
        if state == "closed":
            self._end()

    def _end(self) -> None:
        self._ended = True
        while self._readers:
            self._wake_reader()

    def _wake_reader(self) -> None:
        while self._readers:
            fut = self._readers.popleft()
            if not fut.done():
                fut.set_result(None)
                return

    @property
    def topic(self) -> str:
        """The channel's topic."""
        return self._native.topic

    @property
    def state(self) -> str:
        """``"closed"``, ``"joining"``, ``"joined"``, ``"errored"`` or ``"leaving"``."""
        return self._native.state

    @property
    def joined(self) -> bool:
        """Whether the channel is joined, as far as delivered events tell."""
        return self._native.joined

    async def join(self, timeout: Optional[float] = None) -> Any:
        """Joins and returns the server's response. Raises
        :class:`JoinError` (``reason`` ``"refused"`` with the server's
        ``response``, or ``"timeout"`` after ``timeout`` seconds, default
        the socket's ``timeout``; the last connection error is then the
        ``__cause__``), or :class:`ClosedError`. After a failure the channel
        keeps trying in the background until :meth:`leave`."""
        loop = self._socket._attach()
        fut: "asyncio.Future[Any]" = loop.create_future()
        self._ended = False
        wait = self._socket._timeout if timeout is None else timeout
        self._native.join_nowait(functools.partial(_settle, fut), timeout)
        try:
            return await asyncio.wait_for(fut, wait)
        except asyncio.TimeoutError:
            last = self._socket._last_error if self._socket.state != "connected" else None
            detail = f"; the socket is not connected (last error: {last})" if last else ""
            raise JoinError(
                f"{self.topic} was not joined within {wait} s{detail}", reason="timeout"
            ) from last

    async def leave(self) -> None:
        """Leaves the channel; returns once the server confirmed or the
        socket's ``timeout`` passed (at once if the channel is not joined)."""
        loop = self._socket._attach()
        fut: "asyncio.Future[None]" = loop.create_future()
        self._native.leave_nowait(functools.partial(_settle, fut))
        await fut

    async def push(self, event: str, payload: Any = None, timeout: Optional[float] = None) -> Any:
        """Pushes ``event`` with ``payload`` (JSON-serialisable, or ``bytes``)
        and returns the reply's response. Raises :class:`PushError`
        (error reply), :class:`PushTimeout`, :class:`BufferFull`,
        :class:`ClosedError` or :class:`InvalidArgument`."""
        loop = self._socket._attach()
        fut: "asyncio.Future[Any]" = loop.create_future()
        self._native.push_nowait(event, payload, functools.partial(_settle, fut), timeout)
        return await fut

    def cast(self, event: str, payload: Any = None, timeout: Optional[float] = None) -> None:
        """Sends ``event`` without waiting for a reply; a push that cannot be
        sent within ``timeout`` seconds is reported in the log."""
        self._native.cast(event, payload, timeout)

    async def receive(self) -> Message:
        """The next message from the server. Raises :class:`ClosedError`
        once the channel or the socket is closed and no message is left."""
        loop = self._socket._attach()
        while not self._messages:
            if self._ended:
                raise ClosedError(f"channel {self.topic} is closed")
            fut: "asyncio.Future[None]" = loop.create_future()
            self._readers.append(fut)
            try:
                await fut
            finally:
                if not fut.done():
                    fut.cancel()
        message = self._messages.popleft()
        self._socket._resume()
        return message

    def __aiter__(self) -> AsyncIterator[Message]:
        return self

    async def __anext__(self) -> Message:
        try:
            return await self.receive()
        except ClosedError:
            raise StopAsyncIteration from None

    def __repr__(self) -> str:
        return f"<AsyncChannel {self.topic} joined={self.joined}>"
