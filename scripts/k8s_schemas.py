"""Writes kubeconform's standalone JSON schemas for the kinds in some manifests.

kubeconform fetches its schemas from a web site these machines cannot reach;
the PyPI package kubernetes-validate ships the same Kubernetes schemas, but
split into one file per kind plus a shared `_definitions.json` that every
file references by an absolute URL. This copies each kind the manifests use
into one self-contained file: its own schema plus the definitions it reaches,
with the references made local.

    python3 scripts/k8s_schemas.py SRC_DIR OUT_DIR MANIFEST...

SRC_DIR is kubernetes-validate's `kubernetes-json-schema/vX.Y.Z-local-strict`;
OUT_DIR gets `<kind>-<group>-<version>.json`, the names kubeconform looks for.
"""

import json
import re
import sys
from pathlib import Path

import yaml

REF = "/api/_definitions.json#/$defs/"


def schema_name(kind: str, api_version: str) -> str:
    """kubeconform's file name: kind, then group's first label, then version."""
    parts = api_version.split("/")
    suffix = "-" + parts[0].split(".")[0].lower()
    if len(parts) > 1:
        suffix += "-" + parts[1].lower()
    return f"{kind.lower()}{suffix}.json"


def standalone(schema: dict, definitions: dict) -> dict:
    """`schema` with the definitions it reaches under `$defs`, refs made local."""
    # Inside `_definitions.json` the references are already local (`#/$defs/`).
    refs = re.compile(r'"(?:' + re.escape(REF) + r'|#/\$defs/)([^"]+)"')
    needed: dict = {}
    pending = refs.findall(json.dumps(schema))
    while pending:
        name = pending.pop()
        if name in needed:
            continue
        needed[name] = definitions[name]
        pending += refs.findall(json.dumps(needed[name]))
    out = dict(schema, **{"$defs": needed})
    out.pop("$id", None)
    return json.loads(json.dumps(out).replace(REF, "#/$defs/"))


def main() -> int:
    if len(sys.argv) < 4:
        print(__doc__, file=sys.stderr)
        return 2
    src, out = Path(sys.argv[1]), Path(sys.argv[2])
    definitions = json.loads((src / "_definitions.json").read_text())["$defs"]
    out.mkdir(parents=True, exist_ok=True)
    for manifest in sys.argv[3:]:
        for doc in yaml.safe_load_all(Path(manifest).read_text()):
            if not doc:
                continue
            name = schema_name(doc["kind"], doc["apiVersion"])
            source = src / name
            if not source.exists():
                print(f"{manifest}: no schema {name} in {src}", file=sys.stderr)
                return 1
            schema = standalone(json.loads(source.read_text()), definitions)
            (out / name).write_text(json.dumps(schema))
    return 0


if __name__ == "__main__":
    sys.exit(main())
