#!/usr/bin/env bash
# Everything the C side promises, in one command (CI runs it):
#   1. the committed header matches ffi/ (pinned cbindgen)
#   2. configure + build (Release; cargo builds the library and nhc-devserver once)
#   3. ctest: header as C99/C++, API errors, integration tests against nhc-devserver
#   4. the same test programs under valgrind (definite leaks and memory errors fail)
#   5. the same test programs built with clang and run under ASan + LSan + UBSan,
#      against the same release library (a second build directory, $build-asan)
#   5b. the threading-heavy C tests under ThreadSanitizer, against a TSan build
#      of the library (scripts/tsan.sh; needs nightly with rust-src)
#   6. install into a fresh prefix; build and run tests/consumer with
#      find_package (shared and static) and with pkg-config; check the SONAME
#      and the exported symbols; print the stripped library size
# Environment: NHC_BUILD_DIR (default build), NHC_SKIP_VALGRIND=1 to skip step 4,
# NHC_SKIP_ASAN=1 to skip step 5, NHC_SKIP_TSAN=1 to skip step 5b.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
build=${NHC_BUILD_DIR:-build}
case "$build" in /*) ;; *) build="$root/$build" ;; esac
jobs=$(nproc 2>/dev/null || echo 2)

step() { printf '\n==== %s\n' "$*"; }

step "C header is up to date"
bash scripts/gen-header.sh --verify

step "configure ($build)"
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DNHC_BUILD_TESTS=ON -DNHC_BUILD_EXAMPLES=ON \
  -DNHC_VALGRIND_TESTS="$([ "${NHC_SKIP_VALGRIND:-0}" = 1 ] && echo OFF || echo ON)"

step "build"
cmake --build "$build" -j "$jobs"

step "ctest"
ctest --test-dir "$build" -LE valgrind --output-on-failure

if [ "${NHC_SKIP_VALGRIND:-0}" != 1 ]; then
  step "ctest under valgrind"
  ctest --test-dir "$build" -L valgrind --output-on-failure
fi

if [ "${NHC_SKIP_ASAN:-0}" != 1 ]; then
  step "ctest under ASan + LSan + UBSan (clang)"
  command -v clang >/dev/null || { echo "clang is missing: run scripts/setup.sh" >&2; exit 1; }
  # Compilers as cache variables, not CC/CXX: cargo (run by the build) must
  # not see them, or ring's C code would be rebuilt with clang.
  cmake -S . -B "$build-asan" -DCMAKE_BUILD_TYPE=Release -DNHC_BUILD_TESTS=ON -DNHC_BUILD_EXAMPLES=ON \
    -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ -DNHC_SANITIZE=ON -DNHC_VALGRIND_TESTS=OFF >/dev/null
  cmake --build "$build-asan" -j "$jobs"
  ctest --test-dir "$build-asan" --output-on-failure
fi

if [ "${NHC_SKIP_TSAN:-0}" != 1 ]; then
  step "C tests under ThreadSanitizer (library and std built with TSan; nightly)"
  if rustup run nightly rustc --version >/dev/null 2>&1 &&
     [ -d "$(rustc +nightly --print sysroot)/lib/rustlib/src/rust/library" ]; then
    bash scripts/tsan.sh
  else
    echo "WARNING: TSan step skipped: needs the nightly toolchain with rust-src" >&2
    echo "         (rustup toolchain install nightly --component rust-src)" >&2
    # scripts/setup.sh installs it, so in CI a missing toolchain is a failure.
    [ "${CI:-}" != true ] || exit 1
  fi
fi

step "install into a fresh prefix"
prefix="$build/prefix"
rm -rf "$prefix"
cmake --install "$build" --prefix "$prefix" >/dev/null
libdir=$(dirname "$(find "$prefix" -name libnerves_hub_channel.a | head -n 1)")
ls -l "$libdir"

soname=$(readelf -d "$libdir/libnerves_hub_channel.so" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
echo "SONAME: $soname"
[ "$soname" = "libnerves_hub_channel.so.0" ] || { echo "wrong SONAME: $soname" >&2; exit 1; }
# Only the C API is exported (plus nothing Rust-internal).
bad=$(nm -D --defined-only "$libdir/libnerves_hub_channel.so" | awk '$2 ~ /^[TD]$/ {print $3}' | grep -v '^nhc_' || true)
[ -z "$bad" ] || { echo "unexpected exported symbols:" >&2; echo "$bad" >&2; exit 1; }
# libm would cost every device about 0.5 MiB of RSS; nothing in the library needs it.
if readelf -d "$libdir/libnerves_hub_channel.so" | grep -q 'libm\.so'; then
  echo "libnerves_hub_channel.so depends on libm:" >&2
  nm -D --undefined-only "$libdir/libnerves_hub_channel.so" | grep -w -e pow -e powf -e exp -e log >&2 || true
  exit 1
fi

step "consumer: find_package, shared and static"
for mode in shared static; do
  use_static=OFF
  [ "$mode" = static ] && use_static=ON
  cmake -S tests/consumer -B "$build/consumer-$mode" -DCMAKE_PREFIX_PATH="$prefix" \
    -DNHC_USE_STATIC=$use_static >/dev/null
  cmake --build "$build/consumer-$mode" >/dev/null
  "$build/consumer-$mode/consumer"
done
if readelf -d "$build/consumer-static/consumer" | grep -q libnerves_hub_channel; then
  echo "the static consumer links the shared library" >&2
  exit 1
fi

step "consumer: pkg-config"
export PKG_CONFIG_PATH="$libdir/pkgconfig"
pkg-config --modversion nerves_hub_channel
# shellcheck disable=SC2046 # word splitting of the flags is intended
cc -std=c99 -Wall -Wextra -Werror -o "$build/consumer-pkg-config" tests/consumer/main.c \
  $(pkg-config --cflags --libs nerves_hub_channel) -Wl,-rpath,"$libdir"
"$build/consumer-pkg-config"

step "size"
cp "$libdir/libnerves_hub_channel.so" "$build/libnerves_hub_channel.stripped.so"
strip "$build/libnerves_hub_channel.stripped.so"
size_bytes=$(stat -c %s "$build/libnerves_hub_channel.stripped.so")
echo "libnerves_hub_channel.so stripped: $size_bytes bytes ($((size_bytes / 1024)) KiB)"

echo
echo "C tests: all passed"
