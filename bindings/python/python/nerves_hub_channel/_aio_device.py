"""The asyncio NervesHub device: :class:`AsyncDevice` (exported by ``aio``).

Built like :class:`~nerves_hub_channel.aio.AsyncSocket`: a native
:class:`~nerves_hub_channel.Device` in polled mode whose descriptor is
watched with ``loop.add_reader``; its events are dispatched on the event
loop's own thread, where they complete futures and feed the event queue.
"""

import asyncio
import collections
import os
from typing import (
    Any,
    AsyncIterator,
    Callable,
    Deque,
    List,
    Mapping,
    Optional,
    Sequence,
    Tuple,
    Union,
)

from . import _native
from ._aio_handle import _AsyncHandle, _settle_error, _wake
from ._device import ChannelEvent, DeviceEvent, SharedSecret, UpdateFinished, UpdateInfo
from ._errors import ClosedError, JoinError, UpdateError

__all__ = ["AsyncDevice"]

Pem = Union[str, bytes, "os.PathLike[str]"]
Pairs = Union[Mapping[str, str], Sequence[Tuple[str, str]]]
Secret = Union[SharedSecret, Tuple[str, str, str], Tuple[str, str, str, str], None]


class AsyncDevice(_AsyncHandle[_native.Device]):
    """A NervesHub device for asyncio. The arguments are those of
    :class:`nerves_hub_channel.Device` (no ``delivery``); ``on_state(change)``
    runs on the event loop. Use it as ``async with AsyncDevice(url, ...) as
    device:`` (which connects and, on exit, closes) and iterate it::

        async for event in device:
            if event.kind == "update":
                await device.apply_update(event, path="/data/next.fw")

    Up to ``max_pending`` events wait for the consumer; beyond that the
    device stops reading from the network until they are consumed, so
    iterate the device (or :meth:`receive`) while it runs.
    """

    _noun = "device"

    def __init__(
        self,
        url: str,
        *,
        ca: Optional[Pem] = None,
        cert: Optional[Pem] = None,
        key: Optional[Pem] = None,
        server_name: Optional[str] = None,
        shared_secret: Secret = None,
        clock_offset: int = 0,
        device_api_version: str = "2.3.0",
        metadata: Optional[Mapping[str, str]] = None,
        fwup_env_path: Union[str, "os.PathLike[str]", None] = None,
        fwup_version: Optional[str] = None,
        update_tool: str = "fwup",
        request_fwup_public_keys: bool = False,
        request_archive_public_keys: bool = False,
        firmware_validated: Optional[Callable[[], Optional[bool]]] = None,
        validation_poll_interval: float = 10.0,
        scripts: bool = False,
        console: bool = False,
        console_shell: Optional[Sequence[str]] = None,
        console_shell_timeout: float = 300.0,
        console_shell_env: Optional[Mapping[str, str]] = None,
        console_decline_file_uploads: bool = True,
        extensions: Optional[Mapping[str, Any]] = None,
        report_timeout: float = 60.0,
        auto_update: Optional[Mapping[str, Any]] = None,
        fwup_public_keys: Optional[Sequence[str]] = None,
        require_fwup_public_keys: bool = False,
        allow_unverified_firmware: bool = False,
        uboot_env_path: Union[str, "os.PathLike[str]", None] = None,
        uboot_env_size: Optional[int] = None,
        uboot_env_redundant: bool = False,
        headers: Optional[Pairs] = None,
        params: Optional[Pairs] = None,
        connect_timeout: float = 15.0,
        heartbeat_interval: float = 30.0,
        heartbeat_timeout: float = 30.0,
        timeout: float = 10.0,
        rejoin_after: float = 5.0,
        reconnect: bool = True,
        backoff_initial: float = 1.0,
        backoff_max: float = 60.0,
        backoff_jitter: float = 0.5,
        stable_after: float = 120.0,
        event_capacity: int = 1024,
        on_state: Optional[Callable[[_native.StateChange], object]] = None,
        max_pending: int = 1024,
        device_rejoin_after_close: float = 5.0,
        console_upload_dir: Union[str, "os.PathLike[str]", None] = None,
        console_max_upload_size: Optional[int] = None,
    ) -> None:
        if max_pending < 1:
            raise ValueError("max_pending must be at least 1")
        native = _native.Device(
            url,
            ca=ca,
            cert=cert,
            key=key,
            server_name=server_name,
            shared_secret=shared_secret,
            clock_offset=clock_offset,
            device_api_version=device_api_version,
            metadata=metadata,
            fwup_env_path=fwup_env_path,
            fwup_version=fwup_version,
            update_tool=update_tool,
            request_fwup_public_keys=request_fwup_public_keys,
            request_archive_public_keys=request_archive_public_keys,
            firmware_validated=firmware_validated,
            validation_poll_interval=validation_poll_interval,
            scripts=scripts,
            console=console,
            console_shell=console_shell,
            console_shell_timeout=console_shell_timeout,
            console_shell_env=console_shell_env,
            console_decline_file_uploads=console_decline_file_uploads,
            extensions=dict(extensions) if extensions is not None else None,  # type: ignore[arg-type]
            report_timeout=report_timeout,
            auto_update=dict(auto_update) if auto_update is not None else None,
            fwup_public_keys=fwup_public_keys,
            require_fwup_public_keys=require_fwup_public_keys,
            allow_unverified_firmware=allow_unverified_firmware,
            uboot_env_path=uboot_env_path,
            uboot_env_size=uboot_env_size,
            uboot_env_redundant=uboot_env_redundant,
            headers=headers,
            params=params,
            connect_timeout=connect_timeout,
            heartbeat_interval=heartbeat_interval,
            heartbeat_timeout=heartbeat_timeout,
            timeout=timeout,
            rejoin_after=rejoin_after,
            reconnect=reconnect,
            backoff_initial=backoff_initial,
            backoff_max=backoff_max,
            backoff_jitter=backoff_jitter,
            stable_after=stable_after,
            event_capacity=event_capacity,
            on_state=self._on_state,
            delivery="polled",
            device_rejoin_after_close=device_rejoin_after_close,
            console_upload_dir=console_upload_dir,
            console_max_upload_size=console_max_upload_size,
        )
        super().__init__(native, on_state)
        native.on("*", self._on_event)
        self._max_pending = max_pending
        self._joined = False
        self._events: Deque[DeviceEvent] = collections.deque()
        self._readers: "List[asyncio.Future[Any]]" = []
        self._join_waiters: "List[asyncio.Future[Any]]" = []
        self._offer_waiters: "List[asyncio.Future[Any]]" = []
        self._update_waiters: "List[asyncio.Future[Any]]" = []

    def _backlogged(self) -> bool:
        return len(self._events) >= self._max_pending

    def _waiter_lists(self) -> "List[List[asyncio.Future[Any]]]":
        return [self._join_waiters, self._offer_waiters, self._update_waiters]

    def _dropped(self) -> None:
        self._joined = False

    def _ended(self) -> None:
        self._joined = False
        _wake(self._readers, None)

    def _on_event(self, event: DeviceEvent) -> None:
        if isinstance(event, ChannelEvent) and event.topic == "device":
            self._joined = event.state == "joined"
            if self._joined:
                _wake(self._join_waiters, None)
        elif isinstance(event, UpdateInfo):
            _wake(self._offer_waiters, None, event)
        elif isinstance(event, UpdateFinished):
            error = None if event.ok else UpdateError(event.reason or "update failed")
            _wake(self._update_waiters, error)
        self._events.append(event)
        if self._readers:
            _settle_error(self._readers.pop(0), None)

    # -- connection (the rest is _AsyncHandle's) ----------------------------

    @property
    def joined(self) -> bool:
        """Whether the ``device`` channel is joined, as far as delivered events tell."""
        return self._joined

    async def wait_joined(self, timeout: Optional[float] = None) -> None:
        """Waits until the ``device`` channel is joined; raises
        :class:`JoinError` (``reason="timeout"``) after ``timeout`` seconds."""
        loop = self._attach()
        if self._joined:
            return
        if self._closed:
            raise self._closed_error()
        fut: "asyncio.Future[Any]" = loop.create_future()
        self._join_waiters.append(fut)
        try:
            await asyncio.wait_for(fut, timeout)
        except asyncio.TimeoutError:
            last = self._last_error
            detail = f"; last connection error: {last}" if last is not None else ""
            raise JoinError(
                f"device was not joined within {timeout} s{detail}", reason="timeout"
            ) from last

    # -- events --------------------------------------------------------------

    async def receive(self) -> DeviceEvent:
        """The next event. Raises :class:`ClosedError` once the device is
        closed and no event is left."""
        loop = self._attach()
        while not self._events:
            if self._closed:
                raise self._closed_error()
            fut: "asyncio.Future[Any]" = loop.create_future()
            self._readers.append(fut)
            try:
                await fut
            finally:
                if fut in self._readers:
                    self._readers.remove(fut)
        event = self._events.popleft()
        self._resume()
        return event

    def __aiter__(self) -> AsyncIterator[DeviceEvent]:
        return self

    async def __anext__(self) -> DeviceEvent:
        try:
            return await self.receive()
        except ClosedError:
            raise StopAsyncIteration from None

    # -- updates -------------------------------------------------------------

    def pending_update(self) -> Optional[UpdateInfo]:
        """The update waiting for a decision, if any."""
        return self._native.pending_update()

    @property
    def update_in_progress(self) -> bool:
        """Whether an update is being downloaded or applied."""
        return self._native.update_in_progress

    async def wait_for_update(self, timeout: Optional[float] = None) -> UpdateInfo:
        """The pending update, or the next one offered (it also arrives as an
        ``update`` event). Raises :class:`asyncio.TimeoutError` after
        ``timeout`` seconds."""
        loop = self._attach()
        pending = self._native.pending_update()
        if pending is not None:
            return pending
        if self._closed:
            raise self._closed_error()
        fut: "asyncio.Future[Any]" = loop.create_future()
        self._offer_waiters.append(fut)
        offer: UpdateInfo = await asyncio.wait_for(fut, timeout)
        return offer

    async def apply_update(
        self,
        update: Union[UpdateInfo, Mapping[str, Any], None] = None,
        *,
        path: Union[str, "os.PathLike[str]", None] = None,
        sink: Any = None,
        fwup: Optional[Sequence[str]] = None,
        idle_timeout: float = 60.0,
        max_disconnects: int = 10,
        retry_delay: float = 15.0,
        max_total: float = 86400.0,
        ca: Optional[Pem] = None,
        headers: Optional[Mapping[str, str]] = None,
    ) -> None:
        """Downloads, verifies and applies ``update`` (default: the pending
        one) into ``path``, ``sink`` or ``fwup`` (see
        :meth:`nerves_hub_channel.Device.apply_update`) and returns once it
        completed; raises :class:`UpdateError` (``reason`` as reported to
        the server) if it failed or was cancelled. Progress arrives as
        ``update_progress`` events meanwhile. A ``sink`` is called on a
        library thread, not on the event loop."""
        loop = self._attach()
        self._native.apply_update(
            update,
            path=path,
            sink=sink,
            fwup=fwup,
            idle_timeout=idle_timeout,
            max_disconnects=max_disconnects,
            retry_delay=retry_delay,
            max_total=max_total,
            ca=ca,
            headers=headers,
        )
        # Events are dispatched on this thread only: the end cannot have
        # been routed before this waiter is registered.
        fut: "asyncio.Future[Any]" = loop.create_future()
        self._update_waiters.append(fut)
        await fut

    async def download_archive(
        self,
        *,
        path: Union[str, "os.PathLike[str]", None] = None,
        sink: Any = None,
        fwup: Optional[Sequence[str]] = None,
        idle_timeout: float = 60.0,
        max_disconnects: int = 10,
        retry_delay: float = 15.0,
        max_total: float = 86400.0,
        ca: Optional[Pem] = None,
        headers: Optional[Mapping[str, str]] = None,
        timeout: Optional[float] = None,
    ) -> None:
        """Downloads the last offered archive (see
        :meth:`nerves_hub_channel.Device.download_archive`) and returns once
        it is complete; raises :class:`UpdateError` if it failed. The wait
        runs on a worker thread (with the GIL released), not on the loop."""
        await asyncio.to_thread(
            self._native.download_archive,
            path=path,
            sink=sink,
            fwup=fwup,
            idle_timeout=idle_timeout,
            max_disconnects=max_disconnects,
            retry_delay=retry_delay,
            max_total=max_total,
            ca=ca,
            headers=headers,
            timeout=timeout,
        )

    def ignore_update(self, reason: str) -> None:
        """Declines the pending update; the server is told ``ignored``."""
        self._native.ignore_update(reason)

    def reschedule_update(self, delay: float, reason: Optional[str] = None) -> None:
        """Postpones the pending update by ``delay`` seconds (more than 0);
        the server is told ``rescheduled`` with ``delay_for`` in milliseconds."""
        self._native.reschedule_update(delay, reason)

    def cancel_update(self) -> bool:
        """Stops the update being applied (its :meth:`apply_update` raises
        :class:`UpdateError`); False if none was."""
        return self._native.cancel_update()

    def suspend_update(self) -> bool:
        """Like :meth:`cancel_update`, but a file sink keeps the verified
        bytes for the next run of the same update."""
        return self._native.suspend_update()

    # -- other device calls ----------------------------------------------------

    def firmware_validated(self) -> None:
        """Tells the server the running firmware is validated."""
        self._native.firmware_validated()

    def script_result(
        self, script_ref: str, result: str, output: str = "", returned: str = "nil"
    ) -> None:
        """Answers a ``script_run`` event (``result``: ``"completed"`` or ``"error"``)."""
        self._native.script_result(script_ref, result, output, returned)

    def report_network_interface(self, name: str) -> None:
        """Tells the server which network interface the device uses."""
        self._native.report_network_interface(name)

    def set_metadata(self, metadata: Mapping[str, str]) -> None:
        """Replaces the firmware metadata sent at the next (re)join."""
        self._native.set_metadata(dict(metadata))

    def console_output(self, data: str) -> None:
        """Sends terminal output to the remote console (``console=True``)."""
        self._native.console_output(data)

    async def console_send_file(self, path: Union[str, "os.PathLike[str]"]) -> None:
        """Sends a file (< 10 MiB) to the browser; needs ``console_upload_dir``."""
        await asyncio.get_running_loop().run_in_executor(None, self._native.console_send_file, path)

    def log(self, level: str, message: str, meta: Optional[Mapping[str, str]] = None) -> None:
        """Sends a log line through the ``logging`` extension."""
        self._native.log(level, message, meta)

    def report_metric(self, name: str, value: float) -> None:
        """Sets a metric sent with every later health report."""
        self._native.report_metric(name, value)

    @property
    def fwup_public_keys(self) -> List[str]:
        """The firmware signing keys the device knows (configured or sent by the server)."""
        return self._native.fwup_public_keys

    @property
    def attached_extensions(self) -> List[str]:
        """The extensions the server attached."""
        return self._native.attached_extensions

    def cast(self, event: str, payload: Any = None) -> None:
        """Pushes ``event`` on the ``device`` channel without waiting."""
        self._native.cast(event, payload)
