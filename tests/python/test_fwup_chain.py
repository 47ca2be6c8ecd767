"""The real update chain from Python (issue 22; tests/fwup_chain.rs has
every case): a signed .fw applied by the real fwup to the inactive slot of
an A/B disk image, the next boot reporting it, and refused firmware leaving
the active slot alone. Fixtures come from tests/fixtures/fwup-fixture.sh."""

import base64
import os
import subprocess
from pathlib import Path
from typing import Any, Dict, List, Optional

import pytest

import nerves_hub_channel as nhc
from conftest import ROOT, WAIT, DevServer, fwup_binary, get
from test_device import DeviceFactory, connected, events, make_device, wait_status

ENV_SIZE = 8192
"""The U-Boot environment's size in tests/fixtures/fwup.conf, at the disk's start."""


class Fixture:
    """One test's keys, .fw files and disk image."""

    def __init__(self, fwup: Path, directory: Path) -> None:
        self.fwup = fwup
        self.dir = directory
        subprocess.run(
            ["bash", str(ROOT / "tests" / "fixtures" / "fwup-fixture.sh"), str(fwup), str(directory)],
            check=True,
        )
        self.disk = directory / "disk.img"
        self.key = (directory / "key.pub").read_text().strip()

    def env(self) -> Dict[str, str]:
        return dict(nhc.read_uboot_env(self.disk, ENV_SIZE))

    def uuid(self, name: str) -> str:
        out = subprocess.run(
            [str(self.fwup), "-m", "--metadata-key", "meta-uuid", "-i", str(self.dir / name)],
            check=True, capture_output=True, text=True,
        )
        return out.stdout.strip()

    def sink(self) -> List[str]:
        return [str(self.fwup), "--apply", "--no-unmount", "-d", str(self.disk), "--task", "upgrade"]

    def validated(self) -> Optional[bool]:
        value = self.env().get("nerves_fw_validated")
        return None if value is None else value == "1"

    def offer(self, server: DevServer, name: str) -> Dict[str, Any]:
        data = base64.b64encode((self.dir / name).read_bytes()).decode()
        added = server.control.call("/firmware", {"name": name, "base64": data, "fw": True})
        return dict(added["update"])


@pytest.fixture
def fx(tmp_path: Path) -> Fixture:
    fwup = fwup_binary()
    if fwup is None:
        why = "fwup not found (NHC_FWUP, target/tools/fwup): run scripts/setup.sh"
        if os.environ.get("CI") == "true":
            pytest.fail(why)
        pytest.skip(why)
    return Fixture(fwup, tmp_path / "fwup")


def booted(make_device: DeviceFactory, fx: Fixture) -> nhc.Device:
    """A device running from the disk: metadata and validation from its environment."""
    return make_device(
        metadata=None,
        uboot_env_path=fx.disk,
        uboot_env_size=ENV_SIZE,
        firmware_validated=fx.validated,
        validation_poll_interval=0.02,
        auto_update={"fwup": fx.sink(), "idle_timeout": 30.0},
    )


def test_a_signed_update_switches_slots_and_the_next_boot_reports_it(
    server: DevServer, make_device: DeviceFactory, fx: Fixture
) -> None:
    server.control.call("/public_keys", {"fwup": [fx.key]})
    device = booted(make_device, fx)
    keys = events(device, "fwup_public_keys")
    finished = events(device, "update_finished")
    connected(device)
    assert get(keys).keys == (fx.key,)
    update = fx.offer(server, "v2.fw")
    assert update["firmware_meta"]["uuid"] == fx.uuid("v2.fw")
    server.control.push("device", "update", update)
    done = get(finished, WAIT * 3)
    assert isinstance(done, nhc.UpdateFinished) and done.ok, done
    assert wait_status(server.control, "completed") == {"status": "completed"}
    env = fx.env()
    assert env["nerves_fw_active"] == "b"
    assert env["b.nerves_fw_uuid"] == fx.uuid("v2.fw")
    device.close()

    # The next boot reads the environment again.
    server.control.reset()
    rebooted = connected(booted(make_device, fx))
    (join,) = server.control.wait("device", "phx_join")
    assert join["payload"]["nerves_fw_uuid"] == fx.uuid("v2.fw")
    assert join["payload"]["meta"]["firmware_validated"] is False
    subprocess.run(
        [str(fx.fwup), "-a", "-q", "-U", "-t", "validate", "-d", str(fx.disk), "-i", str(fx.dir / "v2.fw")],
        check=True,
    )
    server.control.wait("device", "firmware_validated")
    rebooted.close()


def test_unsigned_firmware_is_refused_with_fwups_message(
    server: DevServer, make_device: DeviceFactory, fx: Fixture
) -> None:
    server.control.call("/public_keys", {"fwup": [fx.key]})
    before = fx.env()
    device = booted(make_device, fx)
    keys = events(device, "fwup_public_keys")
    finished = events(device, "update_finished")
    connected(device)
    get(keys)
    server.control.push("device", "update", fx.offer(server, "unsigned.fw"))
    done = get(finished, WAIT * 3)
    reason = 'FWUP error : "Expecting signed firmware archive."'
    assert not done.ok and done.reason == reason, done
    assert wait_status(server.control, "failed") == {"status": "failed", "reason": reason}
    assert fx.env() == before


def test_without_keys_a_fwup_update_is_refused(
    server: DevServer, make_device: DeviceFactory, fx: Fixture
) -> None:
    server.control.call("/public_keys", {"fwup": []})
    device = booted(make_device, fx)
    skipped = events(device, "update_ignored")
    connected(device)
    server.control.push("device", "update", fx.offer(server, "v2.fw"))
    refused = "Refusing unverified firmware : no public keys available"
    assert get(skipped).reason == refused
    assert wait_status(server.control, "failed") == {"status": "failed", "reason": refused}
    assert fx.env()["nerves_fw_active"] == "a"
    device.close()

    # The explicit opt-out: fwup then applies even an unsigned archive.
    server.control.reset()
    server.control.call("/public_keys", {"fwup": []})
    allowed = make_device(
        metadata=None, uboot_env_path=fx.disk, uboot_env_size=ENV_SIZE,
        auto_update={"fwup": fx.sink()}, allow_unverified_firmware=True,
    )
    finished = events(allowed, "update_finished")
    connected(allowed)
    server.control.push("device", "update", fx.offer(server, "unsigned.fw"))
    done = get(finished, WAIT * 3)
    assert done.ok, done
    assert fx.env()["b.nerves_fw_uuid"] == fx.uuid("unsigned.fw")
