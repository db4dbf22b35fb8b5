#!/usr/bin/env bash
# Gradient compression: bytes on the wire and what it costs in accuracy.
# Runs the Fashion-MNIST MLP (test accuracy) and the MovieLens factorization
# machine (test AUC) with every compression type, in one run, and prints per
# job the bytes the workers sent against the float32 bytes of their keys and
# gradients, and the final metric against the uncompressed job's.
# Two more types run the Fashion-MNIST MLP only, on SGD with momentum 0.9 and
# learning rate 0.05 instead of Adam: `momentum` (uncompressed, the servers
# keep the momentum) and `topk_momentum` (top-k with momentum correction:
# the workers keep it, compression.momentum, and the servers step plain SGD).
#
#   bench/compression.sh [--build DIR] [--out DIR] [--fashion-only]
#                        [--types "no_compression fp16 int8 topk momentum topk_momentum"]
#                        [--set section.field=value ...]   (passed to every ps_launch)
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD=build
OUT=out/compression
TYPES="no_compression fp16 int8 topk momentum topk_momentum"
SETS=()
FASHION_ONLY=
while [ $# -gt 0 ]; do
  case "$1" in
    --build) BUILD=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --types) TYPES=$2; shift 2 ;;
    --fashion-only) FASHION_ONLY=1; shift ;;
    --set) SETS+=(--set "$2"); shift 2 ;;
    *) echo "compression.sh: unknown argument '$1'" >&2; exit 2 ;;
  esac
done
[ -x "$BUILD/bin/ps_launch" ] || { echo "compression.sh: $BUILD/bin/ps_launch not built (deploy/setup.sh)" >&2; exit 1; }
mkdir -p "$OUT"

# job metric: "examples/x.yaml accuracy" reads metrics.json's test accuracy.
run() {
  local config=$1 metric=$2 type=$3
  local name
  name=$(basename "$config" .yaml)-$type
  local -a sets
  case $type in
    momentum) sets=(--set compression.type=no_compression --set optimizer.type=momentum
                    --set optimizer.momentum=0.9 --set optimizer.learning_rate=0.05) ;;
    topk_momentum) sets=(--set compression.type=topk --set compression.momentum=0.9
                         --set optimizer.type=sgd --set optimizer.learning_rate=0.05) ;;
    *) sets=(--set "compression.type=$type") ;;
  esac
  rm -rf "${OUT:?}/$name"
  local start end
  start=$(date +%s.%N)
  if ! "$BUILD/bin/ps_launch" --config "$config" --set "job.output_dir=$OUT/$name" \
      "${sets[@]}" --set train.progress_interval_ms=0 "${SETS[@]}" \
      >"$OUT/$name.log" 2>&1; then
    tail -20 "$OUT/$name.log"
    echo "compression.sh: $name failed (log: $OUT/$name.log)" >&2
    exit 1
  fi
  end=$(date +%s.%N)
  # "worker rank R done (N pushes: S bytes sent for F bytes of float32 ...)"
  local bytes
  bytes=$(cat "$OUT/$name"/logs/worker-*.log | sed -n 's/.* \([0-9]*\) bytes sent for \([0-9]*\) bytes of float32.*/\1 \2/p' |
          awk '{s += $1; f += $2} END {printf "%.1f %.1f %.2f", s / 1e6, f / 1e6, f / s}')
  # The final value, the best epoch's and the mean of the last 5 epochs'
  # (the final epoch's test metric moves by a few tenths of a point).
  local values
  values=$(python3 -c "
import json, sys
m = json.load(open(sys.argv[1]))
per_epoch = [e['test'][sys.argv[2]] for e in m.get('history', []) if sys.argv[2] in e.get('test', {})]
final = m['test'][sys.argv[2]]
per_epoch = per_epoch or [final]
last = per_epoch[-5:]
print('%.4f %.4f %.4f' % (final, max(per_epoch), sum(last) / len(last)))" "$OUT/$name/metrics.json" "$metric")
  printf '%-22s %-15s %10s %10s %8s %10s %9s %9s %9s %8.1f\n' "$(basename "$config" .yaml)" "$type" \
    $bytes "$metric" $values "$(echo "$end - $start" | bc)"
}

printf '%-22s %-15s %10s %10s %8s %10s %9s %9s %9s %8s\n' job compression "sent MB" "f32 MB" ratio metric final best "last 5" seconds
for type in $TYPES; do run examples/fashion_mnist_mlp.yaml accuracy "$type"; done
[ -n "$FASHION_ONLY" ] && exit 0
for type in $TYPES; do
  case $type in momentum | topk_momentum) continue ;; esac
  run examples/movielens_fm.yaml roc_auc "$type"
done
