# Sourced by the benchmark scripts: starts nhc-devserver (release build) in
# the background and waits for its ready file.
#   start_devserver DIR   sets server_pid and info (DIR/ready: the server's
#                         JSON ready line); its output goes to DIR/stdout, DIR/stderr
#   stop_devserver
start_devserver() {
  local dir=$1
  "$root/target/release/nhc-devserver" --pki-dir "$dir/pki" --ready-file "$dir/ready" \
    >"$dir/stdout" 2>"$dir/stderr" &
  server_pid=$!
  for _ in $(seq 600); do
    [ -s "$dir/ready" ] && break
    kill -0 "$server_pid" 2>/dev/null || { cat "$dir/stderr" >&2; exit 1; }
    sleep 0.05
  done
  [ -s "$dir/ready" ] || { echo "nhc-devserver not ready after 30 s" >&2; exit 1; }
  info=$dir/ready
}

stop_devserver() { kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; }
