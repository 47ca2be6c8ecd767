#!/usr/bin/env bash
# Python inbound benchmark (bench/python_inbound.py): our module's blocking
# callbacks and asyncio `async for` against a pure-Python Phoenix client from
# PyPI, in the same run, against nhc-devserver.
#   bench/run-python.sh [--count N] [--size B] [--repeat R] [--only ...]
# Environment: VENV (default .venv; made if missing, needs Python >= 3.11 for
# the PyPI client), PYTHON (the interpreter that makes it, default python3),
# PYPI_CLIENT (default phoenix-channels-python-client==0.4.1).
# Results: a table on stdout and bench/results/python_inbound.json.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=${VENV:-.venv}
pypi_client=${PYPI_CLIENT:-phoenix-channels-python-client==0.4.1}

command -v cargo >/dev/null || { echo "run-python: needs a Rust toolchain (https://rustup.rs)" >&2; exit 1; }
if [ ! -x "$venv/bin/python" ]; then
    "${PYTHON:-python3}" -m venv "$venv"
fi
"$venv/bin/python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || {
    echo "run-python: $venv has Python < 3.11; $pypi_client needs 3.11 (set VENV and PYTHON)" >&2
    exit 1
}
"$venv/bin/python" -m pip install --quiet ./bindings/python "$pypi_client"
cargo build --release --locked -p nhc-devserver
exec "$venv/bin/python" bench/python_inbound.py "$@"
