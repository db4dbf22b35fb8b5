#!/usr/bin/env bash
# Runs every test: installs what is missing, builds, runs the unit tests and
# the multi-process tests (real scheduler/server/worker processes on loopback).
#   deploy/test.sh                 # the normal build
#   deploy/test.sh --sanitize=thread|address   # a separate sanitizer build
#   deploy/test.sh --fuzz          # the libFuzzer targets (clang, ASan+UBSan),
#                                  # each for $FUZZ_SECONDS (default 60) from its seed corpus
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD_DIR=build
CMAKE_ARGS=()
CTEST_ARGS=()
for arg in "$@"; do
  case "$arg" in
    # Sanitizer runs leave out the accuracy tests (minutes of numerics that a
    # sanitizer slows ten-fold and that exercise no extra concurrency), the
    # chaos run, and the deployment tests (containers, namespaces: packaging
    # and networks, run once in the plain pass).
    --sanitize=thread)  BUILD_DIR=build-tsan; CMAKE_ARGS+=(-DPS_SANITIZE=thread); CTEST_ARGS+=(-LE 'accuracy|chaos|deploy') ;;
    # AddressSanitizer with UndefinedBehaviorSanitizer is built with clang:
    # GCC takes 2.5x as long to compile it (~880 s against ~330 s here).
    --sanitize=address) BUILD_DIR=build-asan; CMAKE_ARGS+=(-DPS_SANITIZE=address -DCMAKE_CXX_COMPILER=clang++); CTEST_ARGS+=(-LE 'accuracy|chaos|deploy') ;;
    --fuzz) exec deploy/fuzz.sh ;;
    *) echo "test.sh: unknown argument '$arg'" >&2; exit 2 ;;
  esac
done

start=$(date +%s)
deploy/setup.sh "$BUILD_DIR" "${CMAKE_ARGS[@]}"
export TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 suppressions=$PWD/tests/tsan.supp"
export ASAN_OPTIONS="detect_leaks=1"
# Abseil's lock-order (deadlock) checks, off in normal runs for speed
# (common/sync.h), on in every process the tests start.
export PS_MUTEX_DEADLOCK_DETECTION=1
# Undefined behaviour fails the test it happens in (it only prints by default).
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
ctest --test-dir "$BUILD_DIR" --output-on-failure -j 2 --timeout 900 "${CTEST_ARGS[@]}"
echo "test.sh: all tests passed in $(( $(date +%s) - start ))s ($BUILD_DIR)"
