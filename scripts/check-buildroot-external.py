#!/usr/bin/env python3
"""Static checks of the Buildroot external tree (scripts/lint-distro.sh).

    check-buildroot-external.py buildroot-external

Buildroot's own utils/check-package lives in the Buildroot repository,
which CI cannot fetch; this checks the subset of its rules that concern
files like ours, plus what makes a BR2_EXTERNAL tree load:
  - external.desc names the tree (upper case, digits, `_`);
  - Config.in sources every package's Config.in through
    $BR2_EXTERNAL_<NAME>_PATH, and external.mk includes the .mk files;
  - package/<pkg>/<pkg>.mk: the 80-column header naming the package, every
    variable set at the start of a line prefixed with the package's
    upper-case name (or a known Buildroot global), VERSION, SITE, LICENSE
    and LICENSE_FILES set, and `$(eval $(<infra>-package))` last, with a
    known infrastructure;
  - package/<pkg>/Config.in: `config BR2_PACKAGE_<PKG>`, attributes
    indented by one tab, help text by a tab and two spaces and at most 72
    columns (a tab counting 8);
  - package/<pkg>/<pkg>.hash: `<type>  <hex>  <file>` lines with a known
    type and the right length, and a hash for every LICENSE_FILES entry;
  - every file: no trailing spaces, no two consecutive empty lines, a
    newline at the end.
Prints one line per finding and exits 1 if there is any.
"""

import os
import re
import sys

HASH_LENGTHS = {"md5": 32, "sha1": 40, "sha224": 56, "sha256": 64, "sha384": 96, "sha512": 128}
INFRAS = {"generic", "autotools", "cmake", "cargo", "meson", "python", "golang", "kconfig", "waf", "perl", "luarocks"}
# Globals a package .mk may add to (Buildroot's own packages do).
GLOBALS = {"BR_NO_CHECK_HASH_FOR"}
HEADER = "#" * 80

findings = []


def find(path, line, message):
    findings.append(f"{path}:{line}: {message}")


def read_lines(path):
    with open(path, encoding="utf-8") as f:
        text = f.read()
    if text and not text.endswith("\n"):
        find(path, text.count("\n") + 1, "no newline at the end of the file")
    lines = text.split("\n")[:-1] if text.endswith("\n") else text.split("\n")
    for n, line in enumerate(lines, 1):
        if line != line.rstrip():
            find(path, n, "trailing whitespace")
        if n > 1 and line.strip() == "" and lines[n - 2].strip() == "":
            find(path, n, "consecutive empty lines")
    return lines


def check_mk(path, pkg):
    lines = read_lines(path)
    upper = pkg.upper().replace("-", "_")
    if lines[:5] != [HEADER, "#", f"# {pkg}", "#", HEADER]:
        find(path, 1, f"header must be {HEADER[:8]}.../#/# {pkg}/#/{HEADER[:8]}...")
    values = {}
    for n, line in enumerate(lines, 1):
        m = re.match(r"^([A-Z0-9_]+)\s*(\+=|\?=|:=|=)", line)
        if m:
            var = m.group(1)
            if not var.startswith(upper + "_") and var not in GLOBALS:
                find(path, n, f"variable {var} is not prefixed with {upper}_")
            values[var] = n
        m = re.match(r"^define ([A-Z0-9_]+)", line)
        if m and not m.group(1).startswith(upper + "_"):
            find(path, n, f"define {m.group(1)} is not prefixed with {upper}_")
        if line.startswith(" ") and not line.strip().startswith("#"):
            find(path, n, "indent with tabs")
    for suffix in ("VERSION", "SITE", "LICENSE", "LICENSE_FILES"):
        if f"{upper}_{suffix}" not in values:
            find(path, 1, f"{upper}_{suffix} is not set")
    code = [line for line in lines if line.strip()]
    m = re.match(r"^\$\(eval \$\(([a-z]+)-package\)\)$", code[-1] if code else "")
    if not m or m.group(1) not in INFRAS:
        find(path, len(lines), "the last line must be $(eval $(<infrastructure>-package))")
    return license_files(lines, upper)


def license_files(lines, upper):
    text = "\n".join(lines).replace("\\\n", " ")
    m = re.search(rf"^{upper}_LICENSE_FILES\s*=\s*(.*)$", text, re.M)
    return m.group(1).split() if m else []


def check_config(path, pkg):
    lines = read_lines(path)
    symbol = "BR2_PACKAGE_" + pkg.upper().replace("-", "_")
    if not lines or lines[0] != f"config {symbol}":
        find(path, 1, f"first line must be `config {symbol}`")
    in_help = False
    for n, line in enumerate(lines, 1):
        if re.match(r"^(config|comment|menu|endmenu|if|endif|source|choice|endchoice)\b", line) or not line:
            in_help = False if line else in_help
            continue
        if in_help:
            if not line.startswith("\t  "):
                find(path, n, "help text must be indented with a tab and two spaces")
            elif len(line.expandtabs(8)) > 72:
                find(path, n, "help text longer than 72 columns")
            continue
        if not re.match(r"^\t[a-z]", line):
            find(path, n, "attributes must be indented with one tab")
        if line.strip() == "help":
            in_help = True
    if "select BR2_PACKAGE_HOST_RUSTC" not in "\n".join(lines):
        find(path, 1, "a Rust package must select BR2_PACKAGE_HOST_RUSTC")


def check_hash(path, needed):
    hashed = set()
    for n, line in enumerate(read_lines(path), 1):
        if not line or line.startswith("#"):
            continue
        m = re.match(r"^(\S+)  (\S+)  (\S+)$", line)
        if not m:
            find(path, n, "expected `<type>  <hash>  <file>` with two spaces between fields")
            continue
        kind, digest, name = m.groups()
        if kind not in HASH_LENGTHS:
            find(path, n, f"unknown hash type {kind}")
        elif not re.fullmatch(rf"[0-9a-f]{{{HASH_LENGTHS[kind]}}}", digest):
            find(path, n, f"{kind} must be {HASH_LENGTHS[kind]} lower-case hex digits")
        hashed.add(name)
    for name in needed:
        if name not in hashed:
            find(path, 1, f"no hash for the license file {name}")


def main():
    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    tree = sys.argv[1]
    desc = read_lines(os.path.join(tree, "external.desc"))
    names = [line.split(":", 1)[1].strip() for line in desc if line.startswith("name:")]
    if len(names) != 1 or not re.fullmatch(r"[A-Z0-9_]+", names[0]):
        find(f"{tree}/external.desc", 1, "needs one `name: <UPPER_CASE>` line")
        names = ["?"]
    top_config = "\n".join(read_lines(os.path.join(tree, "Config.in")))
    top_mk = "\n".join(read_lines(os.path.join(tree, "external.mk")))
    if f"$(BR2_EXTERNAL_{names[0]}_PATH)/package/*/*.mk" not in top_mk:
        find(f"{tree}/external.mk", 1, f"must include $(BR2_EXTERNAL_{names[0]}_PATH)/package/*/*.mk")
    packages = sorted(os.listdir(os.path.join(tree, "package")))
    for pkg in packages:
        base = os.path.join(tree, "package", pkg)
        source = f'source "$BR2_EXTERNAL_{names[0]}_PATH/package/{pkg}/Config.in"'
        if source not in top_config:
            find(f"{tree}/Config.in", 1, f"does not {source}")
        missing = [n for n in (f"{pkg}.mk", "Config.in", f"{pkg}.hash") if not os.path.exists(os.path.join(base, n))]
        for name in missing:
            find(base, 0, f"{name} is missing")
        if missing:
            continue
        needed = check_mk(os.path.join(base, f"{pkg}.mk"), pkg)
        check_config(os.path.join(base, "Config.in"), pkg)
        check_hash(os.path.join(base, f"{pkg}.hash"), needed)
    for finding in findings:
        print(finding)
    print(f"{tree}: {len(packages)} packages, {len(findings)} findings")
    sys.exit(1 if findings else 0)


if __name__ == "__main__":
    main()
