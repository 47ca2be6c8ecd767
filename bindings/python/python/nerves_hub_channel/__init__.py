"""nerves_hub_channel: a Phoenix channels and NervesHub device client.

A Rust core (connection, heartbeat, reconnect with back-off, join and rejoin,
push/reply/timeout, TLS with client certificates) behind two Python APIs:

* blocking: :class:`Socket` and :class:`Channel`; callbacks run on one
  library-owned thread, every wait releases the GIL and Ctrl-C works;
* asyncio: :class:`AsyncSocket` and :class:`AsyncChannel`, with
  ``await channel.push(...)`` and ``async for message in channel``;
* the NervesHub device layer: :class:`Device` (blocking) and
  :class:`AsyncDevice` (update flow, console, extensions, NH1 and mTLS).

Payloads are JSON-serialisable Python values, or ``bytes`` (sent as binary
frames). Errors are subclasses of :class:`Error`. The library logs through
the standard :mod:`logging` module, logger ``"nerves_hub_channel"``.
"""

import atexit
import logging

from . import _native
from ._errors import (
    AuthError,
    BufferFull,
    ClosedError,
    ConnectError,
    Error,
    ForkedError,
    InvalidArgument,
    JoinError,
    ProtocolError,
    ProxyError,
    PushError,
    PushTimeout,
    TlsError,
    UpdateError,
)
from ._device import (
    EVENT_KINDS,
    ArchiveInfo,
    ArchivePublicKeys,
    ChannelEvent,
    ConsoleInput,
    ConsoleMessage,
    ConsoleRestart,
    ConsoleWindowSize,
    DeviceEvent,
    DeviceMessage,
    ExtensionEvent,
    ExtensionsGet,
    FirmwareMeta,
    FwupPublicKeys,
    Identify,
    InvalidMessage,
    IdentityInUse,
    PublicKeys,
    Reboot,
    ScriptRun,
    SharedSecret,
    UpdateFinished,
    UpdateIgnored,
    UpdateInfo,
    UpdateProgress,
)
from ._native import (
    Channel,
    Device,
    Pkcs11Key,
    SigningCallback,
    Socket,
    StateChange,
    configure,
    read_uboot_env,
    shutdown,
)
from .aio import AsyncChannel, AsyncDevice, AsyncSocket, Message

__version__: str = _native.__version__

__all__ = [
    "EVENT_KINDS",
    "ArchiveInfo",
    "ArchivePublicKeys",
    "AsyncDevice",
    "ChannelEvent",
    "ConsoleInput",
    "ConsoleMessage",
    "ConsoleRestart",
    "ConsoleWindowSize",
    "Device",
    "DeviceEvent",
    "DeviceMessage",
    "ExtensionEvent",
    "ExtensionsGet",
    "FirmwareMeta",
    "FwupPublicKeys",
    "Identify",
    "InvalidMessage",
    "IdentityInUse",
    "PublicKeys",
    "Reboot",
    "ScriptRun",
    "SharedSecret",
    "UpdateError",
    "UpdateFinished",
    "UpdateIgnored",
    "UpdateInfo",
    "UpdateProgress",
    "AsyncChannel",
    "AsyncSocket",
    "AuthError",
    "BufferFull",
    "Channel",
    "ClosedError",
    "ConnectError",
    "Error",
    "ForkedError",
    "InvalidArgument",
    "JoinError",
    "Message",
    "ProtocolError",
    "ProxyError",
    "PushError",
    "PushTimeout",
    "Pkcs11Key",
    "SigningCallback",
    "Socket",
    "StateChange",
    "TlsError",
    "__version__",
    "configure",
    "read_uboot_env",
    "shutdown",
]

#: The logger every record of the library goes to (Rust records included).
logger = logging.getLogger("nerves_hub_channel")


def _follow_log_levels() -> None:
    """Tells the core of every logger level change as it happens, so that it
    formats only what ``logger`` would emit without re-reading the level
    every second (a wake-up a second for an idle device). Every
    ``Logger.setLevel`` and ``logging.disable`` clears the manager's cache
    through ``Manager._clear_cache``; where a Python has no such method, the
    core re-reads the level every second instead."""
    manager = logging.Manager
    original = getattr(manager, "_clear_cache", None)
    if original is None:
        _native._poll_log_level()
        return
    if getattr(original, "_nerves_hub_channel", False):
        return  # this module was imported again

    def _clear_cache(self: logging.Manager) -> None:
        original(self)
        try:
            _native._log_level_changed()
        except Exception:  # pragma: no cover - only while the interpreter exits
            pass

    setattr(_clear_cache, "_nerves_hub_channel", True)
    setattr(manager, "_clear_cache", _clear_cache)
    _native._log_level_changed()


_follow_log_levels()

# Registered after `logging` (imported above) registered its own exit hook:
# atexit runs hooks last-in first-out, so ours stops the library's threads
# and hands over the last log records before logging shuts down.
atexit.register(_native._atexit)
