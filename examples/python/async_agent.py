"""A NervesHub device agent with asyncio (``nhc.AsyncDevice``).

The same agent as ``agent.py``: joins with its firmware metadata, applies
every offered update into a file in ``--firmware-dir`` and "reboots"
(exits) when the server asks. Everything runs on the event loop.

    python examples/python/async_agent.py --url wss://localhost:PORT/socket/websocket \\
        --ca /tmp/pki/ca.pem --cert /tmp/pki/device.pem --key /tmp/pki/device-key.pem
"""

import argparse
import asyncio
import logging
import os
from pathlib import Path
from typing import List, Optional

import nerves_hub_channel as nhc

METADATA = {
    "nerves_fw_uuid": "6ee5a4a8-8b0e-4e1b-9c4f-2c1d5b7c8f00",
    "nerves_fw_product": "example",
    "nerves_fw_version": "1.0.0",
}


async def run(args: argparse.Namespace) -> int:
    secret = None
    if args.shared_secret:
        key, secret_value, identifier = args.shared_secret.split(":", 2)
        secret = nhc.SharedSecret(key, secret_value, identifier)
    firmware_dir = Path(args.firmware_dir)
    async with nhc.AsyncDevice(
        args.url, ca=args.ca, cert=args.cert, key=args.key, shared_secret=secret, metadata=METADATA
    ) as device:
        await device.wait_joined(30)
        print("joined: device", flush=True)
        async for event in device:
            if isinstance(event, nhc.UpdateInfo):
                target = firmware_dir / f"{event.uuid}.fw"
                print(f"update {event.version} -> {target}", flush=True)
                try:
                    # Returns once the image is downloaded, verified and written.
                    await device.apply_update(event, path=target)
                    print(f"update applied: {target}", flush=True)
                except nhc.UpdateError as e:
                    print(f"update failed: {e.reason}", flush=True)
            elif isinstance(event, nhc.UpdateProgress):
                print(f"{event.stage} {event.percent}%", flush=True)
            elif isinstance(event, nhc.Reboot):
                print("rebooting", flush=True)
                return 0
    return 1


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description="A NervesHub device agent (asyncio).")
    parser.add_argument("--url", default=os.environ.get("NHC_URL", "wss://localhost:4001/socket/websocket"))
    parser.add_argument("--ca", default=os.environ.get("NHC_CA"))
    parser.add_argument("--cert", default=os.environ.get("NHC_CERT"))
    parser.add_argument("--key", default=os.environ.get("NHC_KEY"))
    parser.add_argument("--shared-secret", help="KEY:SECRET:IDENTIFIER (NH1, with a /device-socket URL)")
    parser.add_argument("--firmware-dir", default=".", help="where updates are written")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    return asyncio.run(run(args))


if __name__ == "__main__":
    raise SystemExit(main())
