#!/usr/bin/env bash
# What the board packaging checks need beyond the cross compilers
# (scripts/setup-cross.sh): the arm64/armhf apt lists for Debian's CPython
# (scripts/wheels.sh), ziglang and auditwheel (manylinux wheels), and the
# Rust toolchain that still ships armv7 musl's std (scripts/static-agent.sh).
# Run by scripts/test-all.sh, not by .ci/run: CI runs none of those checks,
# and a toolchain download plus two foreign apt lists would cost it minutes.
# Idempotent: a second run installs nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

# scripts/wheels.sh: Debian's CPython for arm64 and armhf is unpacked from
# its .debs (apt-get download), which needs those architectures in apt's
# lists. Adding an architecture installs nothing.
added=false
for arch in arm64 armhf; do
  if ! dpkg --print-foreign-architectures | grep -qx "$arch"; then
    if [ "$(id -u)" = 0 ]; then
      dpkg --add-architecture "$arch"
      added=true
    else
      echo "setup: please run: dpkg --add-architecture $arch && apt-get update" >&2
      exit 1
    fi
  fi
done
# A mirror that is mid-sync fails one index (seen: bookworm-security armhf):
# the others still serve; scripts/wheels.sh names a package it cannot get.
if $added; then
  apt-get update -qq || echo "setup: apt-get update reported errors; continuing with the lists it got" >&2
fi
# maturin's --zig mode (ziglang, the same pin as scripts/setup.sh) and
# auditwheel check the manylinux wheels.
if [ -x .venv/bin/python ]; then
  .venv/bin/python -c 'import ziglang' 2>/dev/null || .venv/bin/python -m pip install -q "ziglang==0.17.0"
  .venv/bin/python -c 'import auditwheel' 2>/dev/null || .venv/bin/python -m pip install -q "auditwheel==6.8.2"
fi
# The static armv7 agent (scripts/static-agent.sh): Rust 1.93.0 is the last
# release whose rust-std for armv7-unknown-linux-musleabihf rustup can
# install (later manifests say "available = false").
armv7_musl_toolchain=${NHC_ARMV7_MUSL_TOOLCHAIN:-1.93.0}
rustup target list --installed --toolchain "$armv7_musl_toolchain" 2>/dev/null |
  grep -qx armv7-unknown-linux-musleabihf ||
  rustup toolchain install "$armv7_musl_toolchain" --profile minimal \
    --target armv7-unknown-linux-musleabihf --no-self-update
