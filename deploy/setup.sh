#!/usr/bin/env bash
# Installs what the build needs on Debian 12 (only what is missing), then
# configures (once) and builds (incrementally) into build/.
# Usage: deploy/setup.sh [BUILD_DIR [extra cmake args...]]
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD_DIR=${1:-build}
shift || true

PACKAGES=(build-essential cmake ninja-build ccache pkg-config
          libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
          libabsl-dev libeigen3-dev libspdlog-dev libyaml-cpp-dev
          libgtest-dev libgmock-dev libbenchmark-dev zlib1g-dev
          prometheus-cpp-dev libcivetweb-dev libcurl4-openssl-dev
          dataset-fashion-mnist
          # The tests: a real Prometheus server (and promtool), curl, ip netns.
          # (deploy/compose_test.sh installs the Docker engine it needs.)
          prometheus curl iproute2
          # A real etcd for the coordinator tests (cluster.coordinator: etcd).
          etcd-server
          # Security: OpenSSL (tickets, checksums, encryption at rest); clang
          # and its runtimes for the libFuzzer targets (deploy/test.sh --fuzz).
          libssl-dev openssl clang libclang-rt-14-dev)

deploy/install_missing.sh setup "${PACKAGES[@]}"

if [ ! -f "$BUILD_DIR/build.ninja" ]; then
  cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >/dev/null
fi
# Two cores here: keep memory and the other core's work in check.
# PS_BUILD_TARGET: one target only (deploy/test.sh --fuzz builds `fuzzers`).
ninja -C "$BUILD_DIR" -j "$(nproc)" ${PS_BUILD_TARGET:-} | grep -Ev '^\[[0-9]+/[0-9]+\] (Building|Linking|Automatic|Generating)' || true
test "${PIPESTATUS[0]}" -eq 0
