#!/usr/bin/env bash
# Lints the distribution metadata (docs/yocto.md, docs/buildroot.md):
#   1. the Yocto layer with oelint-adv (PyPI; scripts/setup.sh installs it
#      into .venv), against the oldest and the newest release the layer
#      supports; exits non-zero on a finding of error severity. Warnings
#      and infos are printed. Suppressed, for every file:
#        oelint.vars.homepageping  pings HOMEPAGE over the network: CI
#                                  lints offline and the URL is not ours
#                                  to keep up;
#        oelint.var.bbclassextend  (info) a board library and agent have
#                                  no use for -native or nativesdk variants.
#      Inline `# nooelint:` comments in the recipes say why where they are.
#   2. the recipes' LIC_FILES_CHKSUM against the sources and Cargo.lock
#      (scripts/check-yocto-licenses.py), which bitbake checks only in a
#      full build;
#   3. the Buildroot external tree (scripts/check-buildroot-external.py:
#      the rules of Buildroot's utils/check-package that apply to it).
set -euo pipefail
cd "$(dirname "$0")/.."
oelint=.venv/bin/oelint-adv
[ -x "$oelint" ] || { echo "$oelint is missing: run scripts/setup.sh" >&2; exit 1; }
status=0
layer=meta-nerves-hub-channel

for release in whinlatter blacksail; do
  echo "== oelint-adv $($oelint --version | cut -d' ' -f2) ($release): $layer"
  out=$("$oelint" --quiet --exit-zero --mode all --release "$release" --relpaths \
    --suppress oelint.vars.homepageping --suppress oelint.var.bbclassextend \
    $layer/conf/layer.conf $layer/recipes-*/*/*.bb 2>&1)
  [ -z "$out" ] || printf '%s\n' "$out"
  errors=$(grep -c ':error:' <<<"$out" || true)
  echo "$(grep -c ':' <<<"$out" || true) findings, $errors of error severity"
  [ "$errors" = 0 ] || status=1
done

echo "== LIC_FILES_CHKSUM"
# The crates' license files are read from cargo's registry sources.
cargo fetch --locked >/dev/null 2>&1 || cargo fetch --locked
python3 scripts/check-yocto-licenses.py $layer/recipes-connectivity/nerves-hub-channel/nerves-hub-channel.inc ||
  status=1

echo "== Buildroot external tree"
python3 scripts/check-buildroot-external.py buildroot-external || status=1

[ "$status" = 0 ] && echo "distribution metadata: lint passed"
exit "$status"
