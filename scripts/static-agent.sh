#!/usr/bin/env bash
# The static agent: one `nhc` file a user copies to any board of the arch.
#   scripts/static-agent.sh x86_64-unknown-linux-musl
#   scripts/static-agent.sh aarch64-unknown-linux-musl
#   1. builds nhc for the musl target (Rust's musl targets link musl, the
#      unwinder and the C runtime statically); ring's C code is compiled by
#      musl-gcc (x86_64, musl-tools) or by `zig cc` for aarch64-linux-musl
#      (ziglang from PyPI in .venv); aarch64 links with the Debian cross gcc,
#      which only drives the link (rustc passes -nostartfiles -nodefaultlibs
#      and its own musl crt and libc);
#   2. checks that it is static: `file` says "static", `ldd` finds no
#      dynamic section;
#   3. runs it (under qemu-user for aarch64) against the dev server running
#      natively: `nhc device --json` joins with an NH1 product key on the
#      device socket URL and must print the joined event.
# Prints the stripped size; exits non-zero on any failure. armv7 musl is not
# offered: its rust-std is not available here. A PKCS#11 module cannot be
# loaded by a static binary (static musl has no dlopen): keys on a token
# need the dynamically linked nhc.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
target=${1:?usage: scripts/static-agent.sh x86_64-unknown-linux-musl|aarch64-unknown-linux-musl}
upper=$(echo "$target" | tr 'a-z-' 'A-Z_')
lower=${target//-/_}
run=()
case "$target" in
x86_64-unknown-linux-musl)
  command -v musl-gcc >/dev/null || { echo "musl-gcc is missing: run scripts/setup.sh" >&2; exit 1; }
  export "CC_${lower}=musl-gcc"
  strip=strip
  ;;
aarch64-unknown-linux-musl)
  [ -x .venv/bin/python ] && .venv/bin/python -m ziglang version >/dev/null 2>&1 ||
    { echo "ziglang is missing in .venv: run scripts/setup.sh" >&2; exit 1; }
  command -v aarch64-linux-gnu-gcc >/dev/null || { echo "aarch64-linux-gnu-gcc is missing: run scripts/setup.sh" >&2; exit 1; }
  # cc-rs adds clang's --target=<rust triple>, which zig does not take:
  # the wrapper gives zig its own target instead.
  mkdir -p target/tools
  wrapper="$root/target/tools/zig-cc-aarch64-linux-musl"
  cat >"$wrapper" <<WRAP
#!/bin/sh
# Written by scripts/static-agent.sh: zig cc for aarch64-linux-musl.
for a in "\$@"; do shift; case "\$a" in --target=*) ;; *) set -- "\$@" "\$a" ;; esac; done
exec "$root/.venv/bin/python" -m ziglang cc -target aarch64-linux-musl "\$@"
WRAP
  chmod +x "$wrapper"
  export "CC_${lower}=$wrapper" "AR_${lower}=$root/target/tools/zig-ar"
  printf '#!/bin/sh\nexec "%s/.venv/bin/python" -m ziglang ar "$@"\n' "$root" >"$root/target/tools/zig-ar"
  chmod +x "$root/target/tools/zig-ar"
  export "CARGO_TARGET_${upper}_LINKER=aarch64-linux-gnu-gcc"
  command -v qemu-aarch64-static >/dev/null || { echo "qemu-aarch64-static is missing: run scripts/setup.sh" >&2; exit 1; }
  run=(qemu-aarch64-static)
  strip=aarch64-linux-gnu-strip
  ;;
*)
  echo "unsupported target: $target (x86_64-unknown-linux-musl, aarch64-unknown-linux-musl)" >&2
  exit 2
  ;;
esac
rustup target list --installed | grep -qx "$target" ||
  { echo "rust target $target is missing: run scripts/setup.sh" >&2; exit 1; }
step() { printf '\n==== static nhc (%s): %s\n' "$target" "$*"; }

step "build"
cargo build --release --locked --target "$target" -p nhc-cli
nhc="target/$target/release/nhc"

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
stripped="target/$target/release/nhc.stripped"
"$strip" -o "$stripped" "$nhc"
echo "nhc ($target, release, stripped): $(stat -c %s "$stripped") bytes"

step "join the dev server with NH1${run:+ under ${run[*]}}"
cargo build --release --locked -p nhc-devserver --bin nhc-devserver
work=$(mktemp -d)
key=nhp_static_agent_test
secret=static-agent-secret
target/release/nhc-devserver --pki-dir "$work/pki" --ready-file "$work/ready.json" \
  --shared-secret "$key:$secret" >/dev/null 2>"$work/server.log" &
server=$!
trap 'kill $server 2>/dev/null || true; wait $server 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 1 600); do
  [ -s "$work/ready.json" ] && break
  kill -0 "$server" 2>/dev/null || { cat "$work/server.log" >&2; exit 1; }
  sleep 0.1
done
[ -s "$work/ready.json" ] || { echo "the dev server did not start" >&2; exit 1; }
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
