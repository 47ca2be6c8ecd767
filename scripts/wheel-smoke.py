"""Checks an installed nerves_hub_channel wheel from the interpreter it is
installed for (scripts/wheels.sh runs it with an aarch64 CPython under
qemu-user): the import, the compiled module's architecture, and a NervesHub
device that joins the dev server with an NH1 shared secret.

Usage: python wheel-smoke.py READY_JSON PRODUCT_KEY SECRET EXPECTED_MACHINE
(READY_JSON: the file `nhc-devserver --ready-file` writes). Plain Python, no
pytest: the emulated interpreter has only the standard library."""

import json
import platform
import sys

import nerves_hub_channel as nhc


def main() -> int:
    ready_file, key, secret, machine = sys.argv[1:5]
    native = nhc._native.__file__
    print(f"python {platform.python_version()} on {platform.machine()}; module {native}")
    if platform.machine() != machine:
        print(f"expected to run on {machine}, not {platform.machine()}", file=sys.stderr)
        return 1
    with open(ready_file) as f:
        ready = json.load(f)
    with open(ready["ca"], "rb") as f:
        ca = f.read()
    device = nhc.Device(
        ready["device_socket_url"],
        ca=ca,
        shared_secret=(key, secret, f"wheel-{machine}-0001"),
        metadata={"nerves_fw_product": "wheel-smoke", "nerves_fw_version": "1.0.0"},
    )
    try:
        device.connect()
        # Emulation is slow: the join has a minute.
        device.wait_joined(timeout=60)
        print(f"joined: {device.joined}, state: {device.state}")
        if not (device.joined and device.state == "connected"):
            return 1
    finally:
        device.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
