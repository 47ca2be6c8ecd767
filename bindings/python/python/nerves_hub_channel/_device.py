"""What a NervesHub :class:`~nerves_hub_channel.Device` hands to its handlers.

Plain frozen dataclasses, built by the compiled module. Every event has a
``kind`` (the name handlers are registered under with ``device.on(kind,
handler)``); :data:`EVENT_KINDS` lists them all.
"""

from dataclasses import dataclass, field
from typing import Any, ClassVar, Dict, Optional, Tuple

__all__ = [
    "EVENT_KINDS",
    "SharedSecret",
    "FirmwareMeta",
    "UpdateInfo",
    "UpdateIgnored",
    "UpdateProgress",
    "UpdateFinished",
    "Reboot",
    "Identify",
    "ArchiveInfo",
    "PublicKeys",
    "FwupPublicKeys",
    "ArchivePublicKeys",
    "ScriptRun",
    "ExtensionsGet",
    "ConsoleInput",
    "ConsoleWindowSize",
    "ConsoleRestart",
    "ConsoleMessage",
    "ExtensionEvent",
    "ChannelEvent",
    "DeviceMessage",
    "InvalidMessage",
    "IdentityInUse",
    "DeviceEvent",
]


class DeviceEvent:
    """Base class of everything a device handler receives. ``kind`` names
    the event (see :data:`EVENT_KINDS`); narrow with ``isinstance``."""

    kind: ClassVar[str] = ""


def _redact(url: str) -> str:
    # A signed URL's query string is a credential: never show it.
    base, sep, _ = url.partition("?")
    return base + ("?<redacted>" if sep else "")


@dataclass(frozen=True, repr=False)
class SharedSecret:
    """NervesHub NH1 shared-secret credentials: a product key (``nhp_...``;
    the device registers itself under ``identifier``) or a device key
    (``nhd_...``; ``identifier`` must be that device's). ``digest`` is
    ``"sha256"``, ``"sha384"`` or ``"sha512"``. The secret is never shown by
    ``repr`` nor logged."""

    key: str
    """The shared key (``nhp_...`` or ``nhd_...``)."""
    secret: str
    """The shared secret, used as given (not base64-decoded)."""
    identifier: str
    """The device identifier (nerves_hub_link uses the serial number)."""
    digest: str = "sha256"
    """The HMAC and PBKDF2 digest: ``"sha256"``, ``"sha384"`` or ``"sha512"``."""

    def __repr__(self) -> str:
        return (
            f"SharedSecret(key={self.key!r}, secret=<redacted>, "
            f"identifier={self.identifier!r}, digest={self.digest!r})"
        )


@dataclass(frozen=True)
class FirmwareMeta:
    """``firmware_meta`` of an update: what the offered firmware is."""

    uuid: str
    """The firmware UUID (what NervesHub identifies the firmware by)."""
    product: Optional[str] = None
    """``meta-product``."""
    version: Optional[str] = None
    """``meta-version``."""
    architecture: Optional[str] = None
    """``meta-architecture``."""
    platform: Optional[str] = None
    """``meta-platform``."""
    author: Optional[str] = None
    """``meta-author``."""
    description: Optional[str] = None
    """``meta-description``."""
    vcs_identifier: Optional[str] = None
    """``meta-vcs-identifier``."""
    misc: Optional[str] = None
    """``meta-misc``."""


@dataclass(frozen=True, repr=False)
class UpdateInfo(DeviceEvent):
    """The server offers an update (``update`` with ``update_available``);
    ``status_update received`` was already sent. Decide with
    ``device.apply_update(update, ...)``, ``ignore_update(reason)`` or
    ``reschedule_update(delay, reason)``. ``repr`` hides the signed URL's
    query string (a credential)."""

    kind: ClassVar[str] = "update"
    update_available: bool
    """Always true for an offer."""
    firmware_url: str
    """Where to download the image; may be a signed URL: never log it."""
    firmware_meta: FirmwareMeta
    """What the firmware is."""
    size: Optional[int] = None
    """Bytes of the file at ``firmware_url``, when the server says."""
    checksum: Optional[str] = None
    """Uppercase hex SHA-256 of the whole file, when the server says."""
    partials_checksums: Tuple[str, ...] = ()
    """Uppercase hex SHA-256 of each consecutive MiB."""
    deployment_id: Optional[int] = None
    """The deployment group, or ``None`` for a manual push."""
    raw: Dict[str, Any] = field(default_factory=dict)
    """The payload as received, for fields this version does not know."""

    @property
    def uuid(self) -> str:
        """``firmware_meta.uuid``."""
        return self.firmware_meta.uuid

    @property
    def version(self) -> Optional[str]:
        """``firmware_meta.version``."""
        return self.firmware_meta.version

    def __repr__(self) -> str:
        return (
            f"UpdateInfo(uuid={self.uuid!r}, version={self.version!r}, "
            f"firmware_url={_redact(self.firmware_url)!r}, size={self.size!r})"
        )


@dataclass(frozen=True)
class UpdateIgnored(DeviceEvent):
    """An offer was skipped by the device itself: with ``auto_update``
    that firmware is already running (``ignored`` was sent); no signing
    key is known while ``require_fwup_public_keys`` is on or
    ``auto_update`` applies with ``fwup`` (``failed`` was sent, and no
    ``update`` event comes)."""

    kind: ClassVar[str] = "update_ignored"
    uuid: str
    """The offered firmware's UUID."""
    reason: str
    """Why it was skipped."""


@dataclass(frozen=True)
class UpdateProgress(DeviceEvent):
    """Progress of the update being applied (the values pushed as
    ``fwup_progress``)."""

    kind: ClassVar[str] = "update_progress"
    stage: str
    """``"downloading"`` (file and custom sinks) or ``"updating"`` (fwup)."""
    percent: int
    """0 to 100, strictly increasing within a stage."""


@dataclass(frozen=True)
class UpdateFinished(DeviceEvent):
    """The update being applied ended: ``ok`` means the image is complete,
    verified and handed over (``completed`` was sent); otherwise ``failed``
    was sent with ``reason``."""

    kind: ClassVar[str] = "update_finished"
    ok: bool
    """Whether the update succeeded."""
    reason: Optional[str] = None
    """Why it failed (``None`` on success)."""


@dataclass(frozen=True)
class Reboot(DeviceEvent):
    """The server asked for a reboot; ``rebooting`` was already pushed.
    The handler of this event is the device's reboot callback."""

    kind: ClassVar[str] = "reboot"


@dataclass(frozen=True)
class Identify(DeviceEvent):
    """The server asked the device to identify itself (blink a LED...)."""

    kind: ClassVar[str] = "identify"


@dataclass(frozen=True, repr=False)
class ArchiveInfo(DeviceEvent):
    """The deployment group has an archive (an extra signed file)."""

    kind: ClassVar[str] = "archive"
    uuid: str
    """The archive's UUID."""
    url: str
    """Signed download URL: its query string is a credential."""
    size: Optional[int] = None
    """Bytes, when the server says."""
    version: Optional[str] = None
    """The archive's version."""
    description: Optional[str] = None
    """The archive's description."""
    platform: Optional[str] = None
    """The archive's platform."""
    architecture: Optional[str] = None
    """The archive's architecture."""
    uploaded_at: Optional[str] = None
    """ISO-8601 upload time."""
    raw: Dict[str, Any] = field(default_factory=dict)
    """The payload as received."""

    def __repr__(self) -> str:
        return f"ArchiveInfo(uuid={self.uuid!r}, url={_redact(self.url)!r}, size={self.size!r})"


@dataclass(frozen=True)
class PublicKeys(DeviceEvent):
    """Signing keys the server sent because the device asked for them at
    join: :class:`FwupPublicKeys` or :class:`ArchivePublicKeys`."""

    keys: Tuple[str, ...]
    """The keys, as sent."""


@dataclass(frozen=True)
class FwupPublicKeys(PublicKeys):
    """The organisation's firmware signing keys (``request_fwup_public_keys``)."""

    kind: ClassVar[str] = "fwup_public_keys"


@dataclass(frozen=True)
class ArchivePublicKeys(PublicKeys):
    """The organisation's archive signing keys (``request_archive_public_keys``)."""

    kind: ClassVar[str] = "archive_public_keys"


@dataclass(frozen=True)
class ScriptRun(DeviceEvent):
    """A support script to run (only with ``scripts=True``); answer with
    ``device.script_result(script_ref, ...)``."""

    kind: ClassVar[str] = "script_run"
    script_ref: str
    """The reference to answer with (the ``ref`` of ``scripts/run``)."""
    text: str
    """The script."""


@dataclass(frozen=True)
class ExtensionsGet(DeviceEvent):
    """The server asked which extensions the device has; the device has
    already answered (by joining ``extensions``, when configured)."""

    kind: ClassVar[str] = "extensions_get"


@dataclass(frozen=True)
class ConsoleInput(DeviceEvent):
    """Terminal input from the remote console (``dn``); answer with
    ``device.console_output(text)``."""

    kind: ClassVar[str] = "console_input"
    data: str
    """Keystrokes or pasted text."""


@dataclass(frozen=True)
class ConsoleWindowSize(DeviceEvent):
    """The browser terminal's size changed."""

    kind: ClassVar[str] = "console_window_size"
    width: int
    """Columns."""
    height: int
    """Rows."""


@dataclass(frozen=True)
class ConsoleRestart(DeviceEvent):
    """The console asked to restart the shell session."""

    kind: ClassVar[str] = "console_restart"


@dataclass(frozen=True)
class ConsoleMessage(DeviceEvent):
    """Any other console message: file uploads (``file-data/start``,
    ``file-data``, ``file-data/stop``) and unknown events."""

    kind: ClassVar[str] = "console_message"
    event: str
    """The console event name."""
    payload: Any
    """Its decoded payload (``bytes`` for a binary frame)."""


@dataclass(frozen=True)
class ExtensionEvent(DeviceEvent):
    """What the extensions did (they already answered the server).
    ``event`` is ``"negotiated"`` (``names`` attached, ``rejected`` not
    implemented), ``"attached"``, ``"detached"``, ``"health_check"``,
    ``"location_request"`` or ``"other"`` (with ``message`` and ``payload``)."""

    kind: ClassVar[str] = "extension"
    event: str
    """What happened (see the class documentation)."""
    names: Tuple[str, ...] = ()
    """The extensions concerned."""
    rejected: Tuple[str, ...] = ()
    """For ``"negotiated"``: names the server sent that this device lacks."""
    message: Optional[str] = None
    """For ``"other"``: the event name on the extensions topic."""
    payload: Any = None
    """For ``"other"``: its payload."""


@dataclass(frozen=True)
class ChannelEvent(DeviceEvent):
    """A channel of the device (``device``, ``console``, ``extensions``)
    changed: ``state`` is ``"joined"`` (``detail``: the join response),
    ``"join_failed"`` (a :class:`JoinError`), ``"errored"`` (a reason; it
    rejoins) or ``"closed"`` (a reason)."""

    kind: ClassVar[str] = "channel"
    topic: str
    """The channel's topic."""
    state: str
    """``"joined"``, ``"join_failed"``, ``"errored"`` or ``"closed"``."""
    detail: Any = None
    """See the class documentation."""


@dataclass(frozen=True)
class DeviceMessage(DeviceEvent):
    """Any message this layer does not decode (including ``update`` with
    ``update_available`` false), passed through, never dropped."""

    kind: ClassVar[str] = "message"
    topic: str
    """The topic it came on."""
    event: str
    """The event name."""
    payload: Any
    """The decoded payload (``bytes`` for a binary frame)."""


@dataclass(frozen=True)
class InvalidMessage(DeviceEvent):
    """A known device event whose payload could not be used; nothing was done."""

    kind: ClassVar[str] = "invalid_message"
    event: str
    """The event name."""
    detail: str
    """What was wrong."""
    payload: Any
    """The payload as received."""


@dataclass(frozen=True)
class IdentityInUse(DeviceEvent):
    """The server closed the last ``sessions`` connections soon after they
    joined: this identity (certificate or NH1 identifier) seems to be in use
    by another device, which NervesHub lets in by closing the older socket.
    Reported once per run of such connections (a warning is logged too); the
    device keeps reconnecting with an escalating backoff."""

    kind: ClassVar[str] = "identity_in_use"
    sessions: int
    """How many connections in a row the server closed soon after the join."""
    reason: str
    """The same, as text for people."""


EVENT_KINDS: Tuple[str, ...] = (
    "update",
    "update_ignored",
    "update_progress",
    "update_finished",
    "reboot",
    "identify",
    "archive",
    "fwup_public_keys",
    "archive_public_keys",
    "script_run",
    "extensions_get",
    "console_input",
    "console_window_size",
    "console_restart",
    "console_message",
    "extension",
    "channel",
    "message",
    "invalid_message",
    "identity_in_use",
)
"""Every ``kind`` a handler can be registered for (``"*"`` matches all)."""
