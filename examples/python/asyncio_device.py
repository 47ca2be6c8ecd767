"""A NervesHub device with the asyncio API.

The same device as ``blocking_device.py``: connects with mutual TLS, joins
"device" with its firmware metadata, installs updates (reporting
"fwup_progress") and exits on "reboot" (a real device reboots). Messages
arrive by ``async for``; everything runs on the event loop's thread.

    python examples/python/asyncio_device.py --url wss://localhost:PORT/socket/websocket \\
        --ca /tmp/pki/ca.pem --cert /tmp/pki/device.pem --key /tmp/pki/device-key.pem
"""

import argparse
import asyncio
import logging
import os
import sys
from typing import Any, Dict, List, Optional

import nerves_hub_channel as nhc

FIRMWARE = {
    "nerves_fw_uuid": "0b7f3a52-3c5e-4f7e-8d1b-7e9a1c2d3e40",
    "nerves_fw_product": "example",
    "nerves_fw_version": "1.0.0",
    "nerves_fw_platform": "host",
    "nerves_fw_architecture": "x86_64",
}


def join_params() -> Dict[str, Any]:
    # Called on a library thread before every (re)join: only read state here.
    return dict(FIRMWARE)


async def install(device: nhc.AsyncChannel, update: Dict[str, Any]) -> None:
    meta = update.get("firmware_meta") or {}
    print(f"update to {meta.get('version', '?')} from {update.get('firmware_url')}", flush=True)
    for value in range(0, 101, 20):
        await asyncio.sleep(0)  # a real download and flash happen here
        # NervesHub never replies to device events: cast, do not push.
        device.cast("fwup_progress", {"stage": "updating", "value": value})
    FIRMWARE["nerves_fw_version"] = str(meta.get("version", FIRMWARE["nerves_fw_version"]))


async def run(url: str, ca: Optional[str], cert: Optional[str], key: Optional[str]) -> int:
    def on_state(change: nhc.StateChange) -> None:
        print(f"socket: {change.state}" + (f" ({change.error})" if change.error else ""), flush=True)

    async with nhc.AsyncSocket(url, ca=ca, cert=cert, key=key, on_state=on_state) as sock:
        device = sock.channel("device", params=join_params)
        print("joined:", await device.join(timeout=30), flush=True)
        async for message in device:
            if message.event == "update":
                await install(device, message.payload)
            elif message.event == "reboot":
                device.cast("rebooting", {})
                print("rebooting", flush=True)
                return 0
    return 1


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description="A NervesHub device with the asyncio API.")
    parser.add_argument("--url", default=os.environ.get("NHC_URL", "wss://localhost:4001/socket/websocket"))
    parser.add_argument("--ca", default=os.environ.get("NHC_CA"))
    parser.add_argument("--cert", default=os.environ.get("NHC_CERT"))
    parser.add_argument("--key", default=os.environ.get("NHC_KEY"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    return asyncio.run(run(args.url, args.ca, args.cert, args.key))


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
