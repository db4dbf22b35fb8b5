#!/usr/bin/env bash
# What security costs on the data plane: ps_bench (bench/bench.yaml: dense
# 4 KiB / 1 MiB / 4 MiB / 16 MiB pushes and pulls, 1 and 8 in flight, sparse 1k/10k/100k keys)
# in four set-ups, alternating within one run (ROUNDS rounds, the median of
# each figure kept), and each figure's ratio to the insecure run:
#   insecure   security.insecure: true (no credential; the old behaviour)
#   token      the default: a ticket on every call, checked by the server
#   tls        token + TLS (deploy/make_certs.sh certificates)
#   mtls       token + mutual TLS (the role from the client certificate)
#   bench/security_bench.sh [BUILD_DIR] [ROUNDS]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:-$ROOT/build}
ROUNDS=${2:-3}
WORK=$(mktemp -d /tmp/ps-secbench.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
"$ROOT/deploy/make_certs.sh" "$WORK/certs" >/dev/null
tls=(--set "security.tls.ca=$WORK/certs/ca.pem" --set "security.tls.cert=$WORK/certs/{role}.pem"
     --set "security.tls.key=$WORK/certs/{role}.key")
for round in $(seq "$ROUNDS"); do
  for mode in insecure token tls mtls; do
    args=(--config "$ROOT/bench/bench.yaml" --set "job.output_dir=$WORK/out-$mode" --json "$WORK/$mode-$round.json")
    case $mode in
      insecure) args+=(--set security.insecure=true) ;;
      tls) args+=("${tls[@]}") ;;
      mtls) args+=("${tls[@]}" --set security.tls.mutual=true) ;;
    esac
    echo "security_bench: round $round, $mode" >&2
    "$BUILD/bin/ps_bench" "${args[@]}" >"$WORK/$mode-$round.log" 2>&1 \
      || { cat "$WORK/$mode-$round.log"; exit 1; }
  done
done
python3 - "$WORK" "$ROUNDS" <<'PY'
import json, statistics, sys
work, rounds = sys.argv[1], int(sys.argv[2])
modes = ["insecure", "token", "tls", "mtls"]
def flat(d, prefix=""):
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(flat(v, prefix + k + "."))
        elif isinstance(v, list):
            for item in v:
                if isinstance(item, dict):
                    out.update(flat(item, prefix + str(item.get("table", "")) + "."))
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            out[prefix + k] = float(v)
    return out
runs = {m: [flat(json.load(open(f"{work}/{m}-{r}.json"))) for r in range(1, rounds + 1)] for m in modes}
keys = [k for k in runs["insecure"][0] if k.endswith("gbps") or k.endswith("keys_per_s")]
print(f"{'figure':48s} " + " ".join(f"{m:>10s}" for m in modes) + "   token/ins  tls/ins  mtls/ins")
for k in keys:
    med = {m: statistics.median(r[k] for r in runs[m] if k in r) for m in modes}
    base = med["insecure"] or float("nan")
    print(f"{k:48s} " + " ".join(f"{med[m]:10.3f}" for m in modes) +
          f"   {med['token'] / base:9.2f} {med['tls'] / base:8.2f} {med['mtls'] / base:9.2f}")
PY
