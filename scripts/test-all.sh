#!/usr/bin/env bash
# Everything CI runs (.ci/run: the host suite, armv7 under qemu, the demo),
# then the board checks CI leaves out: the cross tests for aarch64 under
# qemu, the vendored tarball built offline with the armv7 cross compiler,
# the static nhc for x86_64, aarch64 and armv7 musl, the Python wheels for the boards and the size goal of the dist library on
# the ARM targets (full builds each: docs/boards.md, docs/python.md), and
# that the x86_64 dist library is laid out in the order of ffi/link/ (idle
# RSS, docs/benchmarks.md; a rustc or Cargo.lock update makes the order
# stale: rerun scripts/link-order.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
bash .ci/run
bash scripts/cross-test.sh aarch64-unknown-linux-gnu
bash scripts/vendor-build-test.sh
bash scripts/setup-boards.sh
bash scripts/static-agent.sh x86_64-unknown-linux-musl
bash scripts/static-agent.sh aarch64-unknown-linux-musl
bash scripts/static-agent.sh armv7-unknown-linux-musleabihf
bash scripts/wheels.sh
map=$PWD/target/dist/nerves_hub_channel.map
NHC_LINK_MAP=$map cargo build --profile dist --locked -p nerves_hub_channel_ffi
python3 scripts/link_order.py --check "$map" ffi/link/x86_64-unknown-linux-gnu.order
# Last: aarch64 is above the size goal (issue 15, blocked), so this fails.
bash scripts/size-check.sh aarch64-unknown-linux-gnu armv7-unknown-linux-gnueabihf
