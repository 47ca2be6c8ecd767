"""Capacity of one `nhc simulate` process (docs/fleet-simulation.md).

Runs the dev server and one simulate process of DEVICES devices, once over
ws with NH1 and once over wss with a client certificate per device, and
reports for each: seconds until all joined, CPU seconds of the connect
phase per device, CPU per device per second while idle (heartbeats only),
and resident memory per device once joined. Reads the process's own
/proc/<pid>/stat and the summary lines it prints.

    cargo build --release --locked -p nhc-cli -p nhc-devserver
    python3 bench/fleet_capacity.py [DEVICES] [IDLE_SECS] [WORKERS]
"""

import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RELEASE = ROOT / "target" / "release"
KEY, SECRET = "nhp_capacity_key", "capacity-secret"
TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def post(url: str, body: dict) -> dict:
    req = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    with urllib.request.urlopen(req) as r:
        return json.load(r)


def run(label: str, args: list, devices: int, idle: float, workers: int) -> dict:
    cmd = [str(RELEASE / "nhc"), "simulate", "--devices", str(devices), "--workers", str(workers),
           "--prefix", "cap-", "--duration", str(int(idle) + 600)] + args
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    assert p.stdout is not None
    base_rss = None
    joined_after = None
    for line in p.stdout:
        if base_rss is None:
            base_rss = rss_kib(p.pid)
        if "all_joined_after_s" in line:
            joined_after = float(line.split("all_joined_after_s")[1])
            break
    if joined_after is None:
        raise SystemExit(f"{label}: the devices did not all join")
    cpu_joined, rss_joined = cpu_seconds(p.pid), rss_kib(p.pid)
    time.sleep(idle)
    cpu_idle = cpu_seconds(p.pid) - cpu_joined
    rss_end = rss_kib(p.pid)
    p.terminate()
    p.wait(timeout=60)
    return {
        "label": label,
        "devices": devices,
        "all_joined_s": joined_after,
        "connect_cpu_ms_per_device": 1000 * cpu_joined / devices,
        "idle_cpu_us_per_device_s": 1e6 * cpu_idle / devices / idle,
        "rss_kib_joined": rss_joined,
        "rss_kib_per_device": (max(rss_joined, rss_end)) / devices,
    }


def main() -> None:
    devices = int(sys.argv[1]) if len(sys.argv) > 1 else 2000
    idle = float(sys.argv[2]) if len(sys.argv) > 2 else 60
    workers = int(sys.argv[3]) if len(sys.argv) > 3 else 1
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    work = Path(tempfile.mkdtemp(prefix="nhc-capacity-"))
    server = subprocess.Popen(
        [str(RELEASE / "nhc-devserver"), "--pki-dir", str(work / "pki"), "--ready-file", str(work / "ready.json"),
         "--shared-secret", f"{KEY}:{SECRET}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(600):
            if (work / "ready.json").exists():
                break
            time.sleep(0.1)
        info = json.loads((work / "ready.json").read_text())
        certs = work / "certs"
        certs.mkdir()
        for n in range(devices):
            issued = post(info["control_url"] + "/issue_device", {"cn": f"cap-{n}"})
            shutil.copy(issued["cert"], certs / f"cap-{n}.pem")
            shutil.copy(issued["key"], certs / f"cap-{n}-key.pem")
        results = [
            run("ws + NH1", ["--url", info["device_socket_url"], "--shared-secret", f"{KEY}:{SECRET}"],
                devices, idle, workers),
            run("wss + mTLS", ["--url", info["wss_url"], "--ca", info["ca"], "--cert-dir", str(certs)],
                devices, idle, workers),
        ]
        for r in results:
            print(json.dumps(r))
    finally:
        server.terminate()
        server.wait(timeout=30)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
