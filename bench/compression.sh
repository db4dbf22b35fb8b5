#!/usr/bin/env bash
# Gradient compression: bytes on the wire and what it costs in accuracy.
# Runs the Fashion-MNIST MLP (test accuracy) and the MovieLens factorization
# machine (test AUC) with every compression type, in one run, and prints per
# job the bytes the workers sent against the float32 bytes of their keys and
# gradients, and the final metric against the uncompressed job's.
#
#   bench/compression.sh [--build DIR] [--out DIR] [--types "no_compression fp16 int8 topk"]
#                        [--set section.field=value ...]   (passed to every ps_launch)
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD=build
OUT=out/compression
TYPES="no_compression fp16 int8 topk"
SETS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --build) BUILD=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --types) TYPES=$2; shift 2 ;;
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
  rm -rf "${OUT:?}/$name"
  local start end
  start=$(date +%s.%N)
  if ! "$BUILD/bin/ps_launch" --config "$config" --set "job.output_dir=$OUT/$name" \
      --set "compression.type=$type" --set train.progress_interval_ms=0 "${SETS[@]}" \
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
  local value
  value=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['test'][sys.argv[2]])" \
          "$OUT/$name/metrics.json" "$metric")
  printf '%-22s %-15s %10s %10s %8s %10s %9.4f %8.1f\n' "$(basename "$config" .yaml)" "$type" \
    $bytes "$metric" "$value" "$(echo "$end - $start" | bc)"
}

printf '%-22s %-15s %10s %10s %8s %10s %9s %8s\n' job compression "sent MB" "f32 MB" ratio metric value seconds
for type in $TYPES; do run examples/fashion_mnist_mlp.yaml accuracy "$type"; done
for type in $TYPES; do run examples/movielens_fm.yaml roc_auc "$type"; done
