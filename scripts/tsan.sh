#!/usr/bin/env bash
# C tests under ThreadSanitizer, against a library built with TSan itself.
#
# TSan only understands synchronisation it sees: Rust's std synchronises
# with futexes and atomics, so against the normal release library every
# hand-over between the library's threads and C code is reported as a race
# (hundreds of false reports per test). Here the library and Rust's std are
# rebuilt with -Zsanitizer=thread (-Zbuild-std; nightly toolchain with
# rust-src) into target/tsan, and the C tests link Rust's TSan runtime, whose
# version matches the instrumented library. Only ring's C/assembly stays
# uninstrumented (it shares no memory between threads).
#
#   scripts/tsan.sh [test ...]     default: the threading-heavy C tests
# Cost: about 5 min for the first build on 2 cores (std included), seconds
# for the tests.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
tests=("$@")
[ ${#tests[@]} -gt 0 ] || tests=(int_update_cancel int_threaded int_reentrant)

triple=$(rustc -vV | sed -n 's/^host: //p')
sysroot=$(rustc +nightly --print sysroot)
runtime="$sysroot/lib/rustlib/$triple/lib/librustc-nightly_rt.tsan.a"
[ -f "$runtime" ] || { echo "tsan: the nightly toolchain has no TSan runtime ($runtime)" >&2; exit 2; }
[ -d "$sysroot/lib/rustlib/src/rust/library" ] || {
  echo "tsan: needs rust-src: rustup component add rust-src --toolchain nightly" >&2; exit 2; }

lib="$root/target/tsan/$triple/release"
RUSTFLAGS="-Zsanitizer=thread" cargo +nightly build -Zbuild-std --target "$triple" --release --locked \
  -p nerves_hub_channel_ffi --target-dir target/tsan
ln -sf libnerves_hub_channel_ffi.so "$lib/libnerves_hub_channel.so.0"
cargo build --release --locked -p nhc-devserver

out="$root/target/tsan/c"
mkdir -p "$out"
cflags=(-fsanitize=thread -g -O1 -Wall -Wextra -Werror -std=c99 -I include -I tests/c)
clang "${cflags[@]}" -c tests/c/testlib.c -o "$out/testlib.o"
server="$out/devserver"
sh tests/c/devserver.sh start "$root/target/release/nhc-devserver" "$server" >/dev/null
trap 'sh tests/c/devserver.sh stop "$root/target/release/nhc-devserver" "$server"' EXIT
for t in "${tests[@]}"; do
  clang "${cflags[@]}" -c "tests/c/$t.c" -o "$out/$t.o"
  # Linked with Rust's TSan runtime (not clang's: the instrumented library
  # needs the runtime of its own LLVM version).
  clang -o "$out/$t" "$out/$t.o" "$out/testlib.o" -Wl,--whole-archive "$runtime" -Wl,--no-whole-archive \
    "$lib/libnerves_hub_channel_ffi.so" -Wl,-rpath,"$lib" -lpthread -ldl -lm -rdynamic
  echo "== $t under TSan"
  NHC_TEST_SERVER_INFO="$server/server.json" NHC_TEST_TIMEOUT_SCALE=4 \
    TSAN_OPTIONS="halt_on_error=1 exitcode=66" "$out/$t"
done
echo "TSan: all passed"
