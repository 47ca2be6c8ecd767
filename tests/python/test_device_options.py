"""Device options that mirror the Rust ones: automatic updates, the console
shell settings, the health extension's fields, required fwup public keys and
metadata from a binary U-Boot environment image (blocking and asyncio)."""

import binascii
import struct
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import pytest

import nerves_hub_channel as nhc
from conftest import WAIT, DevServer, get
from test_device import DeviceFactory, connected, events, firmware, firmware_bytes, make_device, wait_status
from test_device_asyncio import async_device, next_of, run

__all__ = ["make_device"]  # the fixture, re-exported for pytest

REFUSED = "Refusing unverified firmware : no public keys available"
KEY = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="


def uboot_image(pairs: Sequence[Tuple[str, str]], size: int, flag: Optional[int] = None) -> bytes:
    """An environment image as mkenvimage writes it (CRC over the padded data)."""
    header = 4 if flag is None else 5
    data = b"".join(f"{k}={v}".encode() + b"\0" for k, v in pairs) + b"\0"
    data = data.ljust(size - header, b"\0")
    crc = struct.pack("<I", binascii.crc32(data) & 0xFFFFFFFF)
    return crc + (bytes([flag]) if flag is not None else b"") + data


def update_payload(uuid: str) -> Dict[str, Any]:
    return {
        "update_available": True,
        "firmware_url": "http://127.0.0.1:1/fw.fw",
        "firmware_meta": {"uuid": uuid},
    }


def test_read_uboot_env_checks_the_crc_and_picks_the_newer_copy(tmp_path: Path) -> None:
    single = tmp_path / "single.env"
    single.write_bytes(uboot_image([("bootcmd", "run a=b"), ("nerves_fw_active", "a")], 4096))
    assert nhc.read_uboot_env(single, 4096) == {"bootcmd": "run a=b", "nerves_fw_active": "a"}
    with pytest.raises(nhc.InvalidArgument, match="CRC mismatch"):
        nhc.read_uboot_env(single, 4096, redundant=True)
    with pytest.raises(nhc.InvalidArgument, match="env_size"):
        nhc.read_uboot_env(single, 8192)

    both = tmp_path / "redundant.env"
    old = uboot_image([("v", "old")], 1024, flag=4)
    new = uboot_image([("v", "new")], 1024, flag=5)
    both.write_bytes(new + old)
    assert nhc.read_uboot_env(both, 1024, redundant=True) == {"v": "new"}
    corrupt = bytearray(new)
    corrupt[20] ^= 0xFF
    both.write_bytes(old + bytes(corrupt))
    assert nhc.read_uboot_env(both, 1024, redundant=True) == {"v": "old"}
    with pytest.raises(nhc.InvalidArgument, match="missing.env"):
        nhc.read_uboot_env(tmp_path / "missing.env", 1024)


def test_metadata_from_a_uboot_image(server: DevServer, make_device: DeviceFactory, tmp_path: Path) -> None:
    image = tmp_path / "uboot.env"
    pairs = [("b.nerves_fw_uuid", "bbbb"), ("b.nerves_fw_version", "3.0.0"), ("nerves_fw_active", "b")]
    image.write_bytes(uboot_image(pairs, 8192, flag=1))
    with pytest.raises(nhc.InvalidArgument, match="uboot_env_size"):
        make_device(metadata=None, uboot_env_path=image)
    with pytest.raises(nhc.InvalidArgument, match="not both"):
        make_device(metadata=None, uboot_env_path=image, uboot_env_size=8192, fwup_env_path=image)
    connected(make_device(metadata=None, uboot_env_path=image, uboot_env_size=8192, uboot_env_redundant=True))
    (join,) = server.control.wait("device", "phx_join")
    assert join["payload"]["nerves_fw_uuid"] == "bbbb"
    assert join["payload"]["nerves_fw_version"] == "3.0.0"


def test_auto_update_applies_new_firmware_and_skips_the_running_one(
    server: DevServer, make_device: DeviceFactory, tmp_path: Path
) -> None:
    fw = firmware(server.control, "py-auto", 300_000, seed=5)
    target = tmp_path / "auto.fw"
    with pytest.raises(nhc.InvalidArgument, match='auto_update has no "pth"'):
        make_device(auto_update={"pth": target})
    device = make_device(auto_update={"path": target, "idle_timeout": 30.0})
    skipped = events(device, "update_ignored")
    finished = events(device, "update_finished")
    connected(device)
    server.control.push("device", "update", update_payload("11111111-2222-3333-4444-555555555555"))
    ignored = get(skipped)
    assert isinstance(ignored, nhc.UpdateIgnored) and "already running" in ignored.reason
    server.control.push("device", "update", fw["update"])
    done = get(finished, WAIT * 3)
    assert isinstance(done, nhc.UpdateFinished) and done.ok, done
    assert target.read_bytes() == firmware_bytes(server.control, "py-auto")
    assert device.pending_update() is None, "nothing waits for a decision"


def test_updates_are_refused_without_keys_when_required(server: DevServer, make_device: DeviceFactory) -> None:
    server.control.call("/public_keys", {"fwup": []})
    device = make_device(require_fwup_public_keys=True)
    keys = events(device, "fwup_public_keys")
    extensions_get = events(device, "extensions_get")
    skipped = events(device, "update_ignored")
    offers = events(device, "update")
    connected(device)
    (join,) = server.control.wait("device", "phx_join")
    assert join["payload"]["fwup_public_keys"] == "on_connect"
    # No key list at all for an organisation without keys; extensions:get
    # is pushed after where the keys would be.
    get(extensions_get)
    assert keys.empty()
    server.control.push("device", "update", update_payload("99999999-9999-9999-9999-999999999999"))
    assert get(skipped).reason == REFUSED
    assert wait_status(server.control, "failed") == {"status": "failed", "reason": REFUSED}
    assert offers.empty() and device.pending_update() is None

    server.control.push("device", "fwup_public_keys", {"keys": [KEY]})
    get(keys)
    assert device.fwup_public_keys == [KEY]
    server.control.push("device", "update", update_payload("99999999-9999-9999-9999-999999999999"))
    assert get(offers).uuid == "99999999-9999-9999-9999-999999999999"


def test_configured_keys_and_their_checks(server: DevServer, make_device: DeviceFactory) -> None:
    with pytest.raises(nhc.InvalidArgument, match="fwup public key"):
        make_device(fwup_public_keys=["not a key"])
    device = connected(make_device(fwup_public_keys=[KEY], require_fwup_public_keys=True))
    assert device.fwup_public_keys == [KEY]
    (join,) = server.control.wait("device", "phx_join")
    assert "fwup_public_keys" not in join["payload"], "configured keys suffice"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the PTY shell is Linux only")
def test_console_shell_command_environment_and_inactivity_timeout(
    server: DevServer, make_device: DeviceFactory
) -> None:
    with pytest.raises(nhc.InvalidArgument, match="console_shell_env needs console_shell"):
        make_device(console=True, console_shell_env={"A": "b"})
    with pytest.raises(nhc.InvalidArgument, match="console_shell_timeout"):
        make_device(console_shell=["/bin/sh"], console_shell_timeout=0)
    device = make_device(
        console_shell=["/bin/sh", "-c", 'echo "$NHC_GREETING-$((6 * 7))"; exec cat'],
        console_shell_env={"NHC_GREETING": "hi"},
        console_shell_timeout=0.5,
    )
    connected(device)
    server.control.wait_joined("console")
    server.control.push("console", "dn", {"data": "\n"})
    printed = ""
    for count in range(1, 64):
        printed = "".join(m["payload"]["data"] for m in server.control.wait("console", "up", count=count))
        if "hi-42" in printed and "Session timeout due to inactivity" in printed:
            break
    assert "hi-42" in printed and "Session timeout due to inactivity" in printed, printed


def test_uploads_reach_the_application_when_not_declined(server: DevServer, make_device: DeviceFactory) -> None:
    device = make_device(console=True, console_decline_file_uploads=False)
    messages = events(device, "console_message")
    connected(device)
    server.control.wait_joined("console")
    server.control.push("console", "file-data/start", {"filename": "notes.txt"})
    event = get(messages)
    assert event.event == "file-data/start"
    # A declined upload prints a notice before the event; pushes keep their
    # order, so the first `up` the server gets is ours only if none was sent.
    device.console_output("marker")
    (first,) = server.control.wait("console", "up")
    assert first["payload"] == {"data": "marker"}


def test_console_upload_dir_stores_uploads_and_announces_2_0_0(
    server: DevServer, make_device: DeviceFactory, tmp_path: Path
) -> None:
    with pytest.raises(nhc.InvalidArgument, match="needs console"):
        make_device(console_upload_dir=tmp_path)
    with pytest.raises(nhc.InvalidArgument, match="needs console_upload_dir"):
        make_device(console=True, console_max_upload_size=10)
    uploads = tmp_path / "uploads"
    device = make_device(console=True, console_upload_dir=uploads, console_max_upload_size=4000)
    connected(device)
    server.control.wait_joined("console")
    (join,) = server.control.wait("console", "phx_join")
    assert join["payload"]["console_version"] == "2.0.0"
    content = bytes(range(256)) * 12
    assert server.control.upload_file("data.bin", content) == 1
    (saved,) = server.control.wait("console", "up")
    assert "Saved" in saved["payload"]["data"], saved
    assert (uploads / "data.bin").read_bytes() == content
    server.control.upload_file("../escape", b"x")
    refused = server.control.wait("console", "up", count=2)[1]
    assert "Upload refused" in refused["payload"]["data"], refused
    assert not (tmp_path / "escape").exists()
    source = tmp_path / "log.txt"
    source.write_bytes(b"a" * 1500)
    device.console_send_file(source)
    chunks = server.control.wait("console", "file-data", count=2)
    assert [c["payload"]["chunk"] for c in chunks] == [0, 1]
    (stop,) = server.control.wait("console", "file-data/stop")
    assert stop["payload"] == {"filename": "log.txt"}


def test_health_options_reach_the_report(server: DevServer, make_device: DeviceFactory, tmp_path: Path) -> None:
    with pytest.raises(nhc.InvalidArgument, match='has no "metric"'):
        make_device(extensions={"health": {"metric": lambda: {}}})
    temp = tmp_path / "temp"
    temp.write_text("51500\n")
    health: Dict[str, Any] = {
        "system_metrics": True,
        "cpu_temp_path": temp,
        "metadata": {"site": "lab"},
        "metrics": lambda: {"queue_depth": 3.0},
        "alarms": lambda: {"disk_full": "/data is full"},
        "checks": lambda: {"db": (True, "ok"), "net": {"pass": False, "note": "no route"}},
    }
    device = connected(make_device(extensions={"health": health}))
    server.control.wait("extensions", "health:attached")
    server.control.push("extensions", "health:check", {})
    (report,) = server.control.wait("extensions", "health:report")
    value = report["payload"]["value"]
    assert value["metrics"]["queue_depth"] == 3.0
    assert value["metrics"]["cpu_temp"] == 51.5
    assert value["metadata"] == {"site": "lab"}
    assert value["alarms"] == {"disk_full": "/data is full"}
    assert value["checks"]["db"] == {"pass": True, "note": "ok"}
    assert value["checks"]["net"] == {"pass": False, "note": "no route"}
    assert device.attached_extensions == ["health"]


def test_asyncio_device_takes_the_new_options(server: DevServer, tmp_path: Path) -> None:
    fw = firmware(server.control, "aio-auto", 200_000, seed=8)
    target = tmp_path / "aio.fw"

    async def main() -> List[Any]:
        seen: List[Any] = []
        async with async_device(
            server, auto_update={"path": target}, fwup_public_keys=[KEY], require_fwup_public_keys=True
        ) as device:
            await device.wait_joined(WAIT)
            assert device.fwup_public_keys == [KEY]
            server.control.push("device", "update", fw["update"])
            seen.append(await next_of(device, "update"))
            seen.append(await next_of(device, "update_finished"))
        return seen

    offered, done = run(main)
    assert offered.uuid == fw["update"]["firmware_meta"]["uuid"]
    assert done.ok, done
    assert target.read_bytes() == firmware_bytes(server.control, "aio-auto")
