#!/usr/bin/env bash
# Everything CI runs (.ci/run), then the cross tests CI leaves out:
# armv7 and aarch64 under qemu (docs/boards.md).
set -euo pipefail
cd "$(dirname "$0")/.."
bash .ci/run
bash scripts/cross-test.sh armv7-unknown-linux-gnueabihf
bash scripts/cross-test.sh aarch64-unknown-linux-gnu
