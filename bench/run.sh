#!/usr/bin/env bash
# The benchmark of issue 7, in one command, against nhc-devserver on loopback:
#   bash bench/run.sh           full run; writes docs/benchmarks.md
#   bash bench/run.sh --quick   small counts (a smoke test of the whole chain);
#                               writes target/bench/benchmarks.md instead
# Clients, one after another on one dev server: our C API (bench/c, with
# threaded and with polled delivery), our Python module (blocking and
# asyncio), the official JavaScript client (npm phoenix over ws, Node >= 20),
# a Phoenix client from PyPI, and a raw websocket reader that parses no JSON
# (bench/c/raw_reader.c). bench/report.py turns their JSON into the report.
# Also: the device layer's firmware download (with verification) against
# curl on the same file (bench/download.rs).
# Needs: cargo, cc, OpenSSL's headers (libssl-dev: the raw reader's wss),
# python3 (>= 3.11, with venv), node >= 20 + npm, curl;
# network access to PyPI and npm on the first run only.
# Environment: NHC_BENCH_DIR (work directory, default target/bench),
#   NHC_BENCH_CONNECTIONS (the many-connections workload, default 10000,
#   500 with --quick), NHC_BENCH_OUT (the report file).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

quick=0
case "${1:-}" in
--quick) quick=1 ;;
"") ;;
*) echo "usage: bash bench/run.sh [--quick]" >&2; exit 2 ;;
esac

work=${NHC_BENCH_DIR:-$root/target/bench}
results=$work/results
rm -rf "$results"
mkdir -p "$work/lib" "$work/bin" "$results"

if [ "$quick" = 1 ]; then
  latency=5 seq=500 pipe=5000 flood=5000 repeat=1 settle=2 download_mib=16
  connections=${NHC_BENCH_CONNECTIONS:-500}
  report=${NHC_BENCH_OUT:-$work/benchmarks.md}
else
  latency=20 seq=5000 pipe=50000 flood=50000 repeat=3 settle=15 download_mib=256
  connections=${NHC_BENCH_CONNECTIONS:-10000}
  report=${NHC_BENCH_OUT:-$root/docs/benchmarks.md}
fi
window=100 size=256
push_counts=(latency=$latency seq=$seq pipe=$pipe window=$window)
counts=("${push_counts[@]}" flood=$flood size=$size flood_runs=$repeat)

step() { printf '\n==== %s (%s)\n' "$*" "$(date -u +%T)" >&2; }

# --- build -------------------------------------------------------------------
step "build (cargo, release)"
# Separately: built together, the library would get the dev server's tokio
# features (and with them libm), unlike the library CMake ships.
cargo build --release --locked -p nerves_hub_channel_ffi
cargo build --release --locked -p nhc-devserver
# bench/download.rs (the device layer's firmware download against curl).
cargo bench --locked --bench download --no-run
# The cargo artifact carries the SONAME it is installed under.
cp "$root/target/release/libnerves_hub_channel_ffi.so" "$work/lib/libnerves_hub_channel.so.0"
ln -sf libnerves_hub_channel.so.0 "$work/lib/libnerves_hub_channel.so"
# The size is that of the library as shipped: the dist profile (CMake's
# MinSizeRel), not the release build the clients above use.
cargo build --profile dist --locked -p nerves_hub_channel_ffi
cp "$root/target/dist/libnerves_hub_channel_ffi.so" "$work/lib/stripped.so"
strip "$work/lib/stripped.so"
so_bytes=$(stat -c %s "$work/lib/stripped.so")
# The idle footprint is also measured with the shipped library: shared (the
# dist .so, picked up through LD_LIBRARY_PATH) and static (linked with
# --gc-sections, as NHC_USE_STATIC links it, and --as-needed, as Yocto's
# default LDFLAGS do: the system libraries rustc lists for static linking
# include libm, which the library no longer uses).
mkdir -p "$work/dist"
cp "$work/lib/stripped.so" "$work/dist/libnerves_hub_channel.so.0"

step "build (C clients)"
cflags=(-O2 -std=c11 -Wall -Wextra -Werror)
cc "${cflags[@]}" -I"$root/include" -o "$work/bin/nhc_bench" bench/c/nhc_bench.c bench/c/benchlib.c \
  -L"$work/lib" -lnerves_hub_channel -Wl,-rpath,"$work/lib" -lpthread
cc "${cflags[@]}" -o "$work/bin/raw_reader" bench/c/raw_reader.c bench/c/benchlib.c -lssl -lcrypto -lpthread
cc "${cflags[@]}" -I"$root/include" -o "$work/bin/nhc_bench_static" bench/c/nhc_bench.c bench/c/benchlib.c \
  "$root/target/dist/libnerves_hub_channel_ffi.a" -Wl,--gc-sections -Wl,--as-needed -lgcc_s -lutil -lrt -lpthread -lm -ldl
strip "$work/bin/nhc_bench_static"

step "Python environment ($work/venv)"
python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' ||
  { echo "bench: needs python3 >= 3.11 (the PyPI client requires it)" >&2; exit 1; }
[ -x "$work/venv/bin/python" ] || python3 -m venv "$work/venv"
py=$work/venv/bin/python
"$py" -m pip install --quiet --disable-pip-version-check -r bench/python/requirements.txt
"$py" -m pip install --quiet --disable-pip-version-check --force-reinstall --no-deps ./bindings/python

step "JavaScript client (npm ci)"
(cd bench/js && npm ci --no-audit --no-fund --loglevel=error)

# --- the dev server --------------------------------------------------------------
# 10,000 connections need as many descriptors on each side.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
step "dev server"
server_dir=$work/server
rm -rf "$server_dir"
mkdir -p "$server_dir"
# shellcheck source=bench/devserver.sh
source bench/devserver.sh
start_devserver "$server_dir"
stop_server() { stop_devserver; }
trap stop_server EXIT
control=$(sed -n 's/.*"control_url":"\([^"]*\)".*/\1/p' "$info")

# Runs one client; its stdout (one JSON object) goes to results/NAME.json. A
# failing client is recorded and the others still run.
run_client() {
  local name=$1
  shift
  step "$name"
  # The server records every message clients send; start each client afresh.
  curl -fsS -X POST -H 'content-type: application/json' -d '{}' "$control/reset" >/dev/null
  if "$@" >"$results/$name.json" 2>"$results/$name.log"; then
    cat "$results/$name.json" >&2
  else
    local rc=$?
    echo "$name failed ($rc):" >&2
    tail -n 20 "$results/$name.log" >&2
    printf '{"client":"%s","error":"exit status %s; see %s"}\n' "$name" "$rc" "$results/$name.log" \
      >"$results/$name.json"
  fi
}

# Runs a tool that writes its own JSON file; its output goes to the log.
run_tool() {
  local name=$1
  shift
  step "$name"
  if ! "$@" >"$results/$name.log" 2>&1; then
    echo "$name failed:" >&2
    tail -n 20 "$results/$name.log" >&2
    printf '{"error":"failed; see %s"}\n' "$results/$name.log" >"$results/$name.json"
  fi
}

loadavg_start=$(cut -d' ' -f1-3 /proc/loadavg)
run_client raw "$work/bin/raw_reader" "$info" "${counts[@]}"
run_client c "$work/bin/nhc_bench" run "$info" "${counts[@]}"
run_client c-polled "$work/bin/nhc_bench" run "$info" "${counts[@]}" delivery=polled
run_client c-idle-threaded "$work/bin/nhc_bench" idle "$info" threaded "$settle"
run_client c-idle-polled "$work/bin/nhc_bench" idle "$info" polled "$settle"
run_client c-idle-dist env LD_LIBRARY_PATH="$work/dist" "$work/bin/nhc_bench" idle "$info" threaded "$settle"
run_client c-idle-static "$work/bin/nhc_bench_static" idle "$info" threaded "$settle"
run_client c-many-ws "$work/bin/nhc_bench" many "$info" "$connections" ws
run_client c-many-wss "$work/bin/nhc_bench" many "$info" "$connections" wss
run_client js node bench/js/bench.mjs run "$info" "${counts[@]}"
run_client js-idle node bench/js/bench.mjs idle "$info"
run_client python-blocking "$py" bench/python/nhc_bench.py blocking "$info" "${push_counts[@]}"
run_client python-asyncio "$py" bench/python/nhc_bench.py asyncio "$info" "${push_counts[@]}"
run_client python-idle "$py" bench/python/nhc_bench.py idle "$info"
run_client python-pypi "$py" bench/python/pypi_bench.py "$info" latency=$latency
# The Python clients' inbound flood (ours and the PyPI client's) is
# bench/python_inbound.py's: each in a fresh process after a warm-up flood,
# median of $repeat runs, on a dev server of its own (the same binary).
NHC_DEVSERVER="$root/target/release/nhc-devserver" run_tool python-inbound \
  "$py" bench/python_inbound.py --count "$flood" --size "$size" --repeat "$repeat" \
  --only nhc_callback nhc_async_for pypi_phoenix_channels_python_client --out "$results/python-inbound.json"
run_client download cargo bench --quiet --locked --bench download -- "$info" "$download_mib"

loadavg_end=$(cut -d' ' -f1-3 /proc/loadavg)
stop_server
trap - EXIT

# --- the report -------------------------------------------------------------------
step "report"
cat >"$results/meta.json" <<META
{"quick": $([ "$quick" = 1 ] && echo true || echo false),
 "so_stripped_bytes": $so_bytes,
 "connections": $connections,
 "loadavg_start": "$loadavg_start",
 "loadavg_end": "$loadavg_end",
 "rustc": "$(rustc --version)",
 "cc": "$(cc --version | head -n 1)",
 "node": "$(node --version)",
 "python": "$("$py" -c 'import platform; print(platform.python_version())')"}
META
python3 bench/report.py "$results" "$report"
echo "wrote $report" >&2
