#!/usr/bin/env bash
# Builds the container image (deploy/Dockerfile) from this build's binaries.
#   deploy/image.sh [--tag paramserver:latest] [--base IMAGE] [--build-dir build]
# Without --base, it uses local/bookworm:base, made offline with debootstrap
# the first time (no registry needed); pass --base debian:bookworm-slim where
# a registry is reachable. Needs a reachable Docker engine (DOCKER_HOST).
set -euo pipefail
cd "$(dirname "$0")/.."

TAG=paramserver:latest
BASE=""
BUILD_DIR=build
while [ $# -gt 0 ]; do
  case "$1" in
    --tag) TAG=$2; shift 2 ;;
    --base) BASE=$2; shift 2 ;;
    --build-dir) BUILD_DIR=$2; shift 2 ;;
    *) echo "image.sh: unknown argument '$1'" >&2; exit 2 ;;
  esac
done

say() { echo "image: $*"; }

if [ -z "$BASE" ]; then
  BASE=local/bookworm:base
  if ! docker image inspect "$BASE" >/dev/null 2>&1; then
    command -v debootstrap >/dev/null || { echo "image.sh: debootstrap is needed (apt-get install debootstrap)" >&2; exit 1; }
    rootfs=$(mktemp -d /tmp/ps-rootfs.XXXXXX)
    trap 'rm -rf "$rootfs"' EXIT
    # The mirror apt uses here (debootstrap's default otherwise).
    mirror=$(sed -n 's/^URIs: *\([^ ]*\).*/\1/p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -n 1)
    [ -n "$mirror" ] || mirror=$(awk '$1 == "deb" && $3 == "bookworm" {print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
    say "making $BASE with debootstrap (minbase bookworm)"
    start=$(date +%s)
    debootstrap --variant=minbase bookworm "$rootfs" ${mirror:+"$mirror"} >"$rootfs.log" 2>&1 \
      || { tail -20 "$rootfs.log" >&2; exit 1; }
    rm -f "$rootfs.log"
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
    tar -C "$rootfs" --numeric-owner -c . | docker import - "$BASE" >/dev/null
    say "$BASE made in $(( $(date +%s) - start ))s"
  fi
fi

# Staging: the binaries and every shared library they load, but glibc's
# (the base image has the same Debian 12 glibc).
stage=$(mktemp -d /tmp/ps-image.XXXXXX)
trap 'rm -rf "$stage" ${rootfs:+"$rootfs"}' EXIT
mkdir -p "$stage/bin" "$stage/lib" "$stage/job"
cp -r examples data "$stage/job/"
BINARIES=(ps_scheduler ps_server ps_worker ps_launch ps_bench ps_model ps_predict psctl)
for b in "${BINARIES[@]}"; do
  [ -x "$BUILD_DIR/bin/$b" ] || { echo "image.sh: $BUILD_DIR/bin/$b is missing (run deploy/setup.sh first)" >&2; exit 1; }
  cp "$BUILD_DIR/bin/$b" "$stage/bin/"
  strip --strip-debug "$stage/bin/$b"
done
ldd "${BINARIES[@]/#/$BUILD_DIR/bin/}" | awk '$2 == "=>" && $3 ~ /^\// {print $3}' | sort -u |
  grep -Ev '/(libc|libm|libdl|librt|libpthread|ld-linux[^/]*)\.so' |
  while read -r lib; do cp -L "$lib" "$stage/lib/"; done

if ! docker build -q -f deploy/Dockerfile --build-arg BASE="$BASE" -t "$TAG" "$stage" >"$stage.log" 2>&1; then
  cat "$stage.log" >&2
  rm -f "$stage.log"
  exit 1
fi
rm -f "$stage.log"
say "built $TAG from $BASE: $(docker image inspect -f '{{.Size}}' "$TAG" | awk '{printf "%.0f MB", $1 / 1e6}')"
