#!/usr/bin/env bash
# The fleet-simulation image (deploy/container/Containerfile):
#   1. builds the static musl nhc and checks it (static, joins the dev
#      server) with scripts/static-agent.sh;
#   2. puts it, stripped, alone in target/fleet-image (the build context, so
#      the engine is not sent the whole target directory);
#   3. builds the image with podman or docker when one of them can, else
#      prints the command.
#   scripts/fleet-image.sh [TAG]        (default nhc-simulate:0.1.0)
set -euo pipefail
cd "$(dirname "$0")/.."
tag=${1:-nhc-simulate:0.1.0}
target=x86_64-unknown-linux-musl
bash scripts/static-agent.sh "$target"
context=target/fleet-image
rm -rf "$context"
mkdir -p "$context"
strip -o "$context/nhc" "target/$target/release/nhc"
"$context/nhc" simulate --help >/dev/null
echo "static nhc: $(stat -c %s "$context/nhc") bytes (stripped)"
build=(build -f deploy/container/Containerfile -t "$tag" "$context")
for engine in podman docker; do
  if command -v "$engine" >/dev/null && "$engine" info >/dev/null 2>&1; then
    "$engine" "${build[@]}"
    echo "built $tag with $engine"
    exit 0
  fi
done
echo "no container engine answers here; build the image with:"
echo "  podman ${build[*]}"
