#!/usr/bin/env bash
# Instructions per paced message (docs/benchmarks.md, "Where a trickled
# message's instructions go"): the raw reader, the C API (inline and
# threaded delivery) and, when bench/trickle.sh has installed the Python
# module into its venv, the Python module with inline delivery ("Payloads
# decoded in Rust"), at 100/s over ws, each under valgrind's callgrind. The
# counters are zeroed WARM seconds after start (after the warm-up flood) and
# dumped WINDOW seconds later, so they hold only paced messages: at 100/s,
# about 100 * WINDOW of them. Counted, not timed, so a loaded machine gives
# the same figures (valgrind must keep up with the pace: WINDOW and WARM are
# generous for that).
#   bash bench/instructions.sh [WINDOW=10] [WARM=20]
# Needs what bench/trickle.sh --build-only builds (it runs that first).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
window=${1:-10}
warm=${2:-20}
rate=100
bash bench/trickle.sh --build-only >/dev/null
bin=$root/target/bench/bin
out=$root/target/bench/instructions
rm -rf "$out"
mkdir -p "$out/server"
# shellcheck source=bench/devserver.sh
source bench/devserver.sh
start_devserver "$out/server"
trap stop_devserver EXIT
control=$(sed -n 's/.*"control_url":"\([^"]*\)".*/\1/p' "$info")
# Enough messages to outlast the window at the pace.
count=$(((warm + window + 10) * rate))

# Prints "NAME instructions-per-message"; leaves NAME.out.1 (the window).
measure() {
  local name=$1
  shift
  curl -fsS -X POST -H 'content-type: application/json' -d '{}' "$control/reset" >/dev/null
  valgrind --tool=callgrind --callgrind-out-file="$out/$name.out" "$@" >"$out/$name.json" 2>"$out/$name.log" &
  local pid=$!
  sleep "$warm"
  callgrind_control -z "$pid" >/dev/null 2>&1
  local start=$SECONDS
  sleep "$window"
  callgrind_control -d "$pid" >/dev/null 2>&1
  local elapsed=$((SECONDS - start))
  wait "$pid" || { echo "$name failed: see $out/$name.log" >&2; exit 1; }
  local total
  total=$(sed -n 's/^summary: //p' "$out/$name.out.1")
  echo "$name $((total / (elapsed * rate)))"
}

measure raw "$bin/raw_reader" "$info" seq=0 pipe=0 flood="$count" rate="$rate" flood_runs=1 tls=0
measure inline "$bin/nhc_bench" trickle "$info" rate="$rate" count="$count" runs=1 delivery=inline
measure threaded "$bin/nhc_bench" trickle "$info" rate="$rate" count="$count" runs=1
py=$root/target/bench/venv/bin/python
if [ -x "$py" ] && "$py" -c 'import nerves_hub_channel' 2>/dev/null; then
  ws_url=$(sed -n 's/.*"ws_url":"\([^"]*\)".*/\1/p' "$info")
  measure python-inline "$py" bench/python_inbound.py --scenario nhc_inline --topic room:instructions \
    --ws-url "$ws_url" --control-url "$control" --count "$count" --size 256 --rate "$rate"
else
  echo "python-inline skipped: no module in target/bench/venv (bash bench/trickle.sh installs it)"
fi

# The inline client's instructions by part (self cost of each function,
# grouped by what it belongs to).
echo
echo "inline, instructions per message by part:"
callgrind_annotate --auto=no --inclusive=no --threshold=100 "$out/inline.out.1" 2>/dev/null |
  awk -v msgs="$((window * rate))" '
    /PROGRAM TOTALS/ { total = $1; gsub(",", "", total); next }
    /^ *[0-9,]+ \(/ {
      n = $1; gsub(",", "", n)
      if (n == total) next # the thread entry points, listed with the total
      part = "the rest"
      if ($0 ~ /memset/) part = "memset (tungstenite zero-fills its read buffer)"
      else if ($0 ~ /tokio::|mio::|futures_task|__tls_get_addr|epoll|futex/) part = "tokio: scheduler, drivers, wakers"
      else if ($0 ~ /tungstenite|AllowStd|bytes::|from_utf8|Utf8Bytes|futures_util/) part = "websocket framing and UTF-8"
      else if ($0 ~ /codec::/) part = "envelope scan"
      else if ($0 ~ /nerves_hub_channel_ffi|strtol|on_flood_event|nhc_bench/) part = "C dispatch and the callback"
      else if ($0 ~ /malloc|free|memcpy|memmove|realloc/) part = "malloc, free, memcpy"
      else if ($0 ~ /nerves_hub_channel::/) part = "actor: emit, deliver, timers"
      sum[part] += n
    }
    END { for (p in sum) printf "%8d  %s\n", sum[p] / msgs, p }' | sort -rn
