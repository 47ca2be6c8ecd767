#!/usr/bin/env bash
# Runs every test: formatting, lints, header drift, Rust, C (under valgrind)
# and Python. One release build is shared by all steps.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh
echo "==== setup (${SECONDS} s)"
# The real fwup for every step: the update-chain tests (Rust, C, Python)
# and the dev server's .fw metadata read it from here.
export NHC_FWUP="$PWD/target/tools/fwup/bin/fwup"

# Each step says what the one before it cost, so a CI log shows where the
# minutes go (.ci/run has to stay under 60).
last=$SECONDS
first=1
step() {
  [ "$first" = 1 ] || printf '==== (%d s)\n' "$((SECONDS - last))"
  first=0
  printf '\n==== %s\n' "$*"
  last=$SECONDS
}

step "cargo fmt"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "Rust tests"
cargo test --release --locked --workspace --exclude nerves_hub_channel_py

step "Fuzz smoke: every cargo-fuzz target for a few seconds"
bash scripts/fuzz.sh smoke

step "Supply chain: cargo deny (licenses, bans, sources; offline)"
# cargo deny reads the metadata of every platform's dependencies offline.
cargo fetch --locked
cargo deny --offline check licenses bans sources

step "Kubernetes manifests: kubeconform (deploy/k8s)"
bash scripts/k8s-check.sh

step "C: header drift, ctest, valgrind, install, consumers"
bash scripts/c-tests.sh

step "Python: pip install ./bindings/python, pytest"
cargo build --release --locked -p nhc-devserver
.venv/bin/python -m pip install -q ./bindings/python
.venv/bin/python -m pytest -q -p no:cacheprovider tests/python

step "Distribution metadata: oelint-adv, LIC_FILES_CHKSUM, Buildroot tree"
bash scripts/lint-distro.sh

step "done"
echo "all tests passed"
