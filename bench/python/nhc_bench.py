"""Our Python module (blocking and asyncio APIs) under the push workloads of
bench/run.sh, against a running nhc-devserver. Prints one JSON object.
The inbound flood of these clients is bench/python_inbound.py's.

    python nhc_bench.py blocking|asyncio SERVER_JSON [latency=20] [seq=5000]
                        [pipe=50000] [window=100]
    python nhc_bench.py idle SERVER_JSON
"""

import asyncio
import json
import statistics
import sys
import threading
import time
from typing import Any, Callable, Dict, List

import nerves_hub_channel as nhc

PAYLOAD = {"value": 42}


def quantile(values: List[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[round((len(ordered) - 1) * p)]


def tls_options(info: Dict[str, Any]) -> Dict[str, Any]:
    return {"ca": info["ca"], "cert": info["device_cert"], "key": info["device_key"]}


# --- blocking --------------------------------------------------------------


class Pipeline:
    """Pushes `total` pings, the next one from each reply's callback."""

    def __init__(self, channel: "nhc.Channel", total: int) -> None:
        self.channel, self.total = channel, total
        self.sent = self.done = 0
        self.error: Any = None
        self.finished = threading.Event()

    def send(self) -> None:
        if self.sent < self.total:
            self.sent += 1
            self.channel.push_nowait("ping", PAYLOAD, self.on_reply)

    def on_reply(self, ok: bool, value: Any) -> None:
        if not ok:
            self.error = value
            self.finished.set()
            return
        self.done += 1
        if self.done == self.total:
            self.finished.set()
        else:
            self.send()


def blocking(info: Dict[str, Any], args: Dict[str, int]) -> Dict[str, Any]:
    out: Dict[str, Any] = {"client": "python-blocking", "version": nhc.__version__}
    ms = []
    for _ in range(args["latency"]):
        with nhc.Socket(info["wss_url"], **tls_options(info)) as sock:
            ch = sock.channel("room:py-latency")
            t0 = time.perf_counter()
            sock.connect()
            ch.join(timeout=30)
            ms.append((time.perf_counter() - t0) * 1e3)
    out["connect_join"] = {"n": len(ms), "median_ms": statistics.median(ms)}

    with nhc.Socket(info["ws_url"], outbound_capacity=4096, event_capacity=4096) as sock:
        ch = sock.channel("room:py-push")
        sock.connect()
        ch.join(timeout=30)

        n = args["seq"]
        us = []
        start = time.perf_counter()
        for _ in range(n):
            t0 = time.perf_counter()
            ch.push("ping", PAYLOAD)
            us.append((time.perf_counter() - t0) * 1e6)
        out["sequential"] = {
            "n": n,
            "median_us": quantile(us, 0.5),
            "p99_us": quantile(us, 0.99),
            "per_s": n / (time.perf_counter() - start),
        }

        # Each reply's callback sends the next push: `window` stay outstanding.
        total, window = args["pipe"], args["window"]
        pipeline = Pipeline(ch, total)
        cpu0, t0 = time.process_time(), time.perf_counter()
        for _ in range(window):
            pipeline.send()
        if not pipeline.finished.wait(300) or pipeline.error is not None:
            raise RuntimeError(f"pipelined pushes: {pipeline.done} of {total} done, error {pipeline.error!r}")
        elapsed, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        out["pipelined"] = {
            "n": total,
            "window": window,
            "per_s": total / elapsed,
            "cpu_s_per_10k": cpu * 1e4 / total,
        }

    return out


# --- asyncio ---------------------------------------------------------------


async def run_asyncio(info: Dict[str, Any], args: Dict[str, int]) -> Dict[str, Any]:
    out: Dict[str, Any] = {"client": "python-asyncio", "version": nhc.__version__}
    ms = []
    for _ in range(args["latency"]):
        sock = nhc.AsyncSocket(info["wss_url"], **tls_options(info))
        ch = sock.channel("room:pya-latency")
        t0 = time.perf_counter()
        sock.connect()
        await ch.join(timeout=30)
        ms.append((time.perf_counter() - t0) * 1e3)
        await sock.close()
    out["connect_join"] = {"n": len(ms), "median_ms": statistics.median(ms)}

    async with nhc.AsyncSocket(info["ws_url"], outbound_capacity=4096, event_capacity=4096) as sock:
        ch = sock.channel("room:pya-push")
        await ch.join(timeout=30)

        n = args["seq"]
        us = []
        start = time.perf_counter()
        for _ in range(n):
            t0 = time.perf_counter()
            await ch.push("ping", PAYLOAD)
            us.append((time.perf_counter() - t0) * 1e6)
        out["sequential"] = {
            "n": n,
            "median_us": quantile(us, 0.5),
            "p99_us": quantile(us, 0.99),
            "per_s": n / (time.perf_counter() - start),
        }

        total, window = args["pipe"], args["window"]
        remaining = [total]

        async def worker() -> None:
            while remaining[0] > 0:
                remaining[0] -= 1
                await ch.push("ping", PAYLOAD)

        cpu0, t0 = time.process_time(), time.perf_counter()
        await asyncio.wait_for(asyncio.gather(*(worker() for _ in range(window))), 300)
        elapsed, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        out["pipelined"] = {
            "n": total,
            "window": window,
            "per_s": total / elapsed,
            "cpu_s_per_10k": cpu * 1e4 / total,
        }

    return out


def parse_args(argv: List[str]) -> Dict[str, int]:
    args = {"latency": 20, "seq": 5000, "pipe": 50000, "window": 100}
    for item in argv:
        name, _, value = item.partition("=")
        if name not in args:
            raise SystemExit(f"unknown argument {item!r}; known: {', '.join(args)}")
        args[name] = int(value)
    return args


def idle(info: Dict[str, Any]) -> Dict[str, Any]:
    """Footprint of a process with one joined channel, 1 s after the join."""
    with nhc.Socket(info["wss_url"], **tls_options(info)) as sock:
        ch = sock.channel("device")
        sock.connect()
        ch.join(timeout=30)
        time.sleep(1)  # the measurement interval
        fields = {}
        with open("/proc/self/status") as f:
            for line in f:
                name, _, value = line.partition(":")
                fields[name] = value.split()[0] if value.split() else ""
        return {"client": "python-blocking", "rss_kib": int(fields["VmRSS"]), "threads": int(fields["Threads"])}


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "idle":
        with open(sys.argv[2]) as f:
            print(json.dumps(idle(json.load(f))))
        return
    if len(sys.argv) < 3 or sys.argv[1] not in ("blocking", "asyncio"):
        raise SystemExit(__doc__)
    with open(sys.argv[2]) as f:
        info = json.load(f)
    args = parse_args(sys.argv[3:])
    runners: Dict[str, Callable[[], Dict[str, Any]]] = {
        "blocking": lambda: blocking(info, args),
        "asyncio": lambda: asyncio.run(run_asyncio(info, args)),
    }
    print(json.dumps(runners[sys.argv[1]]()))


if __name__ == "__main__":
    main()
