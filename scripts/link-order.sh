#!/usr/bin/env bash
# Regenerates ffi/link/x86_64-unknown-linux-gnu.order, the order in which LLD
# lays out the shipped library's code (ffi/build.rs, issue 18: idle RSS).
#
#   bash scripts/link-order.sh
#
# Builds the dist library with its link map, runs C programs against it
# under valgrind's lackey (which prints every superblock it runs) as devices
# do: the C agent (device layer) and the C device example, connected over
# wss with mutual TLS and idle through a heartbeat, a socket doing the same
# (bench/c/nhc_bench.c idle), then pushes, floods and reconnects (nhc_bench
# run), and writes the library's functions in the order they first ran.
# Rerun it after a rustc or Cargo.lock update (symbol names carry hashes of
# both: a stale order links fine but packs less; scripts/test-all.sh checks
# it) and compare the idle RSS (docs/benchmarks.md, "Idle RSS").
# Needs valgrind, cc, python3; takes about five minutes. NHC_LINK_ORDER_KEEP=1
# keeps the traces and the map (their directory is printed).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
target=x86_64-unknown-linux-gnu
[ "$(rustc -vV | sed -n 's/^host: //p')" = "$target" ] || { echo "link-order: needs an $target host" >&2; exit 2; }
command -v valgrind >/dev/null || { echo "link-order: needs valgrind" >&2; exit 2; }

work=$(mktemp -d "${TMPDIR:-/tmp}/nhc-link-order.XXXXXX")
server_pid=""
cleanup() {
  [ -n "$server_pid" ] && stop_devserver
  if [ "${NHC_LINK_ORDER_KEEP:-0}" = 1 ]; then echo "kept $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT
step() { printf '\n==== %s (%s)\n' "$*" "$(date -u +%T)" >&2; }

step "dist library with its link map"
# Without the current order, so that the map shows where each function is
# when nothing is packed (names are the same either way).
NHC_LINK_ORDER=0 NHC_LINK_MAP="$work/map" cargo build --profile dist --locked -p nerves_hub_channel_ffi
mkdir -p "$work/lib"
cp target/dist/libnerves_hub_channel_ffi.so "$work/lib/libnerves_hub_channel.so.0"
ln -s libnerves_hub_channel.so.0 "$work/lib/libnerves_hub_channel.so"
for program in bench/c/nhc_bench.c:bench/c/benchlib.c examples/c/device.c examples/c/agent.c; do
  name=$(basename "${program%%.c*}")
  cc -O2 -std=c11 -I"$root/include" -o "$work/$name" ${program//:/ } \
    -L"$work/lib" -lnerves_hub_channel -Wl,-rpath,"$work/lib" -lpthread
done
cargo build --release --locked -p nhc-devserver

# shellcheck source=bench/devserver.sh
source bench/devserver.sh
start_devserver "$work"

# `trace NAME SECONDS PROGRAM ARGS...` runs the program under lackey (for
# SECONDS, then SIGINT; 0: until it exits); the superblocks go, once each,
# to $work/NAME.trace and the library's load address to $work/NAME.base.
trace() {
  local name=$1 seconds=$2
  shift 2
  mkfifo "$work/$name.fifo"
  awk '!seen[$0]++' <"$work/$name.fifo" >"$work/$name.trace" &
  local dedup=$!
  # No chasing: a superblock then ends at every call, so each function run
  # starts one of its own instead of vanishing into its caller's.
  valgrind --tool=lackey --trace-superblocks=yes --vex-guest-chase=no --log-file="$work/$name.fifo" \
    "$@" >"$work/$name.out" 2>"$work/$name.err" &
  local pid=$! base=""
  # The library is mapped once the program starts: read where.
  while [ -z "$base" ] && kill -0 "$pid" 2>/dev/null; do
    base=$(awk '$6 ~ /libnerves_hub_channel\.so\.0$/ && $3 == "00000000" { split($1, a, "-"); print a[1]; exit }' \
      "/proc/$pid/maps" 2>/dev/null || true)
    [ -n "$base" ] || sleep 0.2
  done
  if [ "$seconds" -gt 0 ]; then
    sleep "$seconds" # the traced interval, not synchronisation
    kill -INT "$pid" 2>/dev/null || true
    wait "$pid" || true # interrupted on purpose: its status says so
  else
    wait "$pid" || { cat "$work/$name.err" >&2; echo "link-order: $name failed" >&2; exit 1; }
  fi
  wait "$dedup"
  [ -n "$base" ] || { echo "link-order: $name: library not seen in /proc/$pid/maps" >&2; exit 1; }
  echo "$base" >"$work/$name.base"
}
field() { sed -n "s/.*\"$1\":\"\([^\"]*\)\".*/\1/p" "$info"; }

# Most used first: the C agent (examples/c/agent.c: the device layer), the
# C device example (examples/c/device.c: a socket joined to "device"), then
# the socket API idle and under load.
step "trace: the C agent, connected over wss and idle through a heartbeat (30 s)"
trace agent 40 "$work/agent" "$(field wss_url)" "$work/firmware.fw" --ca "$(field ca)" \
  --cert "$(field device_cert)" --key "$(field device_key)"
step "trace: the C device example, connected over wss and idle through a heartbeat (30 s)"
trace device 40 "$work/device" "$(field wss_url)" "$(field ca)" "$(field device_cert)" "$(field device_key)"
step "trace: a socket over wss, joined and idle through a heartbeat"
trace idle 0 "$work/nhc_bench" idle "$info" threaded 40
step "trace: push, reply, receive, reconnect"
trace run 0 "$work/nhc_bench" run "$info" latency=2 seq=200 pipe=2000 window=10 flood=2000

step "order"
mkdir -p ffi/link
python3 scripts/link_order.py "$work/map" "$work/agent.trace@$(cat "$work/agent.base")" \
  "$work/device.trace@$(cat "$work/device.base")" \
  "$work/idle.trace@$(cat "$work/idle.base")" \
  "$work/run.trace@$(cat "$work/run.base")" >"$work/order"
mv "$work/order" "ffi/link/$target.order"
echo "wrote ffi/link/$target.order" >&2
