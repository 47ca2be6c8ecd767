#!/usr/bin/env bash
# The fleet-simulation image (deploy/container/Containerfile):
#   1. builds the static musl nhc (x86_64; scripts/static-agent.sh builds
#      and checks the same binary for other targets);
#   2. checks that it is static and runs `nhc simulate --help` with it;
#   3. puts it alone in target/fleet-image (the build context, so the
#      engine is not sent the whole target directory);
#   4. builds the image with podman or docker when one of them can, else
#      prints the command.
#   scripts/fleet-image.sh [TAG]        (default nhc-simulate:0.1.0)
set -euo pipefail
cd "$(dirname "$0")/.."
tag=${1:-nhc-simulate:0.1.0}
target=x86_64-unknown-linux-musl
command -v musl-gcc >/dev/null || { echo "musl-gcc is missing: apt-get install musl-tools" >&2; exit 1; }
rustup target list --installed | grep -qx "$target" ||
  { echo "rust target $target is missing: rustup target add $target" >&2; exit 1; }
CC_x86_64_unknown_linux_musl=musl-gcc cargo build --release --locked --target "$target" -p nhc-cli
nhc="target/$target/release/nhc"
case "$(file -L "$nhc")" in
*"statically linked"* | *"static-pie linked"*) ;;
*) echo "$nhc is not a static executable" >&2; exit 1 ;;
esac
"$nhc" simulate --help >/dev/null
context=target/fleet-image
rm -rf "$context"
mkdir -p "$context"
strip -o "$context/nhc" "$nhc"
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
