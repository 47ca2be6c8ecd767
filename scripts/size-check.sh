#!/usr/bin/env bash
# The size goal of the shipped library: the stripped size-optimised build
# (cargo's `dist` profile, CMake's MinSizeRel) must be at most 2 MiB.
#   scripts/size-check.sh                                  # the host, x86_64
#   scripts/size-check.sh aarch64-unknown-linux-gnu armv7-unknown-linux-gnueabihf
# Builds `-p nerves_hub_channel_ffi` with `--profile dist` for each target
# (cross targets with Debian's cross gcc, the same settings as
# scripts/cross-test.sh, so the build is shared), strips it with the
# target's strip and prints the size. Exits non-zero if any is above
# NHC_SIZE_LIMIT bytes (default 2097152, 2 MiB). docs/benchmarks.md,
# "Size per target", has the measured sizes.
set -euo pipefail
cd "$(dirname "$0")/.."
limit=${NHC_SIZE_LIMIT:-2097152}
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(host)
status=0
for target in "${targets[@]}"; do
  case "$target" in
  host | x86_64-unknown-linux-gnu)
    # No --target: the host build shares target/dist with CMake's MinSizeRel.
    target_flag=() dir=target/dist strip=strip name=$(rustc -vV | sed -n 's/^host: //p')
    ;;
  aarch64-unknown-linux-gnu | armv7-unknown-linux-gnueabihf)
    gnu=$([ "$target" = aarch64-unknown-linux-gnu ] && echo aarch64-linux-gnu || echo arm-linux-gnueabihf)
    command -v "$gnu-gcc" >/dev/null || { echo "$gnu-gcc is missing: run scripts/setup-cross.sh" >&2; exit 1; }
    upper=$(echo "$target" | tr 'a-z-' 'A-Z_') lower=${target//-/_}
    cc_path=$(command -v "$gnu-gcc")
    export "CARGO_TARGET_${upper}_LINKER=$cc_path" "CC_${lower}=$cc_path" "AR_${lower}=$(command -v "$gnu-ar")"
    target_flag=(--target "$target") dir=target/$target/dist strip=$gnu-strip name=$target
    ;;
  *)
    echo "unsupported target: $target (host, x86_64-unknown-linux-gnu, aarch64-unknown-linux-gnu, armv7-unknown-linux-gnueabihf)" >&2
    exit 2
    ;;
  esac
  cargo build --profile dist --locked "${target_flag[@]}" -p nerves_hub_channel_ffi
  stripped=$dir/libnerves_hub_channel.stripped.so
  "$strip" -o "$stripped" "$dir/libnerves_hub_channel_ffi.so"
  size=$(stat -c %s "$stripped")
  if [ "$size" -le "$limit" ]; then verdict="within $limit"; else verdict="ABOVE $limit"; status=1; fi
  printf 'libnerves_hub_channel.so (%s, dist, stripped): %d bytes (%d KiB), %s\n' \
    "$name" "$size" $((size / 1024)) "$verdict"
done
exit $status
