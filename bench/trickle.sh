#!/usr/bin/env bash
# The trickle benchmark of issue 18: the dev server sends 256-byte messages
# at a fixed rate (100 and 5,000 a second, each written alone: POST /flood
# with `rate`), so that every message wakes the client, as on a device; each
# client's CPU time (user + system, all its threads) and voluntary context
# switches per message are measured in the client process, in one run:
#   C API threaded, polled and inline (bench/c/nhc_bench.c trickle), the Python
#   module blocking (callback) and asyncio (async for) and the pure-Python
#   PyPI client (bench/python_inbound.py), phoenix.js on Node without
#   permessage-deflate (bench/js/bench.mjs trickle) and the raw reader
#   (bench/c/raw_reader.c).
#
#   bash bench/trickle.sh [--quick] [--only "c c-polled raw ..."] [--rates "100 5000"] [--tls]
#   bash bench/trickle.sh --build-only   (the C programs and their library, for
#                                          bench/idle_wakeups.sh)
#   bash bench/trickle.sh --no-build ...  (with what the last run built and installed)
#
# --tls: over wss with mutual TLS, for the C clients and the raw reader (OpenSSL)
# only; the others are skipped. Rate 0 is an unpaced flood (the server writes
# as fast as the client reads: the flood over wss of issue 18), 20,000
# messages, warm-up then two measured floods in each process.
#
# Every client warms up with a flood at full speed, then receives a paced
# flood; that is repeated `runs` times, the clients taking turns so that
# each sees the same load of the (shared) machine, and medians are reported. The report goes to
# target/bench/trickle/trickle.md, the raw JSON next to it. Needs what
# bench/run.sh needs (cargo, cc, libssl-dev, python3 >= 3.11 with venv, node >= 20 + npm;
# PyPI and npm on the first run). Environment: NHC_BENCH_DIR (default
# target/bench), NHC_TRICKLE_RUNS (3), NHC_TRICKLE_SECONDS (15: the length of
# one paced flood at 100/s; at 5,000/s a flood is 20,000 messages),
# NHC_TRICKLE_BASELINE (another NHC_BENCH_DIR, e.g. of an older commit: its
# bin/nhc_bench joins the run as the clients c-baseline and
# c-polled-baseline, taking turns with the others under the same load).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

quick=0
build_only=0
build=1
only="raw c c-polled c-inline python-blocking python-inline python-asyncio python-pypi js"
rates="100 5000"
tls=0
while [ $# -gt 0 ]; do
  case "$1" in
  --quick) quick=1 ;;
  --build-only) build_only=1 ;;
  --no-build) build=0 ;;
  --only) only=$2; shift ;;
  --rates) rates=$2; shift ;;
  --tls) tls=1 ;;
  *) echo "usage: bash bench/trickle.sh [--quick] [--only CLIENTS] [--rates RATES]" >&2; exit 2 ;;
  esac
  shift
done
runs=${NHC_TRICKLE_RUNS:-3}
baseline=${NHC_TRICKLE_BASELINE:-}
[ -n "$baseline" ] && only="$only c-baseline c-polled-baseline"
seconds=${NHC_TRICKLE_SECONDS:-15}
[ "$quick" = 1 ] && runs=1 seconds=2
count_for() { # messages per paced flood at rate $1
  if [ "$1" -eq 0 ] || [ "$1" -ge 1000 ]; then
    [ "$quick" = 1 ] && echo 5000 || echo 20000
  else
    echo $(($1 * seconds))
  fi
}

work=${NHC_BENCH_DIR:-$root/target/bench}
out=$work/trickle
mkdir -p "$work/lib" "$work/bin"
step() { printf '\n==== %s (%s)\n' "$*" "$(date -u +%T)" >&2; }

py=$work/venv/bin/python
if [ "$build" = 1 ]; then
  step "build"
  cargo build --release --locked -p nerves_hub_channel_ffi
  cargo build --release --locked -p nhc-devserver
  cp "$root/target/release/libnerves_hub_channel_ffi.so" "$work/lib/libnerves_hub_channel.so.0"
  ln -sf libnerves_hub_channel.so.0 "$work/lib/libnerves_hub_channel.so"
  cflags=(-O2 -std=c11 -Wall -Wextra -Werror)
  cc "${cflags[@]}" -I"$root/include" -o "$work/bin/nhc_bench" bench/c/nhc_bench.c bench/c/benchlib.c \
    -L"$work/lib" -lnerves_hub_channel -Wl,-rpath,"$work/lib" -lpthread
  cc "${cflags[@]}" -o "$work/bin/raw_reader" bench/c/raw_reader.c bench/c/benchlib.c -lssl -lcrypto -lpthread
  [ "$build_only" = 1 ] && exit 0
  case " $only " in *" python-"*)
    [ -x "$py" ] || python3 -m venv "$work/venv"
    "$py" -m pip install --quiet --disable-pip-version-check -r bench/python/requirements.txt
    "$py" -m pip install --quiet --disable-pip-version-check --force-reinstall --no-deps ./bindings/python ;;
  esac
  case " $only " in *" js "*) (cd bench/js && npm ci --no-audit --no-fund --loglevel=error) ;; esac
fi
rm -rf "$out"
mkdir -p "$out"

step "dev server"
mkdir -p "$out/server"
# shellcheck source=bench/devserver.sh
source bench/devserver.sh
start_devserver "$out/server"
trap stop_devserver EXIT
field() { sed -n "s/.*\"$1\":\"\\([^\"]*\\)\".*/\\1/p" "$info"; }
ws_url=$(field ws_url)
control=$(field control_url)

# One client at one rate; its JSON line(s) go to NAME-RATE.json.
run() {
  local name=$1 rate=$2
  shift 2
  step "$name at $rate/s"
  curl -fsS -X POST -H 'content-type: application/json' -d '{}' "$control/reset" >/dev/null
  if ! "$@" >>"$out/$name-$rate.json" 2>>"$out/$name-$rate.log"; then
    echo "$name failed; see $out/$name-$rate.log" >&2
    tail -n 5 "$out/$name-$rate.log" >&2
  fi
}

# One paced flood of one client (after its warm-up), each in its own process.
run_once() {
  local client=$1 rate=$2 count=$3 r=$4
  local n=1 # measured floods per process; an unpaced one is warmed up only when n > 1
  [ "$rate" -eq 0 ] && n=2
  if [ "$tls" = 1 ]; then
    case $client in raw | c | c-polled | c-inline) ;; *) return 0 ;; esac
  fi
  case $client in
  raw) run raw "$rate" "$work/bin/raw_reader" "$info" seq=0 pipe=0 flood="$count" rate="$rate" flood_runs="$n" \
    tls="$tls" ;;
  c) run c "$rate" "$work/bin/nhc_bench" trickle "$info" rate="$rate" count="$count" runs="$n" tls="$tls" ;;
  c-polled) run c-polled "$rate" "$work/bin/nhc_bench" trickle "$info" rate="$rate" count="$count" runs="$n" \
    tls="$tls" delivery=polled ;;
  c-inline) run c-inline "$rate" "$work/bin/nhc_bench" trickle "$info" rate="$rate" count="$count" runs="$n" \
    tls="$tls" delivery=inline ;;
  python-*)
    local scenario
    case $client in
    python-blocking) scenario=nhc_callback ;;
    python-inline) scenario=nhc_inline ;;
    python-asyncio) scenario=nhc_async_for ;;
    *) scenario=pypi_phoenix_channels_python_client ;;
    esac
    run "$client" "$rate" "$py" bench/python_inbound.py --scenario "$scenario" \
      --topic "room:trickle-$scenario-$rate-$r" --ws-url "$ws_url" --control-url "$control" \
      --count "$count" --size 256 --rate "$rate" ;;
  c-baseline) run c-baseline "$rate" "$baseline/bin/nhc_bench" trickle "$info" rate="$rate" count="$count" \
    runs=1 ;;
  c-polled-baseline) run c-polled-baseline "$rate" "$baseline/bin/nhc_bench" trickle "$info" rate="$rate" \
    count="$count" runs=1 delivery=polled ;;
  js) run js "$rate" node bench/js/bench.mjs trickle "$info" rate="$rate" count="$count" runs=1 ;;
  *) echo "unknown client $client" >&2; exit 2 ;;
  esac
}

loadavg_start=$(cut -d' ' -f1-3 /proc/loadavg)
for rate in $rates; do
  count=$(count_for "$rate")
  for r in $(seq "$runs"); do
    for client in $only; do
      run_once "$client" "$rate" "$count" "$r"
    done
  done
done
loadavg_end=$(cut -d' ' -f1-3 /proc/loadavg)

step "report"
transport=ws
[ "$tls" = 1 ] && transport="wss (mutual TLS)"
python3 bench/trickle_report.py "$out" "$loadavg_start" "$loadavg_end" "$transport" >"$out/trickle.md"
cat "$out/trickle.md"
echo "wrote $out/trickle.md" >&2
