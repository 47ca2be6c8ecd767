#!/bin/sh
# ctest fixture: starts one nhc-devserver on ephemeral ports for the C tests
# and stops it afterwards.
#   devserver.sh start BINARY DIR   -> DIR/server.json (the server's JSON line), DIR/pid
#   devserver.sh stop  BINARY DIR
# The server writes its ready line to --ready-file atomically (write + rename);
# the wait polls for that file, with a deadline.
set -eu
cmd=$1 bin=$2 dir=$3

case "$cmd" in
start)
    rm -rf "$dir"
    mkdir -p "$dir"
    # The NH1 product key of testlib.h (TL_PRODUCT_KEY, TL_PRODUCT_SECRET).
    "$bin" --pki-dir "$dir/pki" --ready-file "$dir/ready" \
        --shared-secret nhp_nhc_tests:nhc-tests-product-secret >"$dir/stdout" 2>"$dir/stderr" &
    echo $! >"$dir/pid"
    tries=0
    until [ -s "$dir/ready" ]; do
        if ! kill -0 "$(cat "$dir/pid")" 2>/dev/null; then
            echo "nhc-devserver exited early:" >&2
            cat "$dir/stderr" >&2
            exit 1
        fi
        tries=$((tries + 1))
        if [ "$tries" -gt 600 ]; then
            echo "nhc-devserver not ready after 30 s" >&2
            cat "$dir/stderr" >&2
            exit 1
        fi
        sleep 0.05
    done
    cp "$dir/ready" "$dir/server.json"
    cat "$dir/server.json"
    ;;
stop)
    if [ -f "$dir/pid" ]; then
        kill "$(cat "$dir/pid")" 2>/dev/null || true
        rm -f "$dir/pid"
    fi
    ;;
*)
    echo "usage: $0 start|stop BINARY DIR" >&2
    exit 2
    ;;
esac
