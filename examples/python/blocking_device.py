"""A NervesHub device with the blocking API.

Connects with mutual TLS, joins the "device" channel with its firmware
metadata, and handles two server events:

* "update": pretends to install the firmware, reporting "fwup_progress";
* "reboot": acknowledges with "rebooting" and exits (a real device reboots).

Try it against the dev server (it prints the paths it uses)::

    nhc-devserver --pki-dir /tmp/pki   # prints {"wss_url": ..., "ca": ..., ...}
    python examples/python/blocking_device.py --url wss://localhost:PORT/socket/websocket \\
        --ca /tmp/pki/ca.pem --cert /tmp/pki/device.pem --key /tmp/pki/device-key.pem

Callbacks run on the library's delivery thread; this program hands the work
to its main thread through a queue, so that a long update never delays the
delivery of other events.
"""

import argparse
import logging
import os
import queue
import sys
from typing import Any, Dict, List, Optional, Tuple

import nerves_hub_channel as nhc

FIRMWARE = {
    "nerves_fw_uuid": "6ee5a4a8-8b0e-4e1b-9c4f-2c1d5b7c8f00",
    "nerves_fw_product": "example",
    "nerves_fw_version": "1.0.0",
    "nerves_fw_platform": "host",
    "nerves_fw_architecture": "x86_64",
}


def join_params() -> Dict[str, Any]:
    # Called again before every rejoin: report what is installed *now*.
    return dict(FIRMWARE)


def install(device: nhc.Channel, update: Dict[str, Any]) -> None:
    meta = update.get("firmware_meta") or {}
    print(f"update to {meta.get('version', '?')} from {update.get('firmware_url')}", flush=True)
    for value in range(0, 101, 20):
        # NervesHub never replies to device events: cast, do not push.
        device.cast("fwup_progress", {"stage": "updating", "value": value})
    FIRMWARE["nerves_fw_version"] = str(meta.get("version", FIRMWARE["nerves_fw_version"]))


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description="A NervesHub device with the blocking API.")
    parser.add_argument("--url", default=os.environ.get("NHC_URL", "wss://localhost:4001/socket/websocket"))
    parser.add_argument("--ca", default=os.environ.get("NHC_CA"))
    parser.add_argument("--cert", default=os.environ.get("NHC_CERT"))
    parser.add_argument("--key", default=os.environ.get("NHC_KEY"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    requests: "queue.Queue[Tuple[str, Dict[str, Any]]]" = queue.Queue()

    def on_state(change: nhc.StateChange) -> None:
        print(f"socket: {change.state}" + (f" ({change.error})" if change.error else ""), flush=True)

    with nhc.Socket(args.url, ca=args.ca, cert=args.cert, key=args.key, on_state=on_state) as sock:
        device = sock.channel("device", params=join_params)
        device.on("update", lambda payload: requests.put(("update", payload)))
        device.on("reboot", lambda payload: requests.put(("reboot", payload)))
        sock.connect()
        print("joined:", device.join(timeout=30), flush=True)
        while True:
            event, payload = requests.get()
            if event == "update":
                install(device, payload)
            elif event == "reboot":
                device.cast("rebooting", {})
                print("rebooting", flush=True)
                return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
