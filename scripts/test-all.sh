#!/usr/bin/env bash
# Everything CI runs (.ci/run), then the cross tests CI leaves out:
# armv7 and aarch64 under qemu, the vendored tarball built offline with the
# armv7 cross compiler, and the static nhc for x86_64 and aarch64 musl (full
# builds each: docs/boards.md).
set -euo pipefail
cd "$(dirname "$0")/.."
bash .ci/run
bash scripts/cross-test.sh armv7-unknown-linux-gnueabihf
bash scripts/cross-test.sh aarch64-unknown-linux-gnu
bash scripts/vendor-build-test.sh
bash scripts/static-agent.sh x86_64-unknown-linux-musl
bash scripts/static-agent.sh aarch64-unknown-linux-musl
