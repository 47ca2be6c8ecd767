"""What :class:`~nerves_hub_channel.aio.AsyncSocket` and
:class:`~nerves_hub_channel.aio.AsyncDevice` share, written once.

A native handle (``Socket`` or ``Device``, both ``_native._Handle``) in
polled mode: its descriptor is watched with ``loop.add_reader`` and its
events are dispatched on the event loop's own thread. This class makes the
native handle from the subclass constructor's arguments and owns that
plumbing, the connection state (``connect``, ``wait_connected``,
``close``) and back-pressure; a subclass lists its keyword arguments (its
options), adds its own events and says when its consumers lag
(:meth:`_AsyncHandle._backlogged`), which waiters a close fails
(:meth:`_AsyncHandle._waiter_lists`) and what else ends
(:meth:`_AsyncHandle._ended`). A third handle kind is one more subclass.
"""

import asyncio
import types
from typing import Any, Callable, Dict, Generic, List, Optional, Type, TypeVar

from . import _native
from ._errors import ClosedError, ConnectError, Error

_H = TypeVar("_H", bound="_AsyncHandle[Any]")
# The native class: `_native.Socket`, `_native.Device` (any `_native._Handle`).
_N = TypeVar("_N", bound=_native._Handle)


def _settle_error(fut: "asyncio.Future[Any]", error: Optional[BaseException], value: Any = None) -> None:
    # The awaiting task may have given up (cancelled, timed out) already.
    if fut.done():
        return
    if error is None:
        fut.set_result(value)
    else:
        fut.set_exception(error)


def _wake(waiters: "List[asyncio.Future[Any]]", error: Optional[BaseException], value: Any = None) -> None:
    pending = list(waiters)
    waiters.clear()
    for fut in pending:
        _settle_error(fut, error, value)


class _AsyncHandle(Generic[_N]):
    """The asyncio side of one polled native handle (see the module)."""

    _noun = "handle"

    def __init__(self, native_class: Callable[..., _N], arguments: Dict[str, Any]) -> None:
        """Makes the native handle, in polled delivery, from ``arguments``:
        the subclass constructor's ``locals()`` (``url`` and the keyword
        arguments it shares with ``native_class``, nothing else). Its
        ``on_state`` runs after this class's own handler."""
        options = {k: v for k, v in arguments.items() if k not in ("self", "__class__")}
        self._user_on_state: Optional[Callable[[_native.StateChange], object]] = options.pop(
            "on_state"
        )
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._fd = -1
        self._reading = False
        self._closed = False
        self._close_waiters: "List[asyncio.Future[Any]]" = []
        self._connect_waiters: "List[asyncio.Future[Any]]" = []
        # The failure of the latest attempt since connect(), kept for the
        # next wait_connected, which raises it once.
        self._outcome: Optional[BaseException] = None
        self._attempting = False
        self._last_error: Optional[BaseException] = None
        # Polled: no callback runs before the first dispatch on the loop.
        self._native: _N = native_class(**options, on_state=self._on_state, delivery="polled")

    # -- what a subclass says ------------------------------------------------

    def _backlogged(self) -> bool:
        """A consumer lags: stop reading (back-pressure)."""
        return False

    def _waiter_lists(self) -> "List[List[asyncio.Future[Any]]]":
        """Waiters that fail with ClosedError when the handle closes."""
        return []

    def _dropped(self) -> None:
        """The connection dropped or an attempt failed."""

    def _ended(self) -> None:
        """The handle closed (after the waiters were woken)."""

    # -- event loop plumbing -------------------------------------------------

    def _attach(self) -> asyncio.AbstractEventLoop:
        loop = asyncio.get_running_loop()
        if self._loop is None:
            self._loop = loop
            self._fd = self._native.fileno()
        elif self._loop is not loop:
            raise Error(f"this {type(self).__name__} is used by another event loop")
        self._resume()
        return loop

    def _resume(self) -> None:
        if not self._reading and self._loop is not None and not self._stalled():
            self._loop.add_reader(self._fd, self._on_readable)
            self._reading = True

    def _pause(self) -> None:
        if self._reading and self._loop is not None:
            self._loop.remove_reader(self._fd)
            self._reading = False

    def _stalled(self) -> bool:
        # A consumer that lags stops the handle from reading (back-pressure)
        # instead of letting its queue grow without limit; closing drains.
        return not self._closed and self._backlogged()

    def _on_readable(self) -> None:
        if self._stalled():
            self._pause()
            return
        self._native.dispatch(0.0, 64)

    def _closed_error(self) -> ClosedError:
        return ClosedError(f"the {self._noun} is closed")

    def _on_state(self, change: _native.StateChange) -> None:
        state = change.state
        if state == "connecting":
            self._attempting = True
        elif state == "connected":
            self._attempting = False
            self._outcome = None
            self._last_error = None
            _wake(self._connect_waiters, None)
        elif state in ("disconnected", "auth_error") and change.error is not None:
            self._last_error = change.error
            self._dropped()
            # Only the end of an attempt is an outcome: a connection that
            # drops later (or a user's disconnect) is not one.
            if self._attempting:
                self._attempting = False
                if self._connect_waiters:
                    _wake(self._connect_waiters, change.error)
                else:
                    self._outcome = change.error
        elif state == "closed":
            self._closed = True
            err = self._closed_error()
            for waiters in [self._connect_waiters, *self._waiter_lists()]:
                _wake(waiters, err)
            _wake(self._close_waiters, None)
            self._ended()
            self._pause()
        if self._user_on_state is not None:
            self._user_on_state(change)

    # -- connection ----------------------------------------------------------

    async def __aenter__(self: _H) -> _H:
        self.connect()
        return self

    async def __aexit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[types.TracebackType],
    ) -> None:
        await self.close()

    @property
    def state(self) -> str:
        """``"disconnected"``, ``"connecting"``, ``"connected"`` or ``"closed"``."""
        state: str = self._native.state
        return state

    def connect(self) -> None:
        """Starts connecting in the background (call it from the event
        loop's thread); it then reconnects after failures until
        :meth:`disconnect` or :meth:`close`."""
        self._attach()
        self._outcome = None
        self._native.connect()

    def disconnect(self) -> None:
        """Closes the connection; :meth:`connect` resumes."""
        self._native.disconnect()

    async def wait_connected(self, timeout: Optional[float] = None) -> None:
        """Waits until connected. Raises the error of a connection attempt
        that failed since :meth:`connect` (:class:`TlsError`,
        :class:`AuthError`, :class:`ConnectError`...), :class:`ConnectError`
        if ``timeout`` seconds pass first, or :class:`ClosedError`. The
        connection keeps retrying either way."""
        loop = self._attach()
        if self._native.state == "connected":
            return
        if self._closed:
            raise self._closed_error()
        if self._outcome is not None:
            # Raised once: a retry loop then waits for the next attempt.
            failed, self._outcome = self._outcome, None
            raise failed
        fut: "asyncio.Future[Any]" = loop.create_future()
        self._connect_waiters.append(fut)
        try:
            await asyncio.wait_for(fut, timeout)
        except asyncio.TimeoutError:
            last = self._last_error
            detail = f" (last error: {last})" if last is not None else ""
            raise ConnectError(f"not connected within {timeout} s{detail}") from last

    async def close(self, timeout: float = 5.0) -> None:
        """Closes for good and waits (at most ``timeout`` seconds) until the
        connection is closed."""
        self._native.close()
        if self._closed:
            return
        loop = self._attach()
        fut: "asyncio.Future[Any]" = loop.create_future()
        self._close_waiters.append(fut)
        try:
            await asyncio.wait_for(fut, timeout)
        except asyncio.TimeoutError:
            pass
        finally:
            self._pause()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._native!r}>"
