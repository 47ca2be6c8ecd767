"""The examples run as devices against the dev server, over mutual TLS."""

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, WAIT, DevServer
from test_device import wait_status

EXAMPLES = ["blocking_device.py", "asyncio_device.py"]


@pytest.mark.parametrize("example", EXAMPLES)
def test_example_device(server: DevServer, example: str) -> None:
    proc = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "examples" / "python" / example),
            "--url",
            server.wss_url,
            "--ca",
            server.ca,
            "--cert",
            server.device_cert,
            "--key",
            server.device_key,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        server.control.wait_joined("device", timeout=30)
        (join,) = server.control.wait("device", "phx_join")
        assert join["payload"]["nerves_fw_version"] == "1.0.0"
        update = {
            "update_available": True,
            "firmware_url": "http://localhost/fw.fw",
            "firmware_meta": {"version": "2.0.0", "uuid": "u-2"},
        }
        assert server.control.push("device", "update", update) == 1
        progress = server.control.wait("device", "fwup_progress", count=6)
        assert [p["payload"]["value"] for p in progress] == [0, 20, 40, 60, 80, 100]
        server.control.push("device", "reboot", {})
        server.control.wait("device", "rebooting")
        out, _ = proc.communicate(timeout=WAIT * 3)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, out
    assert "joined:" in out and "rebooting" in out, out


AGENTS = ["agent.py", "async_agent.py"]


@pytest.mark.parametrize("example", AGENTS)
def test_example_agent_applies_an_update_and_reboots(server: DevServer, example: str, tmp_path: Path) -> None:
    fw = server.control.call("/firmware", {"name": f"agent-{example}", "size": 200_000, "seed": 5})
    proc = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "examples" / "python" / example),
            "--url",
            server.wss_url,
            "--ca",
            server.ca,
            "--cert",
            server.device_cert,
            "--key",
            server.device_key,
            "--firmware-dir",
            str(tmp_path),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        server.control.wait_joined("device", timeout=30)
        (join,) = server.control.wait("device", "phx_join")
        assert join["payload"]["nerves_fw_version"] == "1.0.0"
        assert server.control.push("device", "update", fw["update"]) == 1
        assert wait_status(server.control, "completed") == {"status": "completed"}
        server.control.push("device", "reboot", {})
        server.control.wait("device", "rebooting")
        out, _ = proc.communicate(timeout=WAIT * 3)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, out
    assert "update applied" in out and "rebooting" in out, out
    uuid = fw["update"]["firmware_meta"]["uuid"]
    written = (tmp_path / f"{uuid}.fw").read_bytes()
    assert len(written) == fw["size"]
    assert hashlib.sha256(written).hexdigest().upper() == fw["checksum"]
