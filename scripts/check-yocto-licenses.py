#!/usr/bin/env python3
"""Checks LIC_FILES_CHKSUM of the Yocto recipes against the sources.

    check-yocto-licenses.py meta-nerves-hub-channel/recipes-connectivity/nerves-hub-channel/nerves-hub-channel.inc

bitbake compares these checksums only in a full Yocto build, which CI does
not run; a crate update (Cargo.lock) or an edit of Cargo.toml that changes a
listed file would go unnoticed until a user's build fails. For each
`file://PATH;beginline=..;endline=..;md5=..` entry: PATH is relative to the
tarball (scripts/vendor-tarball.sh), so `VENDOR/NAME-VERSION/...` is read
from cargo's registry sources (CARGO_HOME, after `cargo fetch`) and must be
the version Cargo.lock holds; any other PATH is read from this checkout.
The md5 is over the selected lines, as bitbake computes it.
"""

import glob
import hashlib
import os
import re
import sys
import tomllib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def entries(recipe_text):
    m = re.search(r'^LIC_FILES_CHKSUM\s*=\s*"((?:[^"\\]|\\\n)*)"', recipe_text, re.M)
    if not m:
        raise SystemExit("no LIC_FILES_CHKSUM")
    for uri in m.group(1).replace("\\\n", " ").split():
        path, *params = uri.removeprefix("file://").split(";")
        yield path, dict(p.split("=", 1) for p in params)


def locked_crates():
    with open(os.path.join(ROOT, "Cargo.lock"), "rb") as f:
        lock = tomllib.load(f)
    return {f'{p["name"]}-{p["version"]}' for p in lock["package"] if "source" in p}


def source_file(path, locked):
    if not path.startswith("VENDOR/"):
        return os.path.join(ROOT, path)
    crate, rest = path.removeprefix("VENDOR/").split("/", 1)
    if crate not in locked:
        raise ValueError(f"{crate} is not in Cargo.lock (update the recipe to the locked version)")
    cargo_home = os.environ.get("CARGO_HOME", os.path.expanduser("~/.cargo"))
    found = glob.glob(os.path.join(cargo_home, "registry", "src", "*", crate, rest))
    if not found:
        raise ValueError(f"{crate}/{rest} is not in {cargo_home}/registry/src (run cargo fetch --locked)")
    return found[0]


def md5_of(path, params):
    with open(path, "rb") as f:
        lines = f.read().splitlines(keepends=True)
    begin = int(params.get("beginline", 1))
    end = int(params.get("endline", len(lines)))
    return hashlib.md5(b"".join(lines[begin - 1 : end])).hexdigest()


def main():
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    with open(sys.argv[1]) as f:
        text = f.read()
    locked = locked_crates()
    bad = 0
    for path, params in entries(text):
        try:
            actual = md5_of(source_file(path, locked), params)
        except (OSError, ValueError) as e:
            print(f"LIC_FILES_CHKSUM {path}: {e}")
            bad += 1
            continue
        if actual != params.get("md5"):
            print(f"LIC_FILES_CHKSUM {path}: md5 is {actual}, the recipe says {params.get('md5')}")
            bad += 1
        else:
            print(f"LIC_FILES_CHKSUM {path}: ok")
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
