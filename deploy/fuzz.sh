#!/usr/bin/env bash
# Builds the libFuzzer targets (tests/fuzz) with clang, AddressSanitizer and
# UndefinedBehaviorSanitizer in build-fuzz, then runs each for FUZZ_SECONDS
# (default 60) from a copy of its seed corpus (tests/fuzz/corpus/<target>),
# two at a time. A crash, a leak, a timeout or an out-of-memory fails the run
# and leaves the input in build-fuzz/findings/. Prints per target the runs
# made and the corpus size before and after.
#   deploy/fuzz.sh [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_EACH=${FUZZ_SECONDS:-60}
BUILD_DIR=build-fuzz
start=$(date +%s)
CXX=clang++ PS_BUILD_TARGET=fuzzers deploy/setup.sh "$BUILD_DIR" -DPS_FUZZ=ON -DCMAKE_CXX_COMPILER=clang++
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=($(cd tests/fuzz && ls fuzz_*.cc | sed 's/\.cc$//'))
fi
WORK=$(mktemp -d /tmp/ps-fuzz.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$BUILD_DIR/findings"
export ASAN_OPTIONS="detect_leaks=1:allocator_may_return_null=1"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
run() {
  local t=$1
  mkdir -p "$WORK/$t"
  cp tests/fuzz/corpus/"$t"/* "$WORK/$t/"
  local seeds
  seeds=$(ls "$WORK/$t" | wc -l)
  if "$BUILD_DIR/fuzz/$t" "$WORK/$t" -max_total_time="$SECONDS_EACH" -max_len=65536 -timeout=20 \
      -rss_limit_mb=2560 -malloc_limit_mb=2048 -artifact_prefix="$BUILD_DIR/findings/$t-" \
      -print_final_stats=1 >"$WORK/$t.log" 2>&1; then
    local runs
    runs=$(grep -ao 'stat::number_of_executed_units: *[0-9]*' "$WORK/$t.log" | grep -o '[0-9]*$')
    echo "fuzz: $t: ${runs:-?} runs in ${SECONDS_EACH}s, corpus $seeds -> $(ls "$WORK/$t" | wc -l) inputs, no crash"
  else
    tail -40 "$WORK/$t.log"
    echo "fuzz: $t FAILED (input in $BUILD_DIR/findings/)"
    return 1
  fi
}
failed=0
pids=()
for t in "${targets[@]}"; do
  run "$t" &
  pids+=($!)
  if [ ${#pids[@]} -ge 2 ]; then
    wait "${pids[0]}" || failed=1
    pids=("${pids[@]:1}")
  fi
done
for p in "${pids[@]}"; do wait "$p" || failed=1; done
[ $failed -eq 0 ] || { echo "fuzz: a target failed" >&2; exit 1; }
echo "fuzz: ${#targets[@]} targets passed in $(( $(date +%s) - start ))s"
