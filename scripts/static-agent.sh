#!/usr/bin/env bash
# The static agent: one `nhc` file a user copies to any board of the arch.
#   scripts/static-agent.sh x86_64-unknown-linux-musl
#   scripts/static-agent.sh aarch64-unknown-linux-musl
#   scripts/static-agent.sh armv7-unknown-linux-musleabihf
#   1. builds nhc for the musl target (Rust's musl targets link musl, the
#      unwinder and the C runtime statically); ring's C code is compiled by
#      musl-gcc (x86_64, musl-tools) or by `zig cc` for aarch64-linux-musl
#      and arm-linux-musleabihf (ziglang from PyPI in .venv); aarch64 and
#      armv7 link with the Debian cross gcc, which only drives the link
#      (rustc passes -nostartfiles -nodefaultlibs and its own musl crt and
#      libc). armv7 builds with Rust $NHC_ARMV7_MUSL_TOOLCHAIN (1.93.0 by
#      default): rustup has no rust-std for armv7-unknown-linux-musleabihf
#      in 1.93.1 or later releases (their manifests say "available = false"),
#      and -Zbuild-std, which would build it from source, is nightly-only;
#   2. checks that it is static: `file` says "static", `ldd` finds no
#      dynamic section;
#   3. runs it (under qemu-user for aarch64) against the dev server running
#      natively: `nhc device --json` joins with an NH1 product key on the
#      device socket URL and must print the joined event.
# Prints the stripped size; exits non-zero on any failure. A PKCS#11 module cannot be
# loaded by a static binary (static musl has no dlopen): keys on a token
# need the dynamically linked nhc.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
target=${1:?usage: scripts/static-agent.sh x86_64-unknown-linux-musl|aarch64-unknown-linux-musl|armv7-unknown-linux-musleabihf}
upper=$(echo "$target" | tr 'a-z-' 'A-Z_')
lower=${target//-/_}
run=()
toolchain=
case "$target" in
x86_64-unknown-linux-musl)
  command -v musl-gcc >/dev/null || { echo "musl-gcc is missing: run scripts/setup.sh" >&2; exit 1; }
  export "CC_${lower}=musl-gcc"
  strip=strip
  ;;
aarch64-unknown-linux-musl | armv7-unknown-linux-musleabihf)
  [ -x .venv/bin/python ] && .venv/bin/python -m ziglang version >/dev/null 2>&1 ||
    { echo "ziglang is missing in .venv: run scripts/setup.sh" >&2; exit 1; }
  if [ "$target" = aarch64-unknown-linux-musl ]; then
    zig_target=aarch64-linux-musl gnu=aarch64-linux-gnu qemu=qemu-aarch64-static
  else
    zig_target=arm-linux-musleabihf gnu=arm-linux-gnueabihf qemu=qemu-arm-static
    toolchain=${NHC_ARMV7_MUSL_TOOLCHAIN:-1.93.0}
  fi
  command -v "$gnu-gcc" >/dev/null || { echo "$gnu-gcc is missing: run scripts/setup.sh" >&2; exit 1; }
  # cc-rs adds clang's --target=<rust triple>, which zig does not take:
  # the wrapper gives zig its own target instead.
  mkdir -p target/tools
  wrapper="$root/target/tools/zig-cc-$zig_target"
  cat >"$wrapper" <<WRAP
#!/bin/sh
# Written by scripts/static-agent.sh: zig cc for $zig_target.
for a in "\$@"; do shift; case "\$a" in --target=*) ;; *) set -- "\$@" "\$a" ;; esac; done
exec "$root/.venv/bin/python" -m ziglang cc -target $zig_target "\$@"
WRAP
  chmod +x "$wrapper"
  export "CC_${lower}=$wrapper" "AR_${lower}=$root/target/tools/zig-ar"
  printf '#!/bin/sh\nexec "%s/.venv/bin/python" -m ziglang ar "$@"\n' "$root" >"$root/target/tools/zig-ar"
  chmod +x "$root/target/tools/zig-ar"
  export "CARGO_TARGET_${upper}_LINKER=$gnu-gcc"
  command -v "$qemu" >/dev/null || { echo "$qemu is missing: run scripts/setup.sh" >&2; exit 1; }
  run=("$qemu")
  strip=$gnu-strip
  ;;
*)
  echo "unsupported target: $target (x86_64-unknown-linux-musl, aarch64-unknown-linux-musl, armv7-unknown-linux-musleabihf)" >&2
  exit 2
  ;;
esac
cargo=(cargo${toolchain:+ +$toolchain})
rustup target list --installed ${toolchain:+--toolchain "$toolchain"} | grep -qx "$target" ||
  { echo "rust target $target${toolchain:+ (toolchain $toolchain)} is missing: run scripts/setup.sh" >&2; exit 1; }
step() { printf '\n==== static nhc (%s): %s\n' "$target" "$*"; }

step "build"
echo "${cargo[*]} (rustc $("${cargo[@]}" --version | cut -d' ' -f2))"
# Another rustc shares no artifacts with the default one: its own target
# directory also keeps it from waiting on the default one's lock.
target_dir=target${toolchain:+/toolchain-$toolchain}
"${cargo[@]}" build --release --locked --target "$target" --target-dir "$target_dir" -p nhc-cli
nhc="$target_dir/$target/release/nhc"

step "static?"
info=$(file -L "$nhc")
echo "$info"
case "$info" in
*"statically linked"* | *"static-pie linked"*) ;;
*) echo "not a static executable" >&2; exit 1 ;;
esac
# ldd (the host's) reads the dynamic section of any ELF: none for a static one.
if ldd_out=$(ldd "$nhc" 2>&1); then
  case "$ldd_out" in
  *"statically linked"* | *"not a dynamic executable"*) ;;
  *) echo "ldd lists dependencies: $ldd_out" >&2; exit 1 ;;
  esac
fi
echo "ldd: ${ldd_out}"
stripped="$nhc.stripped"
"$strip" -o "$stripped" "$nhc"
echo "nhc ($target, release, stripped): $(stat -c %s "$stripped") bytes"

step "join the dev server with NH1${run:+ under ${run[*]}}"
cargo build --release --locked -p nhc-devserver --bin nhc-devserver
work=$(mktemp -d)
server=
trap '[ -z "$server" ] || { kill "$server" 2>/dev/null || true; wait "$server" 2>/dev/null || true; }; rm -rf "$work"' EXIT
key=nhp_static_agent_test
secret=static-agent-secret
. scripts/devserver-ready.sh
start_devserver "$key" "$secret"
field() { python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])' "$work/ready.json" "$1"; }
# Waits for the joined event (--duration bounds the run), then stops the
# device with SIGTERM, which must close it cleanly (exit 0).
"${run[@]}" "$nhc" device --json --url "$(field device_socket_url)" --ca "$(field ca)" \
  --shared-secret "$key:$secret" --identifier static-agent-0001 --duration 120 \
  >"$work/events.json" 2>"$work/nhc.log" &
device=$!
joined=false
for _ in $(seq 1 1200); do
  if grep -qs '"event":"joined","topic":"device"' "$work/events.json"; then joined=true; break; fi
  kill -0 "$device" 2>/dev/null || break
  sleep 0.1
done
kill -TERM "$device" 2>/dev/null || true
status=0
wait "$device" || status=$?
if ! $joined || [ "$status" != 0 ]; then
  echo "nhc did not join and stop cleanly (exit status $status):" >&2
  cat "$work/events.json" "$work/nhc.log" >&2
  exit 1
fi
grep '"event":"joined"' "$work/events.json"
echo
echo "static nhc for $target: static, joins the dev server"
