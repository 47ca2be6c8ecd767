"""A NervesHub device agent with the blocking API (``nhc.Device``).

Connects with mutual TLS (or an NH1 shared secret), joins with its firmware
metadata, applies every offered update into a file in ``--firmware-dir``
(downloaded, verified against the update's checksums, progress reported),
and "reboots" (exits) when the server asks.

Try it against the dev server (it prints the paths it uses)::

    nhc-devserver --pki-dir /tmp/pki   # prints {"wss_url": ..., "ca": ..., ...}
    python examples/python/agent.py --url wss://localhost:PORT/socket/websocket \\
        --ca /tmp/pki/ca.pem --cert /tmp/pki/device.pem --key /tmp/pki/device-key.pem

Handlers run on the library's delivery thread; they only hand events to
the main thread through a queue, so a long update never delays delivery.
"""

import argparse
import logging
import os
import queue
from pathlib import Path
from typing import List, Optional

import nerves_hub_channel as nhc

METADATA = {
    "nerves_fw_uuid": "6ee5a4a8-8b0e-4e1b-9c4f-2c1d5b7c8f00",
    "nerves_fw_product": "example",
    "nerves_fw_version": "1.0.0",
    "nerves_fw_platform": "host",
    "nerves_fw_architecture": "x86_64",
}


def parse_args(argv: Optional[List[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="A NervesHub device agent (blocking API).")
    parser.add_argument("--url", default=os.environ.get("NHC_URL", "wss://localhost:4001/socket/websocket"))
    parser.add_argument("--ca", default=os.environ.get("NHC_CA"))
    parser.add_argument("--cert", default=os.environ.get("NHC_CERT"))
    parser.add_argument("--key", default=os.environ.get("NHC_KEY"))
    parser.add_argument("--shared-secret", help="KEY:SECRET:IDENTIFIER (NH1, with a /device-socket URL)")
    parser.add_argument("--firmware-dir", default=".", help="where updates are written")
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    secret = None
    if args.shared_secret:
        key, secret_value, identifier = args.shared_secret.split(":", 2)
        secret = nhc.SharedSecret(key, secret_value, identifier)
    firmware_dir = Path(args.firmware_dir)

    todo: "queue.Queue[nhc.DeviceEvent]" = queue.Queue()
    with nhc.Device(
        args.url,
        ca=args.ca,
        cert=args.cert,
        key=args.key,
        shared_secret=secret,
        metadata=METADATA,
        on_state=lambda change: print(f"connection: {change.state}", flush=True),
    ) as device:
        for kind in ("update", "update_progress", "reboot", "identify"):
            device.on(kind, todo.put)
        device.connect()
        device.wait_joined(timeout=30)
        print("joined: device", flush=True)
        while True:
            event = todo.get()
            if isinstance(event, nhc.UpdateInfo):
                target = firmware_dir / f"{event.uuid}.fw"
                print(f"update {event.version} -> {target}", flush=True)
                device.apply_update(event, path=target)
                try:
                    device.wait_update()
                    print(f"update applied: {target}", flush=True)
                except nhc.UpdateError as e:
                    print(f"update failed: {e.reason}", flush=True)
            elif isinstance(event, nhc.UpdateProgress):
                print(f"{event.stage} {event.percent}%", flush=True)
            elif isinstance(event, nhc.Identify):
                print("identify: blinking the LED", flush=True)
            elif isinstance(event, nhc.Reboot):
                # `rebooting` was already sent; a real device reboots here.
                print("rebooting", flush=True)
                return 0


if __name__ == "__main__":
    raise SystemExit(main())
