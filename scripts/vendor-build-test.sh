#!/usr/bin/env bash
# Builds the vendored source tarball the way Yocto and Buildroot do: unpacked
# in a fresh directory, an empty CARGO_HOME (no registry, no git cache), no
# network, the armv7 cross compiler (docs/boards.md, "Offline builds"):
#   scripts/vendor-build-test.sh [TARBALL]   (default: a new one from
#                                             scripts/vendor-tarball.sh)
#   a. cargo build --offline --frozen: the C library and the nhc agent;
#   b. CMake, cargo path (NHC_RUST_TARGET, cargo run offline and frozen):
#      build and install; its cargo run must find everything built by (a);
#   c. CMake with -DNHC_PREBUILT_DIR (cargo replaced by `false`, so any
#      cargo run fails the build): build and install.
# Each install must hold the header, the ARM .so with its SONAME, the .a,
# the .pc and the CMake package; (b) and (c) ship the same library.
# Exits non-zero on any failure. One full armv7 release build (see
# docs/boards.md for its cost): scripts/test-all.sh runs it, not CI.
# No network: inside `unshare -n` (a network namespace with no interfaces)
# when the kernel allows it; otherwise CARGO_NET_OFFLINE and --offline only.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
target=armv7-unknown-linux-gnueabihf
gnu=arm-linux-gnueabihf
for tool in "$gnu-gcc" "$gnu-ar" cmake xz; do
  command -v "$tool" >/dev/null || { echo "$tool is missing: run scripts/setup.sh" >&2; exit 1; }
done
rustup target list --installed | grep -qx "$target" ||
  { echo "rust target $target is missing: run scripts/setup.sh" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/nhc-vendor-build.XXXXXX")
trap 'rm -rf "$work"' EXIT
step() { printf '\n==== vendored tarball: %s\n' "$*"; }

tarball=${1:-}
if [ -z "$tarball" ]; then
  step "make the tarball (scripts/vendor-tarball.sh)"
  tarball=$(bash scripts/vendor-tarball.sh "$work/dist" | tail -n 1)
fi
tarball=$(realpath "$tarball")
echo "$(basename "$tarball"): $(stat -c %s "$tarball") bytes"
tar -C "$work" -xf "$tarball"
src=$(echo "$work"/nerves-hub-channel-*/)
src=${src%/}
[ -f "$src/.cargo/config.toml" ] && [ -d "$src/VENDOR" ] ||
  { echo "$tarball: no VENDOR/ and .cargo/config.toml" >&2; exit 1; }

# What the build may use: the toolchain (rustup's, found through the
# absolute path of cargo and rustc), an empty CARGO_HOME, nothing else.
cargo=$(command -v cargo)
rustc=$(rustup which rustc)
cc=$(command -v "$gnu-gcc")
ar=$(command -v "$gnu-ar")
upper=$(echo "$target" | tr 'a-z-' 'A-Z_')
lower=${target//-/_}
export CARGO_HOME="$work/cargo-home" CARGO_TARGET_DIR="$work/target" CARGO_NET_OFFLINE=true RUSTC="$rustc"
mkdir -p "$CARGO_HOME"
export "CARGO_TARGET_${upper}_LINKER=$cc" "CC_${lower}=$cc" "AR_${lower}=$ar"
offline=()
if unshare -n true 2>/dev/null; then
  offline=(unshare -n)
  echo "no network: builds run in a network namespace without interfaces"
else
  echo "NOTE: unshare -n is not allowed here: offline by CARGO_NET_OFFLINE and --offline only"
fi
jobs=$(nproc 2>/dev/null || echo 2)

step "a. cargo build --offline --frozen ($target): library and nhc"
(cd "$src" && "${offline[@]}" "$cargo" build --offline --frozen --release --target "$target" -p nerves_hub_channel_ffi)
(cd "$src" && "${offline[@]}" "$cargo" build --offline --frozen --release --target "$target" -p nhc-cli)
release="$CARGO_TARGET_DIR/$target/release"
file "$release/libnerves_hub_channel_ffi.so" "$release/nhc" | tee "$work/file.txt"
[ "$(grep -c 'ELF 32-bit LSB.*ARM' "$work/file.txt")" = 2 ] || { echo "not ARM ELF" >&2; exit 1; }

# Installs and checks one CMake configuration: $1 name, then cmake flags.
cmake_build() {
  local name=$1
  shift
  local build="$work/build-$name" stage="$work/stage-$name"
  "${offline[@]}" cmake -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_SYSTEM_NAME=Linux -DCMAKE_SYSTEM_PROCESSOR=armv7 \
    -DCMAKE_C_COMPILER="$cc" -DNHC_RUST_TARGET="$target" \
    -DNHC_BUILD_TESTS=OFF -DNHC_BUILD_EXAMPLES=ON -DCMAKE_INSTALL_PREFIX=/usr "$@" >/dev/null
  "${offline[@]}" cmake --build "$build" -j "$jobs"
  DESTDIR="$stage" cmake --install "$build" >/dev/null
  local lib="$stage/usr/lib"
  for f in include/nerves_hub_channel.h lib/libnerves_hub_channel.so lib/libnerves_hub_channel.so.0 \
    lib/libnerves_hub_channel.a lib/pkgconfig/nerves_hub_channel.pc \
    lib/cmake/NervesHubChannel/NervesHubChannelConfig.cmake; do
    [ -e "$stage/usr/$f" ] || { echo "$name: /usr/$f not installed" >&2; find "$stage" >&2; exit 1; }
  done
  file -L "$lib/libnerves_hub_channel.so" | grep -q 'ELF 32-bit LSB.*ARM' ||
    { echo "$name: the library is not an ARM ELF" >&2; exit 1; }
  "$gnu-readelf" -d "$lib/libnerves_hub_channel.so" | grep -q 'SONAME.*\[libnerves_hub_channel.so.0\]' ||
    { echo "$name: SONAME is not libnerves_hub_channel.so.0" >&2; exit 1; }
  echo "$name: installed and checked ($(stat -L -c %s "$lib/libnerves_hub_channel.so") bytes)"
}

step "b. CMake, cargo path (offline, frozen)"
cmake_build cargo -DNHC_CARGO="$cargo" "-DNHC_CARGO_FLAGS=--offline;--frozen"

step "c. CMake with NHC_PREBUILT_DIR (cargo must not run)"
cmake_build prebuilt -DNHC_PREBUILT_DIR="$release" -DNHC_CARGO=false
cmp "$work/stage-cargo/usr/lib/libnerves_hub_channel.so" "$work/stage-prebuilt/usr/lib/libnerves_hub_channel.so" ||
  { echo "the cargo and prebuilt paths installed different libraries" >&2; exit 1; }

# Nothing came from a registry: the empty CARGO_HOME stayed without one.
if [ -e "$CARGO_HOME/registry" ] || [ -e "$CARGO_HOME/git" ]; then
  echo "cargo used a registry or git cache: $(ls "$CARGO_HOME")" >&2
  exit 1
fi
echo
echo "vendored tarball $(basename "$tarball"): offline cross builds (cargo, CMake cargo path, CMake prebuilt) passed"
