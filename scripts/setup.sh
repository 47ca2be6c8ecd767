#!/usr/bin/env bash
# Installs what the tests need on a fresh Debian machine with Rust and
# Python: Debian packages, the pinned cbindgen, fwup (built from the pinned
# source into target/tools/fwup), and a Python venv in .venv.
# Idempotent: a second run installs nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

# fwup is in no package registry these machines reach: CI clones the
# repository next to a copy of shared/, whose vendor/ holds its source.
fwup_vendor=${NHC_VENDOR_DIR:-../shared/vendor}
have_fwup_source=1
if [ ! -f "$fwup_vendor/build-fwup.sh" ]; then
  have_fwup_source=0
  msg="setup: $fwup_vendor/build-fwup.sh is missing: fwup's pinned source (shared/vendor) must sit next to the repository (or set NHC_VENDOR_DIR)"
  # CI must run the real update chain; elsewhere its tests skip with a message.
  if [ "${CI:-}" = true ]; then echo "$msg" >&2; exit 1; fi
  echo "$msg; the fwup update-chain tests will be skipped" >&2
fi

need_apt=()
for tool in cmake:cmake valgrind:valgrind pkg-config:pkg-config cc:gcc c++:g++ clang:clang \
  systemd-analyze:systemd; do
  command -v "${tool%%:*}" >/dev/null || need_apt+=("${tool#*:}")
done
# clang's sanitizer runtimes (ASan/LSan/UBSan, scripts/c-tests.sh) are a
# package of their own: check that a sanitized program links.
if ! echo 'int main(void) { return 0; }' |
  clang -fsanitize=address,undefined -x c - -o /dev/null 2>/dev/null; then
  need_apt+=(libclang-rt-dev)
fi
# What fwup's build needs (see shared/vendor/README.md).
for pkg in libconfuse-dev libarchive-dev libsodium-dev autoconf automake libtool pkg-config; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need_apt+=("$pkg")
done
# Hardware-key tests (docs/hardware-keys.md): a SoftHSM2 token, OpenSC's
# pkcs11-tool, OpenSSL's pkcs11 engine (CSRs signed on the token) and
# libcrypto's headers (the C signing-callback test signs with OpenSSL).
for pkg in softhsm2 opensc libengine-pkcs11-openssl libssl-dev; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need_apt+=("$pkg")
done
# TPM 2.0 through tpm2-pkcs11 (tests/common/tpm_fixture.rs): a software TPM
# (swtpm) reached over the swtpm TCTI, no resource manager.
for pkg in swtpm libtpm2-pkcs11-1 libtss2-tcti-swtpm0; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need_apt+=("$pkg")
done
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}"
  else
    echo "setup: please install: ${need_apt[*]}" >&2
    exit 1
  fi
fi

# Skipped when target/tools/fwup already holds fwup 1.16.0.
[ "$have_fwup_source" = 0 ] || bash "$fwup_vendor/build-fwup.sh" "$PWD/target/tools/fwup" >/dev/null

rustup component list --installed 2>/dev/null | grep -q '^clippy' || rustup component add clippy rustfmt

# ThreadSanitizer (scripts/tsan.sh, a step of c-tests.sh) rebuilds Rust's
# std with TSan: that needs a nightly toolchain with rust-src.
if ! rustup run nightly rustc --version >/dev/null 2>&1; then
  rustup toolchain install nightly --profile minimal --component rust-src
elif [ ! -d "$(rustc +nightly --print sysroot)/lib/rustlib/src/rust/library" ]; then
  rustup component add rust-src --toolchain nightly
fi

cbindgen_version=0.29.4
if ! cbindgen --version 2>/dev/null | grep -q " $cbindgen_version\$"; then
  cargo install cbindgen --locked --version "$cbindgen_version"
fi

# Fuzzing (scripts/fuzz.sh) and the supply-chain check (deny.toml).
cargo_fuzz_version=0.13.1
if ! cargo fuzz --version 2>/dev/null | grep -q " $cargo_fuzz_version\$"; then
  cargo install cargo-fuzz --locked --version "$cargo_fuzz_version"
fi
cargo_deny_version=0.20.2
if ! cargo deny --version 2>/dev/null | grep -q " $cargo_deny_version\$"; then
  cargo install cargo-deny --locked --version "$cargo_deny_version"
fi

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q "maturin>=1.7,<2" "pytest>=8" "mypy>=1.10"

# Cross compilers, qemu and Rust targets for scripts/cross-test.sh.
bash scripts/setup-cross.sh

# The Yocto layer's linter (scripts/lint-distro.sh), pinned: its rules change
# between releases.
.venv/bin/python -m pip install -q "oelint-adv==9.11.2"
# zig cc compiles ring's C code for aarch64-linux-musl (scripts/static-agent.sh).
.venv/bin/python -m pip install -q "ziglang==0.17.0"
