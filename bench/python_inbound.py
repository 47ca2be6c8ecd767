"""Inbound throughput of the Python module against a pure-Python Phoenix client.

The dev server floods one joined channel (``POST /flood``) and each client
counts the messages in its most natural form:

* ``nhc callback``: the blocking API, a ``channel.on(event, handler)`` handler
  (run on the library's delivery thread);
* ``nhc async for``: the asyncio API, ``async for message in channel``;
* ``pypi <client>``: phoenix-channels-python-client (websockets + pydantic,
  all in Python), an ``async`` message handler given to ``subscribe_to_topic``.

Every handler does the same work: read ``payload["i"]`` and count. Each
measurement runs in a fresh child process (so its CPU time, all threads
included, belongs to that client alone; the dev server is another process)
after a warm-up flood, and scenarios alternate between repetitions. Reported:
messages/s (wall clock from the flood request to the last message) and
client CPU seconds (user + system) per 10,000 messages, as medians.

Run it with ``bench/run-python.sh`` (which builds and installs everything),
or directly: ``python bench/python_inbound.py [--count N] [--size B]``.
"""

import argparse
import asyncio
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Tuple

ROOT = Path(__file__).resolve().parents[1]
EVENT = "flood"
WARMUP = 2_000
TIMEOUT = 120.0
"""Seconds a flood may take before the run is declared stalled."""
PYPI_CLIENT = "phoenix-channels-python-client"

SCENARIOS = ("nhc_callback", "nhc_inline", "nhc_async_for", "pypi_phoenix_channels_python_client")
LABELS = {
    "nhc_callback": "nhc callback (blocking API)",
    "nhc_inline": "nhc callback (delivery=inline)",
    "nhc_async_for": "nhc async for (asyncio API)",
    "pypi_phoenix_channels_python_client": PYPI_CLIENT,
}


# -- the child: one client, one measured flood ----------------------------------


class Counter:
    """What every handler does per message: note its index, count it."""

    __slots__ = ("n", "target", "last")

    def __init__(self) -> None:
        self.n = 0
        self.target = 0
        self.last = -1

    def reset(self, target: int) -> None:
        self.n, self.target, self.last = 0, target, -1

    def hit(self, i: int) -> bool:
        self.last = i
        self.n += 1
        return self.n == self.target


def control(control_url: str, path: str, body: Dict[str, Any]) -> Any:
    request = urllib.request.Request(
        control_url.rstrip("/") + path,
        data=json.dumps(body).encode(),
        headers={"content-type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def voluntary_switches() -> int:
    """Of every thread of this process: how often one went to sleep."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_nvcsw


class Flooder:
    """Starts floods on one topic and measures them."""

    def __init__(self, control_url: str, topic: str, size: int, rate: int = 0) -> None:
        self.control_url, self.topic, self.size = control_url, topic, size
        self.rate = rate
        """Messages/s of the measured flood (0: full speed); the warm-up is never paced."""
        self.paced = False

    def start(self, count: int) -> None:
        # with_join_ref: the PyPI client drops V2 messages whose join_ref is
        # not its join's, fastlane broadcasts ([null, null, ...]) included, so
        # every client gets channel pushes: the same bytes for all of them.
        body: Dict[str, Any] = {"topic": self.topic, "event": EVENT, "count": count, "size": self.size,
                                "with_join_ref": True}
        if self.paced and self.rate > 0:
            body["rate"] = self.rate
        delivered = control(self.control_url, "/flood", body)["delivered"]
        if delivered != 1:
            raise RuntimeError(f"the flood reached {delivered} channels on {self.topic}, not 1")


class Measure:
    """Wall clock, CPU time and voluntary context switches of one measured flood."""

    def __init__(self, flooder: Flooder) -> None:
        flooder.paced = True
        self.wall, self.cpu, self.switches = time.perf_counter(), cpu_seconds(), voluntary_switches()

    def result(self, counter: Counter, count: int) -> Dict[str, Any]:
        if counter.n != count or counter.last != count - 1:
            raise RuntimeError(f"got {counter.n} of {count} messages, last index {counter.last}")
        return {"messages": count, "seconds": time.perf_counter() - self.wall,
                "cpu_seconds": cpu_seconds() - self.cpu,
                "voluntary_switches": voluntary_switches() - self.switches}


def run_nhc_callback(ws_url: str, flooder: Flooder, count: int, delivery: str = "threaded") -> Dict[str, Any]:
    import nerves_hub_channel as nhc

    counter, done = Counter(), threading.Event()

    def on_flood(payload: Any) -> None:
        if counter.hit(payload["i"]):
            done.set()

    with nhc.Socket(ws_url, delivery=delivery) as sock:  # type: ignore[arg-type]
        channel = sock.channel(flooder.topic)
        channel.on(EVENT, on_flood)
        sock.connect()
        channel.join(timeout=10)

        def flood(k: int) -> None:
            counter.reset(k)
            done.clear()
            flooder.start(k)
            if not done.wait(TIMEOUT):
                raise RuntimeError(f"stalled after {counter.n} of {k} messages")

        flood(WARMUP)
        measure = Measure(flooder)
        flood(count)
        return measure.result(counter, count)


def run_nhc_async_for(ws_url: str, flooder: Flooder, count: int) -> Dict[str, Any]:
    import nerves_hub_channel as nhc

    async def main() -> Dict[str, Any]:
        counter = Counter()
        async with nhc.AsyncSocket(ws_url) as sock:
            channel = sock.channel(flooder.topic)
            await channel.join(timeout=10)

            async def flood(k: int) -> None:
                counter.reset(k)
                flooder.start(k)
                async for message in channel:
                    if counter.hit(message.payload["i"]):
                        return

            async def bounded(k: int) -> None:
                await asyncio.wait_for(flood(k), TIMEOUT)

            await bounded(WARMUP)
            measure = Measure(flooder)
            await bounded(count)
            return measure.result(counter, count)

    return asyncio.run(main())


def run_pypi(ws_url: str, flooder: Flooder, count: int) -> Dict[str, Any]:
    from phoenix_channels_python_client import PHXChannelsClient

    async def main() -> Dict[str, Any]:
        counter, done = Counter(), asyncio.Event()

        async def on_message(message: Any) -> None:
            if counter.hit(message.payload["i"]):
                done.set()

        # Its topic queue drops the oldest message when full (1,000 by
        # default); sized so that nothing is dropped and every message counts.
        async with PHXChannelsClient(ws_url, "bench", max_topic_queue_size=count + WARMUP) as client:
            await client.subscribe_to_topic(flooder.topic, on_message)

            async def flood(k: int) -> None:
                counter.reset(k)
                done.clear()
                flooder.start(k)
                await asyncio.wait_for(done.wait(), TIMEOUT)

            await flood(WARMUP)
            measure = Measure(flooder)
            await flood(count)
            return measure.result(counter, count)

    return asyncio.run(main())


RUNNERS: Dict[str, Callable[[str, Flooder, int], Dict[str, Any]]] = {
    "nhc_callback": run_nhc_callback,
    "nhc_inline": lambda url, flooder, count: run_nhc_callback(url, flooder, count, "inline"),
    "nhc_async_for": run_nhc_async_for,
    "pypi_phoenix_channels_python_client": run_pypi,
}


def child(args: argparse.Namespace) -> None:
    global TIMEOUT
    if args.rate:
        # A paced flood takes count / rate seconds however fast the client is.
        TIMEOUT += 2 * args.count / args.rate
    flooder = Flooder(args.control_url, args.topic, args.size, args.rate)
    measurement = RUNNERS[args.scenario](args.ws_url, flooder, args.count)
    measurement["max_rss_kib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps(measurement), flush=True)


# -- the parent: server, repetitions, report ------------------------------------


def devserver_binary() -> Path:
    env = os.environ.get("NHC_DEVSERVER")
    if env:
        return Path(env)
    for profile in ("release", "debug"):
        candidate = ROOT / "target" / profile / "nhc-devserver"
        if candidate.exists():
            return candidate
    sys.exit("nhc-devserver not found: cargo build --release -p nhc-devserver, or set NHC_DEVSERVER")


def start_devserver(pki_dir: str) -> Tuple[subprocess.Popen, Dict[str, str]]:
    server = subprocess.Popen(
        [str(devserver_binary()), "--pki-dir", pki_dir],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert server.stdout is not None
    line = server.stdout.readline()
    if not line:
        server.wait()
        sys.exit(f"nhc-devserver exited with {server.returncode} before its ready line")
    return server, json.loads(line)


def run_child(info: Dict[str, str], scenario: str, topic: str, args: argparse.Namespace) -> Dict[str, Any]:
    command = [
        sys.executable, __file__, "--scenario", scenario, "--topic", topic,
        "--ws-url", info["ws_url"], "--control-url", info["control_url"],
        "--count", str(args.count), "--size", str(args.size), "--rate", str(args.rate),
    ]
    limit = TIMEOUT * 3 + (3 * args.count / args.rate if args.rate else 0)
    done = subprocess.run(command, capture_output=True, text=True, timeout=limit)
    if done.returncode != 0:
        raise RuntimeError(f"{scenario} failed ({done.returncode}):\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def version(dist: str) -> Optional[str]:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def git_revision() -> Optional[str]:
    try:
        out = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, timeout=10)
    except OSError:
        return None
    return out.stdout.strip() or None


def summarize(runs: List[Dict[str, Any]]) -> Dict[str, Any]:
    rates = [r["messages"] / r["seconds"] for r in runs]
    cpu = [r["cpu_seconds"] * 10_000 / r["messages"] for r in runs]
    return {
        "messages_per_second": statistics.median(rates),
        "cpu_seconds_per_10k": statistics.median(cpu),
        "messages_per_second_all": rates,
        "cpu_seconds_per_10k_all": cpu,
        "max_rss_kib": max(r["max_rss_kib"] for r in runs),
    }


def parent(args: argparse.Namespace) -> None:
    scenarios = [s for s in SCENARIOS if s in args.only] if args.only else list(SCENARIOS)
    if "pypi_phoenix_channels_python_client" in scenarios and version(PYPI_CLIENT) is None:
        sys.exit(f"{PYPI_CLIENT} is not installed: pip install {PYPI_CLIENT}")
    runs: Dict[str, List[Dict[str, Any]]] = {s: [] for s in scenarios}
    with tempfile.TemporaryDirectory(prefix="nhc-bench-pki-") as pki:
        server, info = start_devserver(pki)
        try:
            for rep in range(args.repeat):
                # Alternating scenarios spreads any drift of the machine over all of them.
                order = scenarios if rep % 2 == 0 else list(reversed(scenarios))
                for scenario in order:
                    topic = f"room:bench-{scenario}-{rep}"
                    run = run_child(info, scenario, topic, args)
                    runs[scenario].append(run)
                    print(f"  run {rep + 1}/{args.repeat} {LABELS[scenario]}: "
                          f"{run['messages'] / run['seconds']:,.0f} msg/s, "
                          f"{run['cpu_seconds'] * 10_000 / run['messages']:.3f} CPU s/10k",
                          flush=True)
        finally:
            server.terminate()
            server.wait(timeout=10)

    summary = {s: summarize(r) for s, r in runs.items()}
    report(summary, args)
    write_json(summary, runs, args)


def ratios(summary: Dict[str, Dict[str, Any]]) -> Dict[str, Dict[str, float]]:
    base = summary.get("pypi_phoenix_channels_python_client")
    if base is None:
        return {}
    out: Dict[str, Dict[str, float]] = {}
    for scenario in ("nhc_callback", "nhc_inline", "nhc_async_for"):
        if scenario in summary:
            s = summary[scenario]
            out[scenario] = {
                "throughput_vs_pypi": s["messages_per_second"] / base["messages_per_second"],
                "cpu_per_message_pypi_over_nhc": base["cpu_seconds_per_10k"] / s["cpu_seconds_per_10k"],
            }
    return out


def report(summary: Dict[str, Dict[str, Any]], args: argparse.Namespace) -> None:
    print(f"\ninbound flood: {args.count:,} messages x {args.size} B to one channel, "
          f"median of {args.repeat} run(s)\n")
    print(f"{'client':<36} {'messages/s':>12} {'CPU s / 10k msg':>16} {'max RSS MiB':>12}")
    for scenario, s in summary.items():
        print(f"{LABELS[scenario]:<36} {s['messages_per_second']:>12,.0f} "
              f"{s['cpu_seconds_per_10k']:>16.3f} {s['max_rss_kib'] / 1024:>12.1f}")
    for scenario, r in ratios(summary).items():
        print(f"\n{LABELS[scenario]} vs {PYPI_CLIENT}: {r['throughput_vs_pypi']:.1f}x the messages/s, "
              f"{r['cpu_per_message_pypi_over_nhc']:.1f}x less CPU per message")


def write_json(summary: Dict[str, Any], runs: Dict[str, Any], args: argparse.Namespace) -> None:
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    document = {
        "benchmark": "python_inbound",
        "date_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "git_revision": git_revision(),
        "workload": {"messages": args.count, "payload_bytes": args.size, "warmup_messages": WARMUP,
                     "repeat": args.repeat, "frame": "V2 JSON channel push, one channel"},
        "environment": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "load_average_at_end": os.getloadavg(),
            "nerves_hub_channel": version("nerves_hub_channel"),
            PYPI_CLIENT: version(PYPI_CLIENT),
            "websockets": version("websockets"),
            "pydantic": version("pydantic"),
        },
        "results": summary,
        "ratios": ratios(summary),
        "runs": runs,
    }
    out.write_text(json.dumps(document, indent=2) + "\n")
    print(f"\nwrote {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=50_000, help="messages per flood (50,000)")
    parser.add_argument("--size", type=int, default=256, help="payload bytes (256)")
    parser.add_argument("--rate", type=int, default=0,
                        help="messages/s of the measured floods, each sent alone (0: full speed)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per client; medians are reported (3)")
    parser.add_argument("--only", nargs="+", choices=SCENARIOS, help="run only these clients")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "python_inbound.json"))
    # Internal: one measurement in a child process.
    parser.add_argument("--scenario", choices=SCENARIOS, help=argparse.SUPPRESS)
    parser.add_argument("--topic", help=argparse.SUPPRESS)
    parser.add_argument("--ws-url", help=argparse.SUPPRESS)
    parser.add_argument("--control-url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.count < 1 or args.size < 0 or args.repeat < 1 or args.rate < 0:
        parser.error("--count and --repeat must be positive, --size and --rate not negative")
    if args.scenario:
        child(args)
    else:
        parent(args)


if __name__ == "__main__":
    main()
