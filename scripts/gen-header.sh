#!/usr/bin/env bash
# Regenerates include/nerves_hub_channel.h from ffi/ with the pinned cbindgen.
#   scripts/gen-header.sh           rewrite the header
#   scripts/gen-header.sh --verify  fail (exit 1) if the committed header is stale
# The command line is fixed: CI and the pre-commit hook run the same one.
set -euo pipefail
cd "$(dirname "$0")/.."

want=0.29.4
have=$(cbindgen --version 2>/dev/null | awk '{print $2}' || true)
if [ "$have" != "$want" ]; then
  echo "gen-header: cbindgen $want is required (found: ${have:-none})." >&2
  echo "            cargo install cbindgen --locked --version $want" >&2
  exit 2
fi

case "${1:-}" in
  --verify)
    if ! cbindgen --verify --config ffi/cbindgen.toml --crate nerves_hub_channel_ffi \
        --output include/nerves_hub_channel.h ffi; then
      echo "gen-header: include/nerves_hub_channel.h is out of date; run scripts/gen-header.sh" >&2
      exit 1
    fi
    ;;
  "")
    cbindgen --config ffi/cbindgen.toml --crate nerves_hub_channel_ffi \
      --output include/nerves_hub_channel.h ffi
    ;;
  *)
    echo "usage: $0 [--verify]" >&2
    exit 2
    ;;
esac
