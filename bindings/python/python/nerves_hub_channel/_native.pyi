"""Type stubs of the compiled module ``nerves_hub_channel._native``.

Hand-written; ``tests/python/test_stubs.py`` checks them against the module
(mypy's stubtest, and the keyword defaults against the core's defaults).
"""

import os
from typing import (
    Any,
    Callable,
    Dict,
    List,
    Literal,
    Mapping,
    Optional,
    Sequence,
    Tuple,
    TypedDict,
    TypeVar,
    Union,
    final,
    overload,
)
from types import TracebackType

from ._device import DeviceEvent, SharedSecret, UpdateInfo

_Pem = Union[str, bytes, bytearray, os.PathLike[str]]
"""A path to a PEM file, or PEM data (``bytes``, or a ``str`` starting with ``-----BEGIN``)."""
_Key = Union[_Pem, "Pkcs11Key", "SigningCallback"]
"""A PEM private key, or a key that never leaves its chip (see docs/hardware-keys.md)."""
_Pairs = Union[Mapping[str, str], Sequence[Tuple[str, str]]]
_ConnectionState = Literal["disconnected", "connecting", "connected", "closed"]
_ChannelState = Literal["joined", "join_failed", "errored", "closed"]
_Self = TypeVar("_Self", bound="_Handle")

__all__ = [
    "__version__",
    "_Handle",
    "Socket",
    "Channel",
    "StateChange",
    "Pkcs11Key",
    "SigningCallback",
    "Device",
    "configure",
    "read_uboot_env",
    "shutdown",
    "_defaults",
    "_atexit",
    "_log_level_changed",
    "_poll_log_level",
]
__version__: str

@final
class Pkcs11Key:
    """A private key on a PKCS#11 token, for ``key=``: the token is opened,
    logged in to and searched when the socket is created. The PIN is given
    at most one way (``pin``, ``pin_file`` or ``pin_env``, else the URI's
    ``pin-value`` / ``pin-source``) and is never shown or logged."""

    def __new__(
        cls,
        uri: str,
        *,
        module: Optional[Union[str, os.PathLike[str]]] = None,
        pin: Optional[str] = None,
        pin_file: Optional[Union[str, os.PathLike[str]]] = None,
        pin_env: Optional[str] = None,
        timeout: float = 10.0,
    ) -> "Pkcs11Key": ...

@final
class SigningCallback:
    """A callable that makes the TLS client signature, for ``key=``:
    ``sign(algorithm, message, digest) -> bytes``, run on a library thread.
    ECDSA signatures are raw ``r || s`` (64 bytes). Raising, or taking longer
    than ``timeout`` seconds, fails that connection attempt with a TLS error."""

    def __new__(
        cls,
        sign: Callable[[str, bytes, bytes], bytes],
        *,
        key_type: Literal["ec-p256", "rsa"],
        timeout: float = 10.0,
    ) -> "SigningCallback": ...

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

class _Handle:
    """What ``Socket`` and ``Device`` share (connection lifecycle, delivery,
    context manager); not made directly."""

    def connect(self) -> None:
        """Starts connecting in the background (a device also joins ``device``)."""
    def disconnect(self) -> None:
        """Closes the connection; ``connect`` resumes."""
    def close(self, timeout: float = 5.0) -> None:
        """Closes the socket or device for good."""
    @property
    def state(self) -> _ConnectionState:
        """The connection state."""
    @property
    def delivery(self) -> Literal["threaded", "polled", "inline"]:
        """Where callbacks run."""
    def wait_connected(self, timeout: Optional[float] = None) -> None:
        """Blocks until connected; raises the error of a failed attempt."""
    def fileno(self) -> int:
        """Polled delivery: readable while events are pending."""
    def dispatch(self, timeout: float = 0.0, max_events: int = 64) -> int:
        """Polled delivery: runs the callbacks of pending events on this thread."""
    def __enter__(self: _Self) -> _Self: ...
    def __exit__(
        self,
        exc_type: Optional[type] = None,
        exc: Optional[BaseException] = None,
        tb: Optional[TracebackType] = None,
    ) -> None: ...

@final
class Socket(_Handle):
    """A Phoenix socket: one websocket connection carrying channels."""

    def __new__(
        cls,
        url: str,
        *,
        ca: Optional[_Pem] = None,
        cert: Optional[_Pem] = None,
        key: Optional[_Key] = None,
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
        stable_after: float = 120.0,
        outbound_capacity: int = 1024,
        event_capacity: int = 1024,
        max_message_size: int = 8388608,
        read_buffer_size: int = 4096,
        on_state: Optional[Callable[[StateChange], object]] = None,
        delivery: Literal["threaded", "polled", "inline"] = "threaded",
        serializer: Literal["json", "msgpack"] = "json",
        proxy: Optional[str] = None,
        no_proxy: Optional[str] = None,
        proxy_from_env: bool = True,
    ) -> "Socket": ...
    def channel(self, topic: str, params: Any = None) -> "Channel":
        """A channel on ``topic``; ``params`` is a payload or a callable returning one."""

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

class _Health(TypedDict, total=False):
    system_metrics: bool
    disk_path: Union[str, os.PathLike[str]]
    proc_dir: Union[str, os.PathLike[str]]
    cpu_temp_path: Union[str, os.PathLike[str]]
    metadata: Mapping[str, str]
    metrics: Optional[Callable[[], Mapping[str, float]]]
    alarms: Optional[Callable[[], Mapping[str, str]]]
    checks: Optional[Callable[[], Mapping[str, Union[Tuple[bool, str], Mapping[str, Any]]]]]

class _Extensions(TypedDict, total=False):
    health: Union[bool, Callable[[], Mapping[str, float]], _Health]
    geo: Optional[Callable[[], Mapping[str, Any]]]
    logging: bool
    local_shell: bool

@final
class Device(_Handle):
    """A NervesHub device: socket, ``device`` channel, update flow, console, extensions."""

    def __new__(
        cls,
        url: str,
        *,
        ca: Optional[_Pem] = None,
        cert: Optional[_Pem] = None,
        key: Optional[_Key] = None,
        server_name: Optional[str] = None,
        shared_secret: Union[SharedSecret, Tuple[str, str, str], Tuple[str, str, str, str], None] = None,
        clock_offset: int = 0,
        device_api_version: str = "2.3.0",
        metadata: Optional[Mapping[str, str]] = None,
        fwup_env_path: Union[str, os.PathLike[str], None] = None,
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
        extensions: Optional[_Extensions] = None,
        report_timeout: float = 60.0,
        auto_update: Optional[Mapping[str, Any]] = None,
        fwup_public_keys: Optional[Sequence[str]] = None,
        require_fwup_public_keys: bool = False,
        allow_unverified_firmware: bool = False,
        uboot_env_path: Union[str, os.PathLike[str], None] = None,
        uboot_env_size: Optional[int] = None,
        uboot_env_redundant: bool = False,
        headers: Optional[_Pairs] = None,
        params: Optional[_Pairs] = None,
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
        on_state: Optional[Callable[[StateChange], object]] = None,
        delivery: Literal["threaded", "polled"] = "threaded",
        device_rejoin_after_close: float = 5.0,
        serializer: Literal["json", "msgpack"] = "json",
        console_upload_dir: Optional[Union[str, os.PathLike[str]]] = None,
        console_max_upload_size: Optional[int] = None,
        proxy: Optional[str] = None,
        no_proxy: Optional[str] = None,
        proxy_from_env: bool = True,
    ) -> "Device": ...
    @property
    def joined(self) -> bool:
        """Whether the ``device`` channel is joined."""
    @property
    def update_in_progress(self) -> bool:
        """Whether an update is being applied."""
    @property
    def fwup_public_keys(self) -> List[str]:
        """The firmware signing keys the device knows."""
    @property
    def attached_extensions(self) -> List[str]:
        """The extensions the server attached."""
    def on(self, kind: str, handler: Callable[[DeviceEvent], object]) -> None:
        """Calls ``handler(event)`` for each event of ``kind`` (``"*"``: all)."""
    def off(self, kind: str, handler: Optional[Callable[..., object]] = None) -> int:
        """Removes handlers of ``kind``; returns how many."""
    def wait_joined(self, timeout: Optional[float] = None) -> None:
        """Blocks until the ``device`` channel is joined."""
    def pending_update(self) -> Optional[UpdateInfo]:
        """The update waiting for a decision, if any."""
    def wait_for_update(self, timeout: Optional[float] = None) -> Optional[UpdateInfo]:
        """Blocks until an update is offered; ``None`` on timeout."""
    def apply_update(
        self,
        update: Union[UpdateInfo, Mapping[str, Any], None] = None,
        *,
        path: Union[str, os.PathLike[str], None] = None,
        sink: Any = None,
        fwup: Optional[Sequence[str]] = None,
        idle_timeout: float = 60.0,
        max_disconnects: int = 10,
        retry_delay: float = 15.0,
        max_total: float = 86400.0,
        ca: Optional[_Pem] = None,
        headers: Optional[Mapping[str, str]] = None,
    ) -> None:
        """Starts downloading and applying ``update`` into a path, a sink or fwup."""
    def wait_update(self, timeout: Optional[float] = None) -> None:
        """Blocks until the update ends; raises ``UpdateError`` on failure."""
    def download_archive(
        self,
        *,
        path: Union[str, os.PathLike[str], None] = None,
        sink: Any = None,
        fwup: Optional[Sequence[str]] = None,
        idle_timeout: float = 60.0,
        max_disconnects: int = 10,
        retry_delay: float = 15.0,
        max_total: float = 86400.0,
        ca: Optional[_Pem] = None,
        headers: Optional[Mapping[str, str]] = None,
        timeout: Optional[float] = None,
    ) -> None:
        """Downloads the last offered archive into a path, a sink or fwup; blocks until done."""
    def ignore_update(self, reason: str) -> None:
        """Declines the pending update."""
    def reschedule_update(self, delay: float, reason: Optional[str] = None) -> None:
        """Postpones the pending update by ``delay`` seconds."""
    def cancel_update(self) -> bool:
        """Stops the update being applied."""
    def suspend_update(self) -> bool:
        """Stops the update being applied; a file sink keeps its bytes to resume."""
    def firmware_validated(self) -> None:
        """Tells the server the running firmware is validated."""
    def script_result(
        self, script_ref: str, result: str, output: str = "", returned: str = "nil"
    ) -> None:
        """Answers a ``script_run`` event."""
    def report_network_interface(self, name: str) -> None:
        """Tells the server which network interface the device uses."""
    def set_metadata(self, metadata: Dict[str, str]) -> None:
        """Replaces the firmware metadata sent at the next join."""
    def console_output(self, data: str) -> None:
        """Sends terminal output to the remote console."""
    def console_send_file(self, path: Union[str, os.PathLike[str]]) -> None:
        """Sends a file (< 10 MiB) to the browser; needs ``console_upload_dir``."""
    def log(self, level: str, message: str, meta: Optional[Mapping[str, str]] = None) -> None:
        """Sends a log line through the ``logging`` extension."""
    def report_metric(self, name: str, value: float) -> None:
        """Sets a metric sent with every later health report."""
    def send_health_report(self) -> bool:
        """Sends a health report now; False when ``health`` is not attached."""
    def cast(self, event: str, payload: Any = None) -> None:
        """Pushes ``event`` on the ``device`` channel without waiting."""

def read_uboot_env(
    path: Union[str, os.PathLike[str]], env_size: int, *, redundant: bool = False
) -> Dict[str, str]:
    """Reads a binary U-Boot environment image; every ``key=value`` entry."""

def configure(worker_threads: int) -> None:
    """Sets the number of I/O threads (before the first socket)."""

def shutdown() -> None:
    """Closes every socket and stops the library's I/O threads."""

def _defaults() -> Dict[str, Any]: ...
def _atexit() -> None: ...
def _log_level_changed() -> None: ...
def _poll_log_level() -> None: ...
