"""The NervesHub device layer through asyncio (`nhc.AsyncDevice`)."""

import asyncio
from pathlib import Path
from typing import Any, Awaitable, Callable, Dict, List, TypeVar

import pytest

import nerves_hub_channel as nhc
from conftest import FAST, WAIT, DevServer
from test_device import METADATA, firmware, firmware_bytes, wait_status

T = TypeVar("T")


def run(main: Callable[[], Awaitable[T]]) -> T:
    async def bounded() -> T:
        return await asyncio.wait_for(main(), WAIT * 3)

    return asyncio.run(bounded())


def async_device(server: DevServer, **kwargs: Any) -> nhc.AsyncDevice:
    """An AsyncDevice authenticated over NH1 (one device per test), unless
    the test gives a `url` (and its credentials)."""
    options: Dict[str, Any] = {**FAST, "metadata": METADATA}
    if "url" not in kwargs:
        options.update(server.device_auth("py-async-device"))
    options.update(kwargs)
    return nhc.AsyncDevice(options.pop("url"), **options)


async def next_of(device: nhc.AsyncDevice, kind: str) -> Any:
    """The next event of `kind`, skipping others."""
    async for event in device:
        if event.kind == kind:
            return event
    raise AssertionError(f"the device closed before a {kind!r} event")


def test_join_then_update_applied_with_progress(server: DevServer, tmp_path: Path) -> None:
    fw = firmware(server.control, "aio-file", 1024 * 1024 + 4321, seed=3)
    target = tmp_path / "next.fw"

    async def main() -> List[nhc.UpdateProgress]:
        async with async_device(server, fwup_version="1.13.2") as device:
            await device.wait_joined(WAIT)
            assert device.joined and device.state == "connected"
            server.control.push("device", "update", fw["update"])
            update = await next_of(device, "update")
            assert isinstance(update, nhc.UpdateInfo)
            assert update.version == fw["update"]["firmware_meta"]["version"]
            await device.apply_update(update, path=target)
            progress: List[nhc.UpdateProgress] = []
            async for event in device:
                if isinstance(event, nhc.UpdateProgress):
                    progress.append(event)
                elif isinstance(event, nhc.UpdateFinished):
                    assert event.ok
                    return progress
        raise AssertionError("no update_finished event")

    progress = run(main)
    assert target.read_bytes() == firmware_bytes(server.control, "aio-file")
    percents = [p.percent for p in progress]
    assert percents[-1] == 100 and all(a < b for a, b in zip(percents, percents[1:])), percents
    (join,) = server.control.wait("device", "phx_join")
    assert join["payload"]["nerves_fw_version"] == "1.0.0"
    assert join["payload"]["fwup_version"] == "1.13.2"
    assert wait_status(server.control, "completed") == {"status": "completed"}


def test_a_failed_update_raises_update_error(server: DevServer, tmp_path: Path) -> None:
    fw = firmware(server.control, "aio-corrupt", 200_000)
    server.control.call("/firmware_faults", {"name": "aio-corrupt", "corrupt_at": 10})
    target = tmp_path / "bad.fw"

    async def main() -> nhc.UpdateError:
        async with async_device(server) as device:
            await device.wait_joined(WAIT)
            server.control.push("device", "update", dict(fw["update"], partials_checksums=[]))
            update = await device.wait_for_update(WAIT)
            with pytest.raises(nhc.UpdateError) as info:
                await device.apply_update(update, path=target)
            return info.value

    error = run(main)
    assert "Checksum mismatch" in error.reason
    assert wait_status(server.control, "failed")["reason"] == error.reason
    assert not target.exists()


def test_decisions_reboot_and_identify(server: DevServer) -> None:
    fw = firmware(server.control, "aio-decide", 1000)

    async def main() -> None:
        async with async_device(server) as device:
            await device.wait_joined(WAIT)
            server.control.push("device", "update", fw["update"])
            await device.wait_for_update(WAIT)
            device.reschedule_update(60, "not now")
            server.control.push("device", "reboot", {})
            assert isinstance(await next_of(device, "reboot"), nhc.Reboot)
            # The acknowledgement was sent before the event was delivered.
            assert len(server.control.wait("device", "rebooting")) == 1
            server.control.push("device", "identify", {})
            assert isinstance(await next_of(device, "identify"), nhc.Identify)

    run(main)
    assert wait_status(server.control, "rescheduled") == {
        "status": "rescheduled",
        "delay_for": 60000,
        "reason": "not now",
    }


def test_console_round_trip_and_health_report(server: DevServer) -> None:
    async def main() -> None:
        options = dict(console=True, extensions={"health": True})
        async with async_device(server, **options) as device:
            await device.wait_joined(WAIT)
            server.control.wait_joined("console")
            server.control.push("console", "dn", {"data": "uname\r"})
            event = await next_of(device, "console_input")
            device.console_output(f"ran {event.data}")
            server.control.wait("extensions", "health:attached")
            server.control.push("extensions", "health:check", {})
            check = await next_of(device, "extension")
            while check.event != "health_check":
                check = await next_of(device, "extension")
            # The report is sent after the event: wait for it before closing.
            (report,) = server.control.wait("extensions", "health:report")
            assert "metrics" in report["payload"]["value"]
            (up,) = server.control.wait("console", "up")
            assert up["payload"] == {"data": "ran uname\r"}

    run(main)


def test_nh1_connects_and_iteration_ends_on_close(server: DevServer) -> None:
    server.control.call("/shared_secret", {"key": "nhd_aio", "secret": "aio-secret", "identifier": "aio-dev"})
    url = server.device_socket_url

    async def main() -> List[str]:
        device = async_device(server, url=url, shared_secret=nhc.SharedSecret("nhd_aio", "aio-secret", "aio-dev"))
        device.connect()
        await device.wait_connected(WAIT)
        await device.wait_joined(WAIT)
        kinds: List[str] = []
        closing = asyncio.ensure_future(device.close())
        async for event in device:
            kinds.append(event.kind)
        await closing
        return kinds

    kinds = run(main)
    assert "channel" in kinds
    (join,) = server.control.wait("device", "phx_join")
    assert join["identity"] == "aio-dev"
