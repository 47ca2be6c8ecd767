#!/usr/bin/env bash
# Runs the I/O-free unit tests under Miri (undefined behaviour, aliasing,
# data races, leaks in Rust code): the codec (with its SSE2 scanner),
# backoff, progress, update_info, uboot_env, metadata, the ring-free NH1
# tests (ETF encoding, dates, secrets), the update sink's stage ordering,
# the event queue, and the unit tests of the C ABI crate (ffi/: options
# structs, last-error text, closures, routers).
#
# Needs the nightly toolchain with Miri:
#   rustup toolchain install nightly --component miri,rust-src
# Not part of scripts/test.sh (see SECURITY.md, "Memory safety", for its cost).
set -euo pipefail
cd "$(dirname "$0")/.."

# Tests that reach ring's C/assembly code, sockets or the tokio runtime
# cannot run under Miri; these filters keep the ones that do not.
core_tests=(
  codec::
  backoff::
  progress::
  update_info::
  uboot_env::
  metadata::
  sink_stage::
  nh1::tests::payload_is_erlang_term_to_binary
  nh1::tests::erlang_integer_encodings
  nh1::tests::debug_never_shows_the_secret
  nh1::tests::validate_explains_without_echoing_the_secret
  nh1::tests::digest_names_parse_case_insensitively
  nh1::tests::http_dates_in_all_three_formats
  nh1::tests::garbage_dates_are_ignored
)

# metadata and uboot_env tests read files they wrote to the temp directory.
export MIRIFLAGS="${MIRIFLAGS:--Zmiri-disable-isolation}"
cargo +nightly miri setup
cargo +nightly miri test --locked -p nerves_hub_channel --lib -- "${core_tests[@]}"
# The event queue's test hands events to the library's dispatcher thread,
# which lives as long as the process: Miri would call that a leak.
MIRIFLAGS="$MIRIFLAGS -Zmiri-ignore-leaks" \
  cargo +nightly miri test --locked -p nerves_hub_channel --lib -- queue::
cargo +nightly miri test --locked -p nerves_hub_channel_ffi --lib
