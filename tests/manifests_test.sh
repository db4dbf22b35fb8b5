#!/usr/bin/env bash
# The deployment files, offline: the Kubernetes manifests (deploy/k8s) render
# with kubectl kustomize and validate strictly against the Kubernetes schemas
# (deploy/k8s/validate.py), the second-job overlay keeps its names and labels
# apart from the first job's, and deploy/docker-compose.yml validates with
# docker-compose config. A typo in either is caught.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
say() { echo "manifests_test: $*"; }
fail() { echo "manifests_test: FAILED: $*" >&2; exit 1; }

"$ROOT/deploy/install_missing.sh" manifests_test python3-kubernetes python3-yaml docker-compose
command -v kubectl >/dev/null || "$ROOT/deploy/install_missing.sh" manifests_test kubectl

BIN=${1:-$ROOT/build/bin}
WORK=$(mktemp -d /tmp/ps-manifests.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
VALIDATE="$ROOT/deploy/k8s/validate.py"

# The token files each job's Secrets are made from, as the README says.
cp -r "$ROOT/deploy/k8s" "$WORK/k8s-keys"
K8S="$WORK/k8s-keys"
"$BIN/psctl" keygen "$K8S/base/keys" >/dev/null || fail "psctl keygen"
"$BIN/psctl" keygen "$K8S/overlays/second-job/keys" >/dev/null || fail "psctl keygen"

for k in base overlays/second-job; do
  kubectl kustomize "$K8S/$k" >"$WORK/rendered.yaml" || fail "kubectl kustomize deploy/k8s/$k"
  "$VALIDATE" <"$WORK/rendered.yaml" || fail "deploy/k8s/$k does not validate"
  kinds=$(grep -E '^kind: ' "$WORK/rendered.yaml" | sort | uniq -c | tr -s ' ' | tr '\n' ',')
  for kind in ConfigMap Job NetworkPolicy PersistentVolumeClaim Secret Service StatefulSet; do
    grep -q "^kind: $kind$" "$WORK/rendered.yaml" || fail "deploy/k8s/$k has no $kind"
  done
  say "deploy/k8s/$k renders and validates:$kinds"
done

# Each role's pods mount only their role's key (the job secret only the scheduler's).
python3 - "$WORK/rendered.yaml" <<'PY' || fail "a pod mounts another role's key"
import sys, yaml
for doc in yaml.safe_load_all(open(sys.argv[1])):
    if not doc or doc.get("kind") not in ("Job", "StatefulSet"):
        continue
    pod = doc["spec"]["template"]["spec"]
    secrets = [v["secret"]["secretName"] for v in pod.get("volumes", []) if "secret" in v]
    name = doc["metadata"]["name"]
    role = "job" if "scheduler" in name else ("server" if "server" in name else "worker")
    assert len(secrets) == 1 and secrets[0].startswith(f"job2-{role}-key"), (name, secrets)
PY
[ "$(cat "$K8S/base/keys/job.token")" != "$(cat "$K8S/overlays/second-job/keys/job.token")" ] \
  || fail "the two jobs share a secret"

# The overlay: every object renamed, every pod and selector of the second job.
kubectl kustomize "$K8S/overlays/second-job" >"$WORK/job2.yaml"
unprefixed=$(grep -E '^  name: ' "$WORK/job2.yaml" | grep -v '^  name: job2-' || true)
[ -z "$unprefixed" ] || fail "objects of the second job without the job2- prefix: $unprefixed"
grep -q 'paramserver/job: spambase' "$WORK/job2.yaml" && fail "the second job carries the first job's label"
grep -q 'SCHEDULER: job2-scheduler:7000' "$WORK/job2.yaml" || fail "the second job's pods do not look for job2-scheduler"
grep -q 'claimName: job2-out' "$WORK/job2.yaml" || fail "the second job shares the first job's volume"

# A typo in a manifest is caught, naming the field.
cp -r "$K8S" "$WORK/k8s"
sed -i 's/^  replicas: 4$/  replcas: 4/' "$WORK/k8s/base/servers.yaml"
grep -q 'replcas' "$WORK/k8s/base/servers.yaml" || fail "could not plant the typo"
kubectl kustomize "$WORK/k8s/base" >"$WORK/typo.yaml"
if "$VALIDATE" <"$WORK/typo.yaml" 2>"$WORK/typo.err"; then fail "a manifest with a typo validated"; fi
grep -q "StatefulSet/server.spec.replcas: unknown field in V1StatefulSetSpec (did you mean 'replicas'?)" "$WORK/typo.err" \
  || { cat "$WORK/typo.err"; fail "the typo was not named"; }
say "a typo (replcas) is caught: $(head -n 1 "$WORK/typo.err")"
# ... and a value of the wrong type.
sed 's/containerPort: 9100/containerPort: metrics/' "$WORK/typo.yaml" | sed 's/replcas/replicas/' >"$WORK/type.yaml"
if "$VALIDATE" <"$WORK/type.yaml" 2>"$WORK/type.err"; then fail "a port given as a name validated"; fi
grep -q "containerPort: expected int, got str 'metrics'" "$WORK/type.err" || { cat "$WORK/type.err"; fail "the wrong type was not named"; }

# The compose file validates (no engine needed); a typo does not.
docker-compose -f "$ROOT/deploy/docker-compose.yml" config -q || fail "deploy/docker-compose.yml does not validate"
cp -r "$ROOT/deploy" "$WORK/deploy"
sed -i '0,/^    restart: "no"$/s//    restrat: "no"/' "$WORK/deploy/docker-compose.yml"
if docker-compose -f "$WORK/deploy/docker-compose.yml" config -q 2>"$WORK/compose.err"; then
  fail "a compose file with a typo validated"
fi
grep -q "restrat" "$WORK/compose.err" || { cat "$WORK/compose.err"; fail "the compose typo was not named"; }
say "deploy/docker-compose.yml validates; a typo is caught: $(grep -m1 restrat "$WORK/compose.err")"

# The Grafana dashboard: JSON, and every metric it queries is one the
# processes export.
/usr/bin/python3 - "$ROOT" <<'PY' || fail "deploy/grafana/paramserver.json"
import json, pathlib, re, sys
root = pathlib.Path(sys.argv[1])
dash = json.loads((root / "deploy/grafana/paramserver.json").read_text())
exported = set()
for f in ["server/server_metrics.cc", "scheduler/scheduler_metrics.cc", "worker/worker_metrics.cc"]:
    exported |= set(re.findall(r'"(ps_[a-z_]+)"', (root / f).read_text()))
used = set()
for panel in dash["panels"]:
    for target in panel["targets"]:
        used |= set(re.findall(r"\b(ps_[a-z_]+?)(?:_bucket|_sum|_count)?\{", target["expr"]))
unknown = sorted(used - exported)
if unknown or not used:
    sys.exit(f"the dashboard queries metrics nobody exports: {unknown}")
print(f"manifests_test: deploy/grafana/paramserver.json: {len(dash['panels'])} panels over {len(used)} exported metrics")
PY
