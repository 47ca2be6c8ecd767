"""The PyPI Phoenix client under the workloads of bench/run.sh that it can
do, against a running nhc-devserver. Prints one JSON object.

The client is phoenix-channels-python-client (the one bench/python_inbound.py
measures for the inbound flood). It subscribes to topics and receives; it
has no push with a reply, so the round-trip workloads are not applicable.
It has no TLS option either: the benchmark gives its websocket connection
the device's client certificate by overriding the one method that opens it.

    python pypi_bench.py SERVER_JSON [latency=20]
"""

import asyncio
import json
import ssl
import statistics
import sys
import time
from importlib import metadata
from typing import Any, Dict, List

from phoenix_channels_python_client import PHXChannelsClient
from websockets.asyncio.client import ClientConnection, connect

PACKAGE = "phoenix-channels-python-client"


def tls_context(info: Dict[str, Any]) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=info["ca"])
    context.load_cert_chain(info["device_cert"], info["device_key"])
    return context


class MutualTlsClient(PHXChannelsClient):
    """The client, connecting with a client certificate."""

    tls: ssl.SSLContext

    async def _connect(self) -> ClientConnection:
        return await connect(
            self.channel_socket_url,
            additional_headers=self.additional_headers,
            logger=self.logger,
            ssl=self.tls,
        )


async def connect_join(info: Dict[str, Any], n: int) -> Dict[str, Any]:
    tls = tls_context(info)
    ms: List[float] = []
    for _ in range(n):
        client = MutualTlsClient(info["wss_url"], "bench", auto_reconnect=False)
        client.tls = tls
        t0 = time.perf_counter()
        async with client:
            await client.subscribe_to_topic("room:pypi-latency")
            ms.append((time.perf_counter() - t0) * 1e3)
    return {"n": n, "median_ms": statistics.median(ms)}


def main() -> None:
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    with open(sys.argv[1]) as f:
        info = json.load(f)
    latency = 20
    for item in sys.argv[2:]:
        name, _, value = item.partition("=")
        if name == "latency":
            latency = int(value)
    out: Dict[str, Any] = {
        "client": "python-pypi",
        "package": PACKAGE,
        "version": metadata.version(PACKAGE),
        "websockets": metadata.version("websockets"),
        "connect_join": asyncio.run(connect_join(info, latency)),
        "sequential": None,
        "pipelined": None,
        "not_applicable": "no push with a reply in its API",
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
