#!/usr/bin/env bash
# Straggler benchmark (issue 4): the spambase job (examples/spambase_lr.yaml)
# on a local cluster of 2 servers and 2 workers, one worker slowed with
# ps_launch --worker_delay (a sleep in each of its iterations), trained with
# dynamic shards (the scheduler's queue, the default) and with static shares
# (data.dynamic_shards=false), in ASP and in SSP (staleness 2).
#
# First a run without a straggler measures the time of one iteration; the
# delay is then twice that (unless --delay_ms is given), so the slowed worker
# is about 3x slower per iteration. Prints, per run, the epoch time (wall
# seconds of training / epochs; each epoch's evaluation included), what the
# slowed worker trained on, the test accuracy, and per mode the ratio of the
# epoch times, static / dynamic.
#
# Usage: bench/straggler.sh [--build DIR] [--out DIR] [--epochs N]
#                           [--shard_size N] [--delay_ms MS] [--modes "asp ssp"]
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
build=$root/build
out=out/straggler
epochs=20
shard_size=64
delay_ms=
modes="asp ssp"
while [[ $# -gt 0 ]]; do
  case $1 in
    --build) build=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    --epochs) epochs=$2; shift 2 ;;
    --shard_size) shard_size=$2; shift 2 ;;
    --delay_ms) delay_ms=$2; shift 2 ;;
    --modes) modes=$2; shift 2 ;;
    -h|--help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "straggler.sh: unknown argument '$1' (try --help)" >&2; exit 2 ;;
  esac
done
launch=$build/bin/ps_launch
if [[ ! -x $launch ]]; then
  echo "straggler.sh: $launch not found; build first (cmake -S . -B build -G Ninja && ninja -C build)" >&2
  exit 1
fi

# run NAME MODE DYNAMIC DELAY_MS: one job into $out/NAME.
run() {
  local dir=$out/$1
  rm -rf "$dir"
  local delay=()
  [[ $4 -gt 0 ]] && delay=(--worker_delay "1:$4")
  mkdir -p "$dir"
  if ! "$launch" --config "$root/examples/spambase_lr.yaml" \
      --set "job.output_dir=$dir" --set "job.mode=$2" --set job.staleness=2 \
      --set "train.epochs=$epochs" --set "data.shard_size=$shard_size" \
      --set "data.dynamic_shards=$3" "${delay[@]}" >"$dir/launch.log" 2>&1; then
    echo "straggler.sh: the $1 job failed; the end of $dir/launch.log:" >&2
    tail -n 5 "$dir/launch.log" >&2
    exit 1
  fi
}

# Fields of $out/NAME/metrics.json (the top-level ones come first).
wall() { grep -m1 -o '"wall_seconds": [0-9.]*' "$out/$1/metrics.json" | awk '{print $2}'; }
samples() { grep -m1 -o '"worker_samples": \[[0-9, ]*\]' "$out/$1/metrics.json" | tr -d '[],' | cut -d' ' -f2-; }
accuracy() { grep -m1 '^  "test"' "$out/$1/metrics.json" | grep -o '"accuracy":[0-9.]*' | cut -d: -f2; }
# ps_launch slows the worker it spawns second (worker-1.log); ranks go by
# registration order, so its log says which rank it got.
slow_rank() { grep -m1 -o 'worker rank [0-9]*' "$out/$1/logs/worker-1.log" | awk '{print $3}'; }
# Samples of rank R in "S0 S1".
nth() { echo "$1" | awk -v r="$2" '{print $(r + 1)}'; }

batch=$(grep -m1 'batch_size:' "$root/examples/spambase_lr.yaml" | awk '{print $2}')
run baseline asp true 0
base_wall=$(wall baseline)
base_samples=$(samples baseline)
# Iterations per worker = samples / workers / batch; both workers run at once.
iteration_ms=$(echo "$base_wall $base_samples" | awk -v b="$batch" \
  '{n = 0; for (i = 2; i <= NF; ++i) n += $i; printf "%.2f", 1000 * $1 / (n / (NF - 1) / b)}')
if [[ -z $delay_ms ]]; then
  # Rounded down: the estimate above includes evaluation and barriers, so it
  # is a little above the time of a bare iteration.
  delay_ms=$(awk -v t="$iteration_ms" 'BEGIN {d = int(2 * t); print d < 1 ? 1 : d}')
fi
echo "spambase LR, 2 servers + 2 workers, $epochs epochs, batch $batch, shards of $shard_size rows"
echo "without a straggler: $(awk -v w="$base_wall" -v e="$epochs" 'BEGIN {printf "%.3f", w / e}') s per epoch," \
  "$iteration_ms ms per iteration (wall / iterations per worker, evaluation included)"
echo "straggler: one worker sleeps $delay_ms ms in every iteration"
echo
printf '%-5s %-8s %15s %28s %9s\n' mode shards "epoch time (s)" "slowed worker's samples" accuracy
declare -A epoch_s
for mode in $modes; do
  for shards in dynamic static; do
    name=$mode-$shards
    run "$name" "$mode" "$([[ $shards == dynamic ]] && echo true || echo false)" "$delay_ms"
    s=$(samples "$name")
    r=$(slow_rank "$name")
    slow=$(nth "$s" "$r")
    total=$(echo "$s" | awk '{n = 0; for (i = 1; i <= NF; ++i) n += $i; print n}')
    epoch_s[$name]=$(awk -v w="$(wall "$name")" -v e="$epochs" 'BEGIN {printf "%.3f", w / e}')
    printf '%-5s %-8s %15s %28s %9s\n' "$mode" "$shards" "${epoch_s[$name]}" \
      "$(awk -v a="$slow" -v t="$total" 'BEGIN {printf "%d of %d (%.1f%%)", a, t, 100 * a / t}')" \
      "$(awk -v a="$(accuracy "$name")" 'BEGIN {printf "%.4f", a}')"
  done
done
echo
for mode in $modes; do
  echo "$mode: epoch time static / dynamic = $(awk -v s="${epoch_s[$mode-static]}" -v d="${epoch_s[$mode-dynamic]}" \
    'BEGIN {printf "%.2f", s / d}')"
done
if [[ " $modes " == *" asp "* ]]; then
  # In ASP with the queue both workers compute all the time, so the split of
  # the samples is the ratio of their speeds.
  s=$(samples asp-dynamic)
  r=$(slow_rank asp-dynamic)
  slowdown=$(awk -v f="$(nth "$s" $((1 - r)))" -v l="$(nth "$s" "$r")" 'BEGIN {printf "%.2f", f / l}')
  echo "measured slowdown (asp, dynamic: fast worker's samples / slowed worker's): ${slowdown}x"
  # Static: the slowed worker's half takes R times one worker's half of an
  # epoch; dynamic: both work at speeds 1 and 1/R, so (R + 1) / 2 in all.
  echo "ideal asp ratio for that slowdown, (R + 1) / 2: $(awk -v r="$slowdown" 'BEGIN {printf "%.2f", (r + 1) / 2}')"
fi
echo "runs in $out"
