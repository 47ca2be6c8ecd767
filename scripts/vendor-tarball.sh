#!/usr/bin/env bash
# Makes the source tarball distributions build from with no network:
#   scripts/vendor-tarball.sh [OUT_DIR]   (default: target/dist)
# writes OUT_DIR/nerves-hub-channel-VERSION.tar.xz holding
#   - the project's files as git knows them (tracked and untracked but not
#     ignored: no target/, build dirs, .venv or .git), under
#     nerves-hub-channel-VERSION/;
#   - VENDOR/: every crate Cargo.lock names (`cargo vendor
#     --versioned-dirs`), the ones no Linux target compiles stubbed
#     (scripts/vendor-stub-crates.py: Windows, macOS, wasi). The name is
#     Buildroot's: its cargo download step leaves a tarball with a
#     top-level VENDOR/ as it is instead of vendoring again;
#   - .cargo/config.toml pointing crates.io at VENDOR/, so that
#     `cargo build --offline --frozen` and CMake's cargo run need no
#     registry (docs/boards.md, "Offline builds from the vendored tarball").
# Needs the crates in ~/.cargo (or network) once, to vendor them.
# Prints the tarball's path on its last line.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
out=${1:-$root/target/dist}
mkdir -p "$out"
out=$(cd "$out" && pwd)

version=$(sed -n '/^\[workspace\.package\]/,/^\[/s/^version = "\(.*\)"/\1/p' Cargo.toml)
[ -n "$version" ] || { echo "no [workspace.package] version in Cargo.toml" >&2; exit 1; }
name=nerves-hub-channel-$version
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
tree="$work/$name"
mkdir -p "$tree"

# The sources: what git tracks or would track (ignored files stay out).
git ls-files -z --cached --others --exclude-standard |
  while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done |
  tar -c --null -T - -f - | tar -x -C "$tree"

# Crates for every platform in the lock: --frozen resolves all of them.
cargo vendor --quiet --locked --versioned-dirs "$tree/VENDOR" >/dev/null
# The Linux targets a board (or its build host) may be; a crate none of
# them compiles becomes a stub.
platforms=()
for t in x86_64-unknown-linux-gnu i686-unknown-linux-gnu aarch64-unknown-linux-gnu \
  armv7-unknown-linux-gnueabihf arm-unknown-linux-gnueabihf arm-unknown-linux-gnueabi \
  riscv64gc-unknown-linux-gnu powerpc64le-unknown-linux-gnu powerpc-unknown-linux-gnu \
  mips-unknown-linux-gnu mipsel-unknown-linux-gnu x86_64-unknown-linux-musl aarch64-unknown-linux-musl \
  armv7-unknown-linux-musleabihf; do
  platforms+=(--filter-platform "$t")
done
cargo metadata --format-version 1 --locked --offline "${platforms[@]}" >"$work/metadata.json"
python3 scripts/vendor-stub-crates.py "$tree/VENDOR" "$work/metadata.json"

mkdir -p "$tree/.cargo"
cat >"$tree/.cargo/config.toml" <<'TOML'
# Written by scripts/vendor-tarball.sh: every crate comes from VENDOR/,
# never from the network (build with --offline --frozen).
[source.crates-io]
replace-with = "vendored-sources"

[source.vendored-sources]
directory = "VENDOR"
TOML

tarball="$out/$name.tar.xz"
# Reproducible: fixed order, owner and times (the last commit's).
mtime=$(git log -1 --format=%ct 2>/dev/null || date +%s)
tar -C "$work" --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$mtime" \
  -cf - "$name" | xz -T0 -6 >"$tarball"
echo "$(du -h "$tarball" | cut -f1) $(stat -c %s "$tarball") bytes, $(ls "$tree/VENDOR" | wc -l) vendored crates"
echo "$tarball"
