#!/usr/bin/env bash
# Idle wake-ups of a joined device (issue 18): one C process (bench/c/
# nhc_bench.c idle) joins `device` over wss with mutual TLS and then only
# heartbeats (every 30 s by default). After 20 s to settle (the DNS helper
# thread of the runtime ends 10 s after its lookup), the voluntary context
# switches of each of its threads are read from /proc/PID/task/*/status, and
# again after the measured interval; each thread's count per minute, the
# process's RSS and its threads are printed as a Markdown table.
#
#   bash bench/idle_wakeups.sh [--seconds 600] [--mode threaded|polled] [--bin DIR] [--lib DIR]
#
# --bin: where nhc_bench is (default: target/bench/bin, built by
# `bash bench/trickle.sh --build-only`, which this runs unless --bin is given);
# --lib: a directory put first on LD_LIBRARY_PATH (e.g. the shipped dist .so).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
seconds=600 mode=threaded bin="" lib=""
while [ $# -gt 0 ]; do
  case "$1" in
  --seconds) seconds=$2; shift ;;
  --mode) mode=$2; shift ;;
  --bin) bin=$2; shift ;;
  --lib) lib=$2; shift ;;
  *) echo "usage: bash bench/idle_wakeups.sh [--seconds N] [--mode threaded|polled] [--bin DIR] [--lib DIR]" >&2
     exit 2 ;;
  esac
  shift
done
if [ -z "$bin" ]; then
  bash bench/trickle.sh --build-only >&2
  bin=${NHC_BENCH_DIR:-$root/target/bench}/bin
fi
settle=20
out=$(mktemp -d "${TMPDIR:-/tmp}/nhc-idle.XXXXXX")
client_pid=""
cleanup() {
  [ -n "$client_pid" ] && kill "$client_pid" 2>/dev/null || true
  stop_devserver
  wait 2>/dev/null || true
  rm -rf "$out"
}
trap cleanup EXIT
# shellcheck source=bench/devserver.sh
source bench/devserver.sh
start_devserver "$out"

LD_LIBRARY_PATH="$lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" \
  "$bin/nhc_bench" idle "$info" "$mode" $((settle + seconds + 5)) >"$out/client.json" &
client_pid=$!

# thread id, name and voluntary switches of every thread of the client
snapshot() {
  for t in /proc/"$client_pid"/task/*; do
    printf '%s %s %s\n' "${t##*/}" "$(tr ' ' _ <"$t/comm")" \
      "$(sed -n 's/^voluntary_ctxt_switches:[[:space:]]*//p' "$t/status")"
  done 2>/dev/null | sort
}
sleep "$settle"   # the settling interval, not synchronisation
snapshot >"$out/before"
sleep "$seconds"  # the measured interval
snapshot >"$out/after"
rss=$(sed -n 's/^VmRSS:[[:space:]]*//p' /proc/"$client_pid"/status)

echo "Idle C device ($mode delivery, wss + mutual TLS, 30 s heartbeat), $seconds s after $settle s to settle:"
echo
echo "| thread | voluntary context switches | per minute |"
echo "|---|---|---|"
join -a 2 -e 0 -o 0,2.2,1.3,2.3 "$out/before" "$out/after" | awk -v s="$seconds" '
  { n = $4 - $3; total += n; printf "| %s (tid %s) | %d | %.2f |\n", $2, $1, n, n * 60 / s }
  END { printf "| **all threads** | %d | %.2f |\n", total, total * 60 / s }'
echo
echo "RSS at the end: $rss."
