#!/usr/bin/env bash
# Runs the cargo-fuzz (libFuzzer) targets of fuzz/.
#
#   scripts/fuzz.sh smoke            every target for FUZZ_SMOKE_SECONDS (15) each (CI)
#   scripts/fuzz.sh long [SECONDS]   every target for SECONDS (300) each
#   scripts/fuzz.sh run TARGET SECS  one target
#
# Needs cargo-fuzz (scripts/setup.sh installs the pinned version). libFuzzer
# and -Zsanitizer are unstable flags: the default (stable) toolchain is used
# with RUSTC_BOOTSTRAP=1, which unlocks them, so CI needs no nightly install.
# New corpus entries go to fuzz/target/corpus/<target> (not committed); the
# committed seeds in fuzz/corpus/<target> are only read. A crash leaves its
# input in fuzz/artifacts/<target>/ and fails the script; reproduce it with
# `cargo fuzz run <target> fuzz/artifacts/<target>/<file>` in fuzz/.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

targets=(codec_server codec_client codec_msgpack update_info nh1_sign socket_config ffi_entry)

export RUSTC_BOOTSTRAP=1
fuzz=(cargo fuzz)

build() { "${fuzz[@]}" build -O; }

run() {
  local target=$1 seconds=$2 work="target/corpus/$1"
  mkdir -p "$work"
  printf '\n==== fuzz %s for %ss\n' "$target" "$seconds"
  # -max_len keeps inputs near real frame sizes; -rss_limit_mb catches leaks
  # and runaway allocations. Output is long: keep the summary lines only.
  "${fuzz[@]}" run -O "$target" "$work" "corpus/$target" -- \
    -max_total_time="$seconds" -max_len=4096 -rss_limit_mb=2048 \
    -print_final_stats=1 2>&1 |
    grep -E '^(Done|#[0-9]+[[:space:]]+DONE|stat::number_of_executed_units|stat::peak_rss_mb|==[0-9]+==ERROR|SUMMARY|thread .* panicked|Test unit written|INFO: Loaded)' ||
    true
  # grep hides the exit status of the fuzzer: crashes are found by artifact.
  if compgen -G "artifacts/$target/*" >/dev/null; then
    echo "fuzz: $target crashed; inputs in fuzz/artifacts/$target/" >&2
    return 1
  fi
}

mode=${1:-smoke}
case "$mode" in
  smoke)
    build
    for t in "${targets[@]}"; do run "$t" "${FUZZ_SMOKE_SECONDS:-15}"; done
    ;;
  long)
    build
    for t in "${targets[@]}"; do run "$t" "${2:-300}"; done
    ;;
  run)
    build
    run "${2:?target}" "${3:-300}"
    ;;
  *)
    echo "usage: $0 smoke | long [SECONDS] | run TARGET [SECONDS]" >&2
    exit 2
    ;;
esac
echo "fuzz: no crashes"
