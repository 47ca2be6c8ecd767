# Sourced by the scripts that run a device against the dev server running
# natively (static-agent.sh, wheels.sh). start_devserver KEY SECRET starts
# target/release/nhc-devserver with that NH1 product key, its PKI and ready
# file in $work, sets $server to its pid and waits for the ready file
# ($work/ready.json: URLs and the CA path). The caller's EXIT trap stops it.
start_devserver() {
  target/release/nhc-devserver --pki-dir "$work/pki" --ready-file "$work/ready.json" \
    --shared-secret "$1:$2" >/dev/null 2>"$work/server.log" &
  server=$!
  for _ in $(seq 1 600); do
    [ -s "$work/ready.json" ] && return 0
    kill -0 "$server" 2>/dev/null || { cat "$work/server.log" >&2; return 1; }
    sleep 0.1
  done
  echo "the dev server did not start" >&2
  return 1
}
