#!/usr/bin/env python3
"""Empties the vendored crates no Linux build compiles (scripts/vendor-tarball.sh).

    vendor-stub-crates.py VENDOR_DIR CARGO_METADATA_JSON

CARGO_METADATA_JSON is `cargo metadata --filter-platform ...` for every
Linux target a distribution may build for. A vendored crate outside that
resolve (windows-sys, the windows_* import libraries, macOS frameworks,
wasi) is never compiled there, but cargo still needs it: Cargo.lock names
it, and `--frozen` resolves the whole lock, every platform included. So
the crate stays, as a stub: its Cargo.toml, its build script and an empty
library source. Its .cargo-checksum.json keeps the package checksum (which
Cargo.lock compares) and lists no files, so cargo checks no file of it.
This takes about 100 MB of Windows import libraries and bindings out of the
tarball; Debian and Fedora trim their vendored crates the same way.
"""

import json
import os
import sys
import tomllib


def needed_dirs(metadata):
    """Directory names (`name-version`, as `cargo vendor --versioned-dirs`) of the resolve."""
    ids = {node["id"] for node in metadata["resolve"]["nodes"]}
    return {f'{p["name"]}-{p["version"]}' for p in metadata["packages"] if p["id"] in ids}


def kept_files(crate, manifest):
    """What cargo reads of a crate it never compiles: the manifest, the library
    target's path and the build script's path (all relative to the crate)."""
    keep = {"Cargo.toml", ".cargo-checksum.json"}
    lib = manifest.get("lib", {}).get("path", "src/lib.rs")
    build = manifest.get("package", {}).get("build")
    if build is None and os.path.exists(os.path.join(crate, "build.rs")):
        build = "build.rs"
    if isinstance(build, str):
        keep.add(os.path.normpath(build))
    return keep, os.path.normpath(lib)


def stub(crate):
    with open(os.path.join(crate, "Cargo.toml"), "rb") as f:
        manifest = tomllib.load(f)
    keep, lib = kept_files(crate, manifest)
    for root, dirs, files in os.walk(crate, topdown=False):
        for name in files:
            path = os.path.join(root, name)
            if os.path.relpath(path, crate) not in keep:
                os.remove(path)
        for name in dirs:
            path = os.path.join(root, name)
            if not os.listdir(path):
                os.rmdir(path)
    lib_path = os.path.join(crate, lib)
    os.makedirs(os.path.dirname(lib_path), exist_ok=True)
    with open(lib_path, "w") as f:
        f.write("// Stub: never compiled for Linux (scripts/vendor-stub-crates.py).\n")
    for path in keep - {"Cargo.toml", ".cargo-checksum.json"}:
        if not os.path.exists(os.path.join(crate, path)):
            raise SystemExit(f"{crate}: build script {path} is missing")
    checksum_file = os.path.join(crate, ".cargo-checksum.json")
    with open(checksum_file) as f:
        checksum = json.load(f)
    with open(checksum_file, "w") as f:
        json.dump({"files": {}, "package": checksum["package"]}, f)


def main():
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    vendor, metadata_file = sys.argv[1], sys.argv[2]
    with open(metadata_file) as f:
        needed = needed_dirs(json.load(f))
    stubbed = []
    for name in sorted(os.listdir(vendor)):
        crate = os.path.join(vendor, name)
        if name in needed or not os.path.isdir(crate):
            continue
        if not os.path.exists(os.path.join(crate, ".cargo-checksum.json")):
            raise SystemExit(f"{crate}: not a vendored crate (no .cargo-checksum.json)")
        stub(crate)
        stubbed.append(name)
    print(f"stubbed {len(stubbed)} crates no Linux target compiles: {' '.join(stubbed)}")


if __name__ == "__main__":
    main()
