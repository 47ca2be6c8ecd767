"""The MessagePack serializer (vsn 3.0.0) from Python: payloads are still
Python objects (bytes for a binary payload), blocking and asyncio, and a
device runs an update with progress over it."""

import asyncio
import queue
from pathlib import Path
from typing import Any, List

import nerves_hub_channel as nhc
from conftest import FAST, WAIT, DevServer, get
from test_device import METADATA, firmware, firmware_bytes, wait_status


def connection_serializers(server: DevServer) -> List[str]:
    return [c["serializer"] for c in server.control.connections()]


def test_blocking_socket_joins_pushes_and_receives(server: DevServer) -> None:
    sock = nhc.Socket(server.ws_url, serializer="msgpack", **FAST)
    try:
        sock.connect()
        sock.wait_connected(timeout=WAIT)
        assert connection_serializers(server) == ["msgpack"]
        chan = sock.channel("room:mp", params={"serial": "abc"})
        assert chan.join() == {}
        (join,) = server.control.wait("room:mp", "phx_join")
        assert join["payload"] == {"serial": "abc"}
        payload = {"a": [1, 2.5, None, True, "é"], "big": 2**64 - 1, "neg": -(2**63)}
        assert chan.push("ping", payload) == payload
        # A whole binary payload travels as MessagePack bin and comes back as bytes.
        assert chan.push("blob", b"\x00\x01\xffdata") == b"\x00\x01\xffdata"
        got: "queue.Queue[Any]" = queue.Queue()
        chan.on("news", got.put)
        assert server.control.push("room:mp", "news", {"version": "1.2.3"}) == 1
        assert get(got) == {"version": "1.2.3"}
    finally:
        sock.close()


def test_asyncio_socket_over_msgpack(server: DevServer) -> None:
    async def main() -> None:
        async with nhc.AsyncSocket(server.ws_url, serializer="msgpack", **FAST) as sock:
            await sock.wait_connected(WAIT)
            chan = sock.channel("room:amp")
            assert await chan.join() == {}
            assert await chan.push("ping", {"n": 1}) == {"n": 1}
            assert connection_serializers(server) == ["msgpack"]

    asyncio.run(asyncio.wait_for(main(), WAIT * 3))


def test_device_update_with_progress_over_msgpack(server: DevServer, tmp_path: Path) -> None:
    fw = firmware(server.control, "mp-file", 300_000, seed=5)
    target = tmp_path / "next.fw"
    options = {**FAST, "metadata": METADATA, **server.device_auth("py-msgpack-device")}

    async def main() -> List[int]:
        async with nhc.AsyncDevice(options.pop("url"), serializer="msgpack", fwup_version="1.13.2", **options) as device:
            await device.wait_joined(WAIT)
            assert connection_serializers(server) == ["msgpack"]
            server.control.push("device", "update", fw["update"])
            update = await device.wait_for_update(WAIT)
            await device.apply_update(update, path=target)
            percents: List[int] = []
            async for event in device:
                if isinstance(event, nhc.UpdateProgress):
                    percents.append(event.percent)
                elif isinstance(event, nhc.UpdateFinished):
                    assert event.ok
                    return percents
        raise AssertionError("no update_finished event")

    percents = asyncio.run(asyncio.wait_for(main(), WAIT * 3))
    assert percents and percents[-1] == 100, percents
    assert target.read_bytes() == firmware_bytes(server.control, "mp-file")
    (join,) = server.control.wait("device", "phx_join")
    assert join["payload"]["fwup_version"] == "1.13.2"
    assert wait_status(server.control, "completed") == {"status": "completed"}


def test_blocking_device_joins_over_msgpack(server: DevServer) -> None:
    auth = server.device_auth("py-msgpack-blocking")
    device = nhc.Device(auth.pop("url"), serializer="msgpack", metadata=METADATA, console=True, **auth, **FAST)
    try:
        device.connect()
        device.wait_joined(timeout=WAIT)
        server.control.wait_joined("console")
        assert connection_serializers(server) == ["msgpack"]
    finally:
        device.close()
