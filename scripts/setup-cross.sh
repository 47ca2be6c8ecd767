#!/usr/bin/env bash
# What the cross builds need (scripts/cross-test.sh): Debian's cross
# compilers for armv7 and aarch64 (glibc), musl-tools, qemu-user-static
# to run the results, and the Rust targets. Run by scripts/setup.sh.
# Idempotent: a second run installs nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
for pkg in gcc-arm-linux-gnueabihf g++-arm-linux-gnueabihf gcc-aarch64-linux-gnu g++-aarch64-linux-gnu \
  qemu-user-static musl-tools file; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need_apt+=("$pkg")
done
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}"
  else
    echo "setup: please install: ${need_apt[*]}" >&2
    exit 1
  fi
fi

installed=$(rustup target list --installed)
for target in armv7-unknown-linux-gnueabihf aarch64-unknown-linux-gnu aarch64-unknown-linux-musl \
  x86_64-unknown-linux-musl; do
  grep -qx "$target" <<<"$installed" || rustup target add "$target"
done
