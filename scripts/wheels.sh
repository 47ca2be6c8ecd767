#!/usr/bin/env bash
# Python wheels for the boards: abi3 manylinux2014 wheels of bindings/python
# for x86_64, aarch64 and armv7, checked and run.
#   scripts/wheels.sh                 # all three
#   scripts/wheels.sh aarch64         # one of x86_64, aarch64, armv7
#   1. `maturin build --release --zig --target <T> --compatibility
#      manylinux2014`: zig (ziglang from PyPI, in .venv) compiles ring's C
#      code and links against glibc 2.17 stubs, so the wheel runs on any
#      glibc >= 2.17 without a manylinux container. Each target builds in
#      target/<T>/release;
#   2. `auditwheel show` must find the wheel consistent with
#      manylinux_2_17_<arch> and the file name must say cp39-abi3;
#   3. installs the wheel (pip --target, for the wheel's platform) and runs
#      scripts/wheel-smoke.py with a CPython of that architecture: the host's
#      for x86_64; for aarch64 and armv7 Debian's python3.11 (arm64, armhf),
#      unpacked from its .debs into target/board-python/<arch> (no dpkg
#      install: it would replace the host's python) and run under
#      qemu-user. The smoke test imports the module and joins the dev
#      server, running natively, with an NH1 shared secret.
# Exits non-zero on any failure. scripts/setup-boards.sh installs what it
# needs (qemu-user-static, the arm64/armhf apt architectures, ziglang and
# auditwheel in .venv).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
arches=("$@")
[ ${#arches[@]} -gt 0 ] || arches=(x86_64 aarch64 armv7)
py=$root/.venv/bin/python
for mod in maturin ziglang auditwheel; do
  "$py" -c "import $mod" 2>/dev/null || { echo "$mod is missing in .venv: run scripts/setup-boards.sh" >&2; exit 1; }
done
# maturin finds zig as `python -m ziglang` through the python on PATH.
export PATH="$root/.venv/bin:$PATH"
out=$root/target/wheels-boards
mkdir -p "$out"
step() { printf '\n==== wheel %s: %s\n' "$arch" "$*"; }

# Debian's CPython for a foreign architecture, unpacked (not installed)
# from the packages apt would install with it.
board_python() {
  local deb_arch=$1 dir=$root/target/board-python/$1
  if [ ! -x "$dir/usr/bin/python3.11" ]; then
    local debs=$root/target/board-python/debs-$deb_arch pkgs=()
    for p in python3.11-minimal libpython3.11-minimal libpython3.11-stdlib libc6 libgcc-s1 zlib1g \
      libexpat1 libssl3 libffi8 libbz2-1.0 liblzma5 libuuid1 libcrypt1; do
      pkgs+=("$p:$deb_arch")
    done
    rm -rf "$debs" "$dir.tmp" && mkdir -p "$debs" "$dir.tmp"
    (cd "$debs" && apt-get download -q "${pkgs[@]}" 2>&1 | grep -v '^W: Download is performed unsandboxed' >&2) || {
      echo "apt-get download for $deb_arch failed: run scripts/setup-boards.sh (adds the $deb_arch architecture)" >&2
      exit 1
    }
    for deb in "$debs"/*.deb; do dpkg-deb -x "$deb" "$dir.tmp"; done
    rm -rf "$dir" "$debs" && mv "$dir.tmp" "$dir"
  fi
  echo "$dir"
}

cargo build --release --locked -p nhc-devserver --bin nhc-devserver
work=$(mktemp -d)
server=
cleanup() {
  [ -z "$server" ] || { kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; }
  rm -rf "$work"
}
trap cleanup EXIT
key=nhp_wheel_test
secret=wheel-test-secret
. scripts/devserver-ready.sh
start_devserver "$key" "$secret"

for arch in "${arches[@]}"; do
  case "$arch" in
  x86_64) target=x86_64-unknown-linux-gnu run=() ;;
  aarch64) target=aarch64-unknown-linux-gnu deb_arch=arm64 qemu=qemu-aarch64-static ;;
  armv7) target=armv7-unknown-linux-gnueabihf deb_arch=armhf qemu=qemu-arm-static ;;
  *) echo "unknown arch: $arch (x86_64, aarch64, armv7)" >&2; exit 2 ;;
  esac
  # auditwheel and pip name 32-bit ARM armv7l.
  tag_arch=${arch/armv7/armv7l}

  step "maturin build --zig --target $target (manylinux2014)"
  rm -f "$out"/nerves_hub_channel-*manylinux_2_17_"${tag_arch}"*.whl
  maturin build --release --locked --zig --target "$target" --compatibility manylinux2014 \
    -m bindings/python/Cargo.toml --out "$out"
  wheel=$(ls "$out"/nerves_hub_channel-*-cp39-abi3-*manylinux_2_17_"${tag_arch}"*.whl)
  echo "$wheel ($(stat -c %s "$wheel") bytes)"

  step "auditwheel show"
  report=$(auditwheel show "$wheel")
  echo "$report"
  # auditwheel wraps its lines: compare with the newlines made spaces.
  grep -q "consistent with the following platform tag: \"manylinux_2_17_${tag_arch}\"" <<<"$(tr '\n' ' ' <<<"$report")" ||
    { echo "not a manylinux_2_17_${tag_arch} wheel" >&2; exit 1; }

  step "install and join the dev server"
  site=$work/site-$arch
  pip_platform=manylinux2014_${tag_arch}
  "$py" -m pip install -q --no-deps --no-index --only-binary=:all: --target "$site" \
    --platform "$pip_platform" --implementation cp --python-version 3.11 --abi abi3 "$wheel"
  if [ "$arch" = x86_64 ]; then
    run=(python3)
  else
    command -v "$qemu" >/dev/null || { echo "$qemu is missing: run scripts/setup-cross.sh" >&2; exit 1; }
    board=$(board_python "$deb_arch")
    run=("$qemu" -L "$board" "$board/usr/bin/python3.11")
  fi
  # -I would drop PYTHONPATH: -s -E are not used; the site dir is the only path added.
  PYTHONPATH="$site" PYTHONNOUSERSITE=1 "${run[@]}" scripts/wheel-smoke.py "$work/ready.json" "$key" "$secret" \
    "$([ "$arch" = armv7 ] && echo armv7l || echo "$arch")"
done
echo
echo "wheels (${arches[*]}): manylinux2014 abi3, import and join the dev server: all passed"
ls -l "$out"/*.whl
