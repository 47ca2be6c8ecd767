"""The exceptions of nerves_hub_channel, all rooted at :class:`Error`.

Defined in Python (rather than in the compiled module) so that they carry
typed attributes and ordinary constructors; the compiled module raises them.
"""

from typing import Any, Optional

__all__ = [
    "Error",
    "TlsError",
    "AuthError",
    "ConnectError",
    "ProxyError",
    "ProtocolError",
    "JoinError",
    "PushError",
    "PushTimeout",
    "ClosedError",
    "InvalidArgument",
    "BufferFull",
    "ForkedError",
    "UpdateError",
]


class Error(Exception):
    """Base class of every error raised by nerves_hub_channel."""


class TlsError(Error):
    """Certificates, keys or the TLS handshake failed (unreadable or invalid
    PEM, unknown CA, certificate rejected by the server...)."""


class AuthError(Error):
    """The server refused the credentials (HTTP 401). The socket keeps
    retrying slowly, since a clock or a server may recover."""

    status: int
    """The HTTP status of the refusal (401)."""
    reason: Optional[str]
    """NervesHub's ``nh-connection-error-reason`` header, if any."""

    def __init__(self, message: str, *, status: int = 401, reason: Optional[str] = None) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason


class ConnectError(Error):
    """No connection: DNS, TCP, a deadline, a lost connection, or an HTTP
    status other than 101 and 401 for the websocket upgrade."""

    status: Optional[int]
    """The HTTP status when the server refused the upgrade, else ``None``."""
    reason: Optional[str]
    """NervesHub's ``nh-connection-error-reason`` header, if any."""

    def __init__(
        self, message: str, *, status: Optional[int] = None, reason: Optional[str] = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason


class ProxyError(ConnectError):
    """The HTTP proxy could not be reached, refused the ``CONNECT`` tunnel
    (403; 407: authentication required or credentials refused), or broke it.
    The message names the proxy, never its credentials. The socket retries
    with its backoff."""

    def __init__(self, message: str, *, status: Optional[int] = None) -> None:
        super().__init__(message, status=status)


class ProtocolError(Error):
    """The server broke the protocol (malformed frame, oversized message...)."""


class JoinError(Error):
    """A join failed: refused by the server, or not answered in time."""

    reason: str
    """``"refused"`` (the server answered with an error) or ``"timeout"``."""
    response: Any
    """The server's answer for ``"refused"`` (e.g. ``{"reason": "unmatched topic"}``), else ``None``."""

    def __init__(self, message: str, *, reason: str = "refused", response: Any = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.response = response


class PushError(Error):
    """The server answered a push with an error reply."""

    status: str
    """The reply's status (usually ``"error"``)."""
    response: Any
    """The reply's response payload."""

    def __init__(self, message: str, *, status: str = "error", response: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.response = response


class PushTimeout(Error, TimeoutError):
    """No reply to a push within its timeout (also a :class:`TimeoutError`)."""


class ClosedError(Error):
    """The socket or channel was closed before the operation completed."""


class InvalidArgument(Error, ValueError):
    """An unusable argument: bad URL, empty topic, non-JSON payload... (also
    a :class:`ValueError`)."""


class BufferFull(Error):
    """The outbound buffer (``outbound_capacity`` pushes waiting to be sent)
    is full; nothing was queued."""


class ForkedError(Error):
    """Called in a child process after ``fork()``: the library's threads do
    not survive a fork. Use it in the parent, or start a new program."""


class UpdateError(Error):
    """A firmware update failed (download, checksum, sink) or was cancelled;
    the server was told ``failed`` with the same ``reason``."""

    reason: str
    """The reason reported to the server, e.g. ``"Checksum mismatch : ..."``."""

    def __init__(self, message: str, *, reason: Optional[str] = None) -> None:
        super().__init__(message)
        self.reason = message if reason is None else reason
