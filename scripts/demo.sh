#!/usr/bin/env bash
# The demo: builds the library, starts the bundled dev server, and runs the
# example device against it over wss with a client certificate. Both sides
# print what they exchange.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v cargo >/dev/null || { echo "demo: needs a Rust toolchain (https://rustup.rs)" >&2; exit 1; }
# Two builds: `--example` limits a build to that one target, so in one command
# with `-p nhc-devserver` the server binary would never be built.
cargo build --release --locked -p nhc-devserver --bin nhc-devserver
cargo build --release --locked -p nerves_hub_channel --example device

work=$(mktemp -d)
fifo="$work/server-out"
mkfifo "$fifo"
target/release/nhc-devserver --demo --pki-dir target/demo-pki >"$fifo" &
server=$!
trap 'kill $server 2>/dev/null || true; wait $server 2>/dev/null || true; rm -rf "$work"' EXIT
exec 3<"$fifo"
read -r info <&3
# Keep echoing what the server prints (the messages it receives).
sed -u 's/^/  [server] /' <&3 &

field() { python3 -c 'import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$info" "$1"; }
echo "dev server: $(field wss_url) (PKI in $(field pki_dir))"
target/release/examples/device \
  --url "$(field wss_url)" --ca "$(field ca)" --cert "$(field device_cert)" --key "$(field device_key)" \
  --out "$work"
echo "demo: done"
