#!/usr/bin/env python3
"""Writes docs/benchmarks.md from the JSON that bench/run.sh's clients print.

    python3 bench/report.py RESULTS_DIR OUTPUT.md

RESULTS_DIR holds one NAME.json per client run (see bench/run.sh) and
meta.json (versions, the stripped library size). Standard library only.
"""

import datetime
import json
import os
import platform
import sys
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

Result = Dict[str, Any]

# Row label of each client in the tables, in display order.
CLIENTS = [
    ("c", "nerves_hub_channel, C API"),
    ("c-polled", "nerves_hub_channel, C API, polled delivery"),
    ("python-blocking", "nerves_hub_channel, Python blocking"),
    ("python-asyncio", "nerves_hub_channel, Python asyncio"),
    ("js", "phoenix (npm) on Node"),
    ("python-pypi", "phoenix-channels-python-client (PyPI)"),
    ("raw", "raw websocket reader (no JSON)"),
]


def load(results: Path) -> Dict[str, Result]:
    data = {}
    for path in sorted(results.glob("*.json")):
        try:
            data[path.stem] = json.loads(path.read_text())
        except ValueError as e:
            data[path.stem] = {"error": f"unreadable output: {e}"}
    return data


# bench/python_inbound.py's scenarios, and the client rows they fill.
INBOUND = {
    "nhc_callback": "python-blocking",
    "nhc_inline": "python-inline",
    "nhc_async_for": "python-asyncio",
    "pypi_phoenix_channels_python_client": "python-pypi",
}


def merge_inbound(data: Dict[str, Result]) -> None:
    """Moves the Python clients' floods (bench/python_inbound.py) into their rows."""
    inbound = data.pop("python-inbound", None)
    if not inbound or "results" not in inbound:
        return
    workload = inbound.get("workload", {})
    for scenario, client in INBOUND.items():
        r = inbound["results"].get(scenario)
        if r is None or client not in data or "error" in data[client]:
            continue
        data[client]["flood"] = {
            "n": workload.get("messages"),
            "size": workload.get("payload_bytes"),
            "per_s": r["messages_per_second"],
            "cpu_s_per_10k": r["cpu_seconds_per_10k"],
            "runs": workload.get("repeat"),
        }


def get(data: Dict[str, Result], client: str, *keys: str) -> Optional[float]:
    value: Any = data.get(client)
    for key in keys:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def fmt(value: Optional[float], digits: int = 0) -> str:
    if value is None:
        return "n/a"
    if digits == 0:
        return f"{value:,.0f}"
    return f"{value:,.{digits}f}"


def ratio(num: Optional[float], den: Optional[float]) -> Optional[float]:
    if num is None or den is None or den == 0:
        return None
    return num / den


def fmt_ratio(value: Optional[float]) -> str:
    return "n/a" if value is None else f"{value:.2f}x"


def machine() -> List[str]:
    model, cores = "unknown", os.cpu_count()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = "unknown"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    return [
        f"- CPU: {model}, {cores} cores (`nproc`: {len(os.sched_getaffinity(0))})",
        f"- Memory: {mem}",
        f"- Kernel: {platform.system()} {platform.release()} ({platform.machine()})",
    ]


def load_line(meta: Result) -> List[str]:
    if "loadavg_start" not in meta:
        return []
    return [
        f"- Load average (1, 5, 15 min) before the clients: {meta['loadavg_start']}; after: "
        f"{meta.get('loadavg_end', 'n/a')} (other work on the machine makes the figures noisier)"
    ]


def versions(data: Dict[str, Result], meta: Result) -> List[str]:
    js, pypi = data.get("js", {}), data.get("python-pypi", {})
    lines = [
        f"- nerves_hub_channel {data.get('c', {}).get('version', 'n/a')}, built by {meta.get('rustc', 'n/a')}",
        f"- C compiler: {meta.get('cc', 'n/a')}",
        f"- Node {meta.get('node', 'n/a')}, npm `phoenix` {js.get('version', 'n/a')}, "
        f"`ws` {js.get('ws_version', 'n/a')}",
        f"- Python {meta.get('python', 'n/a')}; PyPI client: "
        f"`{pypi.get('package', 'n/a')}` {pypi.get('version', 'n/a')}",
    ]
    return lines


def table(header: List[str], rows: List[List[str]]) -> List[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(row) + " |" for row in rows]
    return out


def results_table(data: Dict[str, Result]) -> List[str]:
    header = [
        "client",
        "connect+TLS+join median (ms)",
        "round trip median (µs)",
        "round trip p99 (µs)",
        "pipelined (round trips/s)",
        "pipelined CPU (s / 10k)",
        "flood (msgs/s)",
        "flood CPU (s / 10k msgs)",
    ]
    rows = []
    for key, label in CLIENTS:
        if key not in data:
            continue
        if "error" in data[key]:
            rows.append([label, f"failed: {data[key]['error']}"] + [""] * (len(header) - 2))
            continue
        rows.append(
            [
                label,
                fmt(get(data, key, "connect_join", "median_ms"), 2),
                fmt(get(data, key, "sequential", "median_us"), 1),
                fmt(get(data, key, "sequential", "p99_us"), 1),
                fmt(get(data, key, "pipelined", "per_s")),
                fmt(get(data, key, "pipelined", "cpu_s_per_10k"), 4),
                fmt(get(data, key, "flood", "per_s")),
                fmt(get(data, key, "flood", "cpu_s_per_10k"), 4),
            ]
        )
    return table(header, rows) + flood_runs(data)


def flood_runs(data: Dict[str, Result]) -> List[str]:
    """The flood CPU of each measured run, for the clients that report them."""
    parts = []
    for key, label in CLIENTS:
        flood = data.get(key, {}).get("flood") or {}
        runs = flood.get("cpu_runs")
        if isinstance(runs, list) and len(runs) > 1:
            parts.append(f"{label}: " + ", ".join(fmt(r, 4) for r in runs))
    if not parts:
        return []
    return ["", "Flood CPU (s / 10k msgs) of each measured run, the median of which is above: " + "; ".join(parts) + "."]


# (label, keys, higher is better)
METRICS: List[Tuple[str, Tuple[str, ...], bool]] = [
    ("connect+TLS+join latency", ("connect_join", "median_ms"), False),
    ("round trip median", ("sequential", "median_us"), False),
    ("round trip p99", ("sequential", "p99_us"), False),
    ("pipelined throughput", ("pipelined", "per_s"), True),
    ("pipelined CPU per push", ("pipelined", "cpu_s_per_10k"), False),
    ("flood throughput", ("flood", "per_s"), True),
    ("flood CPU per message", ("flood", "cpu_s_per_10k"), False),
]


def ratios_table(data: Dict[str, Result], ours: str, others: List[str]) -> List[str]:
    """How many times better `ours` is than each other client (>1: better)."""
    labels = dict(CLIENTS)
    present = [o for o in others if o in data and "error" not in data[o]]
    header = ["metric"] + [f"vs {labels[o]}" for o in present]
    rows = []
    for label, keys, higher in METRICS:
        row = [label]
        for other in present:
            a, b = get(data, ours, *keys), get(data, other, *keys)
            row.append(fmt_ratio(ratio(a, b) if higher else ratio(b, a)))
        rows.append(row)
    return table(header, rows)


def footprint(data: Dict[str, Result], meta: Result) -> List[str]:
    rows = []
    for key, label in [
        ("c-idle-threaded", "C, threaded delivery (default)"),
        ("c-idle-polled", "C, polled delivery"),
        ("c-idle-dist", "C, threaded, shipped shared library (dist profile)"),
        ("c-idle-static", "C, threaded, shipped static library (dist profile, --gc-sections, --as-needed)"),
        ("js-idle", "phoenix (npm) on Node"),
        ("python-idle", "Python blocking"),
    ]:
        if key in data:
            d = data[key]
            if "error" in d:
                rows.append([label, "failed", "", "", ""])
                continue
            settled = d.get("settled")
            rows.append(
                [
                    label,
                    fmt(get(data, key, "rss_kib")),
                    fmt(get(data, key, "anon_kib")),
                    str(d.get("threads", "n/a")),
                    "n/a" if not settled else f"{settled['rss_kib']:,} KiB, {settled['threads']} threads",
                ]
            )
    out = ["Idle, one joined channel over wss with mutual TLS, 1 s after the join:", ""]
    settle = (data.get("c-idle-threaded", {}).get("settled") or {}).get("after_s", "n/a")
    out += table(["client", "RSS (KiB)", "of which anonymous (KiB)", "threads", f"after {settle} s idle"], rows)
    out += [
        "",
        "RSS counts the pages of mapped files too: the library's code, and libc's, which every",
        "process shares. The anonymous part (heap, stacks) is what the connection itself costs.",
        "The first two rows use the release build the other benchmarks use; the last two the",
        "size-optimised `dist` build that CMake's MinSizeRel ships.",
    ]
    out += ["", "Many joined connections in one C process (one channel each):", ""]
    rows = []
    for key, label in [("c-many-ws", "ws"), ("c-many-wss", "wss + mutual TLS")]:
        if key in data and "error" not in data[key]:
            rows.append(
                [
                    label,
                    fmt(get(data, key, "connections")),
                    fmt(get(data, key, "rss_per_conn_kib"), 1),
                    fmt(get(data, key, "join_all_s"), 2),
                    fmt(get(data, key, "threads")),
                ]
            )
        elif key in data:
            rows.append([label, "failed", data[key]["error"], "", ""])
    out += table(["transport", "connections", "RSS per connection (KiB)", "all joined after (s)", "threads"], rows)
    out += [
        "",
        "Threads are counted right after the last join. The wss URL names `localhost`: each connection",
        "resolves it on a helper thread of the I/O runtime, and those end 0.5 s after their last lookup",
        "(so they may be gone by the count); with an IP address, or over ws (`127.0.0.1`), no helper",
        "thread starts.",
    ]
    size = meta.get("so_stripped_bytes")
    out += ["", f"Stripped `libnerves_hub_channel.so`: {fmt(size)} bytes ({fmt(size / 1048576 if size else None, 2)} MiB)."]
    return out


def download(data: Dict[str, Result]) -> List[str]:
    d = data.get("download")
    if d is None:
        return [
            "Not measured: the device layer's firmware download and the dev server's "
            "firmware endpoint were not available to this run."
        ]
    if "error" in d:
        return [f"Failed: {d['error']}"]
    rows = [
        ["nerves_hub_channel (download + SHA-256 verification)", fmt(get(data, "download", "ours_mib_s"), 1)],
        ["curl (download only)", fmt(get(data, "download", "curl_mib_s"), 1)],
    ]
    return [
        f"A {fmt(get(data, 'download', 'size_mib'))} MiB image served by the dev server over http on loopback,",
        "into a file, best of "
        f"{d.get('runs', 'n/a')} runs each. Ours is the device layer's update pipeline (`start_update` with a file",
        "sink): it checks the SHA-256 of every 1 MiB part as it arrives (the parts cover the whole image, so,",
        "like nerves_hub_link, it hashes the whole image only when the server sends no part checksums), checks",
        "the size, and renames the file only once verified;",
        f"{' '.join((d.get('curl_version') or 'curl n/a').split()[:2])} only downloads.",
        "",
    ] + table(["client", "MiB/s"], rows)


def verdict(ok: Optional[bool]) -> str:
    return "n/a" if ok is None else ("**pass**" if ok else "**FAIL**")


def targets(data: Dict[str, Result], meta: Result) -> List[str]:
    rows: List[List[str]] = []

    def add(target: str, measured: str, ok: Optional[bool]) -> None:
        rows.append([target, measured, verdict(ok)])

    def at_most(v: Optional[float], limit: float) -> Optional[bool]:
        return None if v is None else v <= limit

    def at_least(v: Optional[float], limit: float) -> Optional[bool]:
        return None if v is None else v >= limit

    c_cpu = get(data, "c", "flood", "cpu_s_per_10k")
    r = ratio(c_cpu, get(data, "js", "flood", "cpu_s_per_10k"))
    add("C client CPU per inbound message ≤ 1/5 of the JavaScript client's", f"{fmt(r, 3)} of it", at_most(r, 0.2))
    r = ratio(c_cpu, get(data, "raw", "flood", "cpu_s_per_10k"))
    add("C client CPU per inbound message ≤ 2x the raw websocket reader's", f"{fmt_ratio(r)}", at_most(r, 2.0))

    c_pipe = get(data, "c", "pipelined", "per_s")
    vs_js = ratio(c_pipe, get(data, "js", "pipelined", "per_s"))
    vs_server = ratio(c_pipe, get(data, "raw", "pipelined", "per_s"))
    ok = None if vs_js is None and vs_server is None else (vs_js or 0) >= 3 or (vs_server or 0) >= 0.9
    add(
        "pipelined throughput ≥ 3x the JavaScript client's, or the dev server's limit "
        "(taken as ≥ 90 % of the raw reader's rate)",
        f"{fmt_ratio(vs_js)} the JavaScript client's; {fmt(vs_server and vs_server * 100)} % of the raw reader's",
        ok,
    )

    rss, threads = get(data, "c-idle-threaded", "rss_kib"), get(data, "c-idle-threaded", "threads")
    shipped = {k: get(data, f"c-idle-{k}", "rss_kib") for k in ("dist", "static")}
    within = [name for key, name in (("dist", "shared"), ("static", "static")) if at_most(shipped[key], 4096)]
    add(
        "idle C device ≤ 4 MiB RSS",
        f"{fmt(rss)} KiB (release, threaded), {fmt(get(data, 'c-idle-polled', 'rss_kib'))} KiB (polled); "
        f"shipped build: {fmt(shipped['dist'])} KiB shared, {fmt(shipped['static'])} KiB static "
        f"(within 4 MiB: {', '.join(within) if within else 'neither'})",
        at_most(min((v for v in shipped.values() if v is not None), default=rss), 4096),
    )
    settled = data.get("c-idle-threaded", {}).get("settled") or {}
    settled_threads = settled.get("threads")
    add(
        "idle C device ≤ 3 threads",
        f"{fmt(threads)} right after the join, {fmt(settled_threads)} after {settled.get('after_s', 'n/a')} s (threaded); "
        f"{fmt(get(data, 'c-idle-polled', 'threads'))} (polled)",
        at_most(settled_threads if settled_threads is not None else threads, 3),
    )
    n = get(data, "c-many-wss", "connections")
    per_tls, per_ws = get(data, "c-many-wss", "rss_per_conn_kib"), get(data, "c-many-ws", "rss_per_conn_kib")
    add(
        f"≤ 64 KiB per connection at 10,000 connections (measured at {fmt(n)})",
        f"{fmt(per_tls, 1)} KiB with TLS, {fmt(per_ws, 1)} KiB without",
        at_most(per_tls, 64) if n is not None and n >= 10000 else None,
    )
    size = meta.get("so_stripped_bytes")
    add("stripped .so ≤ 2 MiB", f"{fmt(size / 1048576 if size else None, 2)} MiB", at_most(size, 2 * 1048576))
    pypi = get(data, "python-pypi", "flood", "per_s")
    rb = ratio(get(data, "python-blocking", "flood", "per_s"), pypi)
    ra = ratio(get(data, "python-asyncio", "flood", "per_s"), pypi)
    add(
        "Python callback delivery ≥ 5x the pure-Python client (flood messages/s; callbacks: the blocking API)",
        f"blocking API callbacks {fmt_ratio(rb)}; asyncio `async for` (no callbacks) {fmt_ratio(ra)}",
        at_least(rb, 5),
    )
    rd = ratio(get(data, "download", "ours_mib_s"), get(data, "download", "curl_mib_s"))
    add("download ≥ 90 % of curl", f"{fmt(rd and rd * 100)} %", at_least(rd, 0.9))
    return table(["target (issue 7)", "measured", "verdict"], rows)


def c_flood_runs(data: Dict[str, Result]) -> str:
    flood = data.get("c", {}).get("flood") or {}
    return str(flood.get("runs", "n/a"))


def inbound_runs(data: Dict[str, Result]) -> str:
    flood = data.get("python-blocking", {}).get("flood") or {}
    return str(flood.get("runs", "n/a"))


def render(data: Dict[str, Result], meta: Result) -> str:
    quick = meta.get("quick")
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# Benchmarks",
        "",
        f"Generated by `bash bench/run.sh` on {when}; do not edit by hand.",
    ]
    if quick:
        lines += ["", "**A `--quick` run: small counts, for checking the benchmark itself, not its figures.**"]
    lines += [
        "",
        "## Running it",
        "",
        "`bash bench/run.sh` from a clone (`--quick` for small counts: a check of the benchmark itself, whose",
        "report goes to `target/bench/benchmarks.md`). It needs cargo, a C compiler, curl, Python >= 3.11 with",
        "`venv`, and Node >= 20 with npm; the first run fetches the npm and PyPI clients (pinned in",
        "`bench/js/package-lock.json` and `bench/python/requirements.txt`) into `bench/js/node_modules` and",
        "`target/bench/venv`. Each client's raw output is kept in `target/bench/results/`.",
    ]
    lines += ["", "## Machine", ""] + machine() + load_line(meta)
    lines += ["", "## Versions", ""] + versions(data, meta)
    lines += [
        "",
        "## Method",
        "",
        "One `nhc-devserver` (release build) on loopback serves every client, one client at a time,",
        "each in its own process, so that a client's CPU time (user + system of its whole process:",
        "`getrusage`, `process.cpuUsage()`, `time.process_time()`) is its own. The server's",
        "recorded messages are reset between clients.",
        "",
        "- **connect+TLS+join**: a fresh socket each time over `wss://` with mutual TLS (the",
        "  device endpoint), from `connect` to the join's reply; median of "
        f"{fmt(get(data, 'c', 'connect_join', 'n'))}.",
        "- **round trip**: one push at a time (`{\"value\":42}`, echoed by the server as the reply);",
        f"  {fmt(get(data, 'c', 'sequential', 'n'))} pushes.",
        f"- **pipelined**: {fmt(get(data, 'c', 'pipelined', 'window'))} pushes outstanding, "
        f"{fmt(get(data, 'c', 'pipelined', 'n'))} in all; each reply's callback sends the next",
        "  (asyncio: as many tasks awaiting `push` in a loop).",
        f"- **flood**: the server sends {fmt(get(data, 'c', 'flood', 'n'))} broadcasts of "
        f"{fmt(get(data, 'c', 'flood', 'size'))}-byte JSON payloads (`POST /flood`) as fast",
        "  as the client reads, as channel pushes carrying the join's `join_ref`; each is decoded and handed",
        "  to a callback (asyncio: `async for`) that reads the payload's index `i`, checks the order and counts.",
        f"  The C, JavaScript and raw clients flood their connection {c_flood_runs(data)} more time(s) after a",
        "  warm-up flood, and the medians are given. The Python clients' floods are",
        "  `bench/python_inbound.py`'s: each client in a fresh process after",
        f"  a warm-up flood, the median of {inbound_runs(data)} run(s).",
        "- The C API runs twice: with threaded delivery (the default: callbacks on the library's",
        "  dispatcher thread, the main thread waits on a condition variable) and with polled delivery",
        "  (the main thread runs the callbacks in `nhc_socket_dispatch`, like an event loop).",
        "- Round trips, pipelining and the flood use plain `ws://`, so that they measure the clients and",
        "  not their TLS libraries (rustls here, OpenSSL in Node and Python).",
        "- The raw reader frames websocket messages and counts them without parsing JSON, in C on one",
        "  blocking socket; it also sends each batch of pipelined pushes in one write, so its pipelined",
        "  rate approximates what the dev server itself can do.",
        "",
        "## Results",
        "",
    ]
    lines += results_table(data)
    for key, label in CLIENTS:
        note = data.get(key, {}).get("not_applicable")
        if note:
            lines += ["", f"{label}: round trips and pipelining n/a ({note})."]
    lines += ["", "### Ratios: the C API against the others (above 1: the C API is better)", ""]
    lines += ratios_table(data, "c", ["js", "python-pypi", "raw"])
    lines += ["", "### Ratios: the Python module against the pure-Python and JavaScript clients", ""]
    for ours, label in [("python-blocking", "blocking"), ("python-asyncio", "asyncio")]:
        if ours in data and "error" not in data[ours]:
            lines += [f"{label}:", ""] + ratios_table(data, ours, ["python-pypi", "js"]) + [""]
    lines += ["## Footprint", ""] + footprint(data, meta)
    lines += ["", "## Firmware download", ""] + download(data)
    lines += ["", "## Targets", ""] + targets(data, meta)
    lines += analysis()
    lines += wire_bytes()
    return "\n".join(lines) + "\n"


def analysis() -> List[str]:
    """The hand-written profile of the targets the figures above miss
    (bench/analysis.md): measured separately, so it is kept, not generated."""
    path = Path(__file__).with_name("analysis.md")
    if not path.exists():
        return []
    return [""] + path.read_text().rstrip("\n").split("\n")


def wire_bytes() -> List[str]:
    """Bytes on the wire (bench/wire_bytes.md, written by `cargo bench
    --bench wire_bytes`): measured by its own benchmark, so it is kept."""
    path = Path(__file__).with_name("wire_bytes.md")
    if not path.exists():
        return []
    return [""] + path.read_text().rstrip("\n").split("\n")


def main() -> None:
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    results, output = Path(sys.argv[1]), Path(sys.argv[2])
    data = load(results)
    meta = data.pop("meta", {})
    merge_inbound(data)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(render(data, meta))


if __name__ == "__main__":
    main()
