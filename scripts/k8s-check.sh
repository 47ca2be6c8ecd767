#!/usr/bin/env bash
# Validates the Kubernetes manifests of deploy/k8s with kubeconform -strict
# against the oldest and the newest Kubernetes they are meant for, with the
# schemas of kubernetes-validate (scripts/k8s_schemas.py; both tools are
# installed by scripts/setup.sh). A manifest with an unknown field must fail
# too: that is checked first, so the check cannot pass by validating nothing.
# Also parses the Prometheus scrape config.
set -euo pipefail
cd "$(dirname "$0")/.."
kubeconform=target/tools/kubeconform/kubeconform
[ -x "$kubeconform" ] || { echo "kubeconform is missing: run scripts/setup.sh" >&2; exit 1; }
src=$(.venv/bin/python -c 'import kubernetes_validate, os; print(os.path.join(os.path.dirname(kubernetes_validate.__file__), "kubernetes-json-schema"))') ||
  { echo "kubernetes-validate is missing in .venv: run scripts/setup.sh" >&2; exit 1; }
manifests=(deploy/k8s/*.yaml)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# Indexed Jobs with backoffLimitPerIndex: beta (on by default) since 1.29.
for version in 1.30.0 1.37.0; do
  schemas=target/tools/k8s-schemas/v$version-standalone-strict
  .venv/bin/python scripts/k8s_schemas.py "$src/v$version-local-strict" "$schemas" "${manifests[@]}"
  check=("$kubeconform" -strict -summary -kubernetes-version "$version"
    -schema-location "$PWD/target/tools/k8s-schemas/{{ .NormalizedKubernetesVersion }}-standalone{{ .StrictSuffix }}/{{ .ResourceKind }}{{ .KindSuffix }}.json")
  sed 's/^\(\s*\)restartPolicy: Never/&\n\1restartPolicyy: Never/' deploy/k8s/job.yaml >"$work/broken.yaml"
  if "${check[@]}" "$work/broken.yaml" >"$work/out" 2>&1; then
    cat "$work/out" >&2
    echo "kubeconform accepted a Job with an unknown field: the check checks nothing" >&2
    exit 1
  fi
  grep -q "restartPolicyy" "$work/out" || { cat "$work/out" >&2; exit 1; }
  "${check[@]}" "${manifests[@]}"
done
.venv/bin/python - <<'PY'
import yaml
config = yaml.safe_load(open("deploy/prometheus/scrape-config.yaml"))
(job,) = config["scrape_configs"]
assert job["job_name"] == "nhc-simulate" and job["kubernetes_sd_configs"][0]["role"] == "pod"
print("deploy/prometheus/scrape-config.yaml: parsed")
PY
