"""Type stubs of the compiled module ``nerves_hub_channel._native``.

Hand-written; ``tests/python/test_stubs.py`` checks them against the module
(mypy's stubtest, and the keyword defaults against the core's defaults).
"""

import os
from typing import Any, Callable, Dict, Literal, Mapping, Optional, Sequence, Tuple, Union, final, overload
from types import TracebackType

_Pem = Union[str, bytes, bytearray, os.PathLike[str]]
"""A path to a PEM file, or PEM data (``bytes``, or a ``str`` starting with ``-----BEGIN``)."""
_Pairs = Union[Mapping[str, str], Sequence[Tuple[str, str]]]
_ConnectionState = Literal["disconnected", "connecting", "connected", "closed"]
_ChannelState = Literal["joined", "join_failed", "errored", "closed"]

__all__ = [
    "__version__",
    "Socket",
    "Channel",
    "StateChange",
    "configure",
    "shutdown",
    "_defaults",
    "_atexit",
]
__version__: str

@final
class StateChange:
    """A change of a socket's connection, handed to its ``on_state`` callback."""

    @property
    def state(
        self,
    ) -> Literal["connecting", "connected", "disconnected", "closed", "auth_error", "protocol_error"]:
        """What happened."""
    @property
    def error(self) -> Optional[BaseException]:
        """Why (``disconnected``, ``auth_error``, ``protocol_error``): a ``nerves_hub_channel.Error``."""
    @property
    def reconnect_in(self) -> Optional[float]:
        """Seconds until the next connection attempt, or ``None`` if none is planned."""
    @property
    def attempt(self) -> int:
        """For ``connecting``: the attempt number, from 1 since the last success."""

@final
class Socket:
    """A Phoenix socket: one websocket connection carrying channels."""

    def __new__(
        cls,
        url: str,
        *,
        ca: Optional[_Pem] = None,
        cert: Optional[_Pem] = None,
        key: Optional[_Pem] = None,
        server_name: Optional[str] = None,
        headers: Optional[_Pairs] = None,
        params: Optional[_Pairs] = None,
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
        outbound_capacity: int = 1024,
        event_capacity: int = 1024,
        max_message_size: int = 8388608,
        read_buffer_size: int = 4096,
        on_state: Optional[Callable[[StateChange], object]] = None,
        delivery: Literal["threaded", "polled"] = "threaded",
    ) -> "Socket": ...
    def connect(self) -> None:
        """Starts connecting in the background."""
    def disconnect(self) -> None:
        """Closes the connection; channels rejoin on the next ``connect``."""
    def close(self, timeout: float = 5.0) -> None:
        """Closes the socket for good."""
    @property
    def state(self) -> _ConnectionState:
        """The connection state."""
    @property
    def delivery(self) -> Literal["threaded", "polled"]:
        """Where callbacks run."""
    def channel(self, topic: str, params: Any = None) -> "Channel":
        """A channel on ``topic``; ``params`` is a payload or a callable returning one."""
    def wait_connected(self, timeout: Optional[float] = None) -> None:
        """Blocks until connected; raises the error of a failed attempt."""
    def fileno(self) -> int:
        """Polled sockets: readable while events are pending."""
    def dispatch(self, timeout: float = 0.0, max_events: int = 64) -> int:
        """Polled sockets: runs the callbacks of pending events on this thread."""
    def __enter__(self) -> "Socket": ...
    def __exit__(
        self,
        exc_type: Optional[type] = None,
        exc: Optional[BaseException] = None,
        tb: Optional[TracebackType] = None,
    ) -> None: ...

@final
class Channel:
    """A channel on one topic of a socket."""

    @property
    def topic(self) -> str:
        """The channel's topic."""
    @property
    def state(self) -> str:
        """The connection task's view of the channel: ``"closed"``,
        ``"joining"``, ``"joined"``, ``"errored"`` or ``"leaving"``."""
    @property
    def joined(self) -> bool:
        """Whether the channel is joined, as far as delivered events tell."""
    def join(self, timeout: Optional[float] = None) -> Any:
        """Joins and returns the server's response; raises ``JoinError``."""
    def leave(self) -> None:
        """Leaves the channel."""
    def push(self, event: str, payload: Any = None, timeout: Optional[float] = None) -> Any:
        """Pushes and returns the reply's response; raises ``PushError``, ``PushTimeout``..."""
    def cast(self, event: str, payload: Any = None, timeout: Optional[float] = None) -> None:
        """Pushes without waiting for a reply."""
    @overload
    def on(self, event: Literal["*"], handler: Callable[[str, Any], object]) -> None: ...
    @overload
    def on(self, event: str, handler: Callable[[Any], object]) -> None: ...
    def off(self, event: str, handler: Optional[Callable[..., object]] = None) -> int:
        """Removes handlers of ``event``; returns how many."""
    def on_state(self, handler: Optional[Callable[[_ChannelState, Any], object]]) -> None:
        """Sets the channel state handler."""
    def join_nowait(
        self, callback: Callable[[bool, Any], object], timeout: Optional[float] = None
    ) -> None:
        """Starts a join; ``callback(ok, value)`` gets the outcome."""
    def leave_nowait(self, callback: Callable[[bool, Any], object]) -> None:
        """Starts a leave; ``callback(True, None)`` once closed."""
    def push_nowait(
        self,
        event: str,
        payload: Any,
        callback: Callable[[bool, Any], object],
        timeout: Optional[float] = None,
    ) -> int:
        """Pushes; ``callback(ok, value)`` gets the outcome. Returns the push id."""

def configure(worker_threads: int) -> None:
    """Sets the number of I/O threads (before the first socket)."""

def shutdown() -> None:
    """Closes every socket and stops the library's I/O threads."""

def _defaults() -> Dict[str, Any]: ...
def _atexit() -> None: ...
