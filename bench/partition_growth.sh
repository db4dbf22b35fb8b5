#!/usr/bin/env bash
# The same job with more and more partitions (issue 10's cost growth): runs
# examples/spambase_lr.yaml (BSP, 2 servers + 2 workers) with each partition
# count in turn, ROUNDS times alternating, and prints the median wall time of
# each (metrics.json's wall_seconds) and its ratio to the first count's.
#   bench/partition_growth.sh [--build DIR] [--rounds N] [--partitions "64 1024 8192"]
#                             [--config FILE]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=$ROOT/build
ROUNDS=5
COUNTS="64 1024 8192"
CONFIG=$ROOT/examples/spambase_lr.yaml
while [ $# -gt 0 ]; do
  case $1 in
    --build) BUILD=$2; shift 2 ;;
    --rounds) ROUNDS=$2; shift 2 ;;
    --partitions) COUNTS=$2; shift 2 ;;
    --config) CONFIG=$2; shift 2 ;;
    *) echo "partition_growth.sh: unknown argument '$1'" >&2; exit 2 ;;
  esac
done
LAUNCH=$BUILD/bin/ps_launch
[ -x "$LAUNCH" ] || { echo "partition_growth.sh: no $LAUNCH (build first)" >&2; exit 1; }
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
declare -A times
for r in $(seq 1 "$ROUNDS"); do
  for n in $COUNTS; do
    out=$WORK/p$n-$r
    "$LAUNCH" --config "$CONFIG" --set cluster.num_partitions="$n" --set job.output_dir="$out" \
      >"$out.log" 2>&1 || { tail -20 "$out.log" >&2; echo "partition_growth.sh: the job with $n partitions failed" >&2; exit 1; }
    t=$(grep -o '"wall_seconds": *[0-9.]*' "$out/metrics.json" | grep -o '[0-9.]*$')
    times[$n]="${times[$n]:-} $t"
    rm -rf "$out"
  done
done
median() { tr ' ' '\n' <<<"$1" | grep . | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
printf "%-11s | %-8s | %s\n" partitions "median s" "vs first (runs: $ROUNDS, alternating; $(basename "$CONFIG"))"
first=""
for n in $COUNTS; do
  m=$(median "${times[$n]}")
  [ -n "$first" ] || first=$m
  printf "%-11s | %8.3f | %.2f   (%s )\n" "$n" "$m" "$(awk -v a="$m" -v b="$first" 'BEGIN {print a / b}')" "${times[$n]}"
done
