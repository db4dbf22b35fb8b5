#!/usr/bin/env bash
# The docker-compose cluster, end to end, from a clean clone:
#  1. uses the Docker engine DOCKER_HOST reaches, or starts a private one;
#  2. builds the image offline (deploy/image.sh: a debootstrapped base, this
#     build's binaries);
#  3. trains the same job natively (ps_launch) for the model of a no-fault run;
#  4. brings deploy/docker-compose.yml up, `docker kill`s a server container
#     mid-run, waits for the scheduler container: its exit code is the job's;
#  5. checks metrics.json is on the volume and the model is that of the
#     no-fault run, weight for weight;
#  6. tears everything down and checks nothing is left (containers, networks,
#     volumes, mounts, processes).
#   deploy/compose_test.sh [BUILD_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BUILD_DIR=${1:-build}
case "$BUILD_DIR" in /*) ;; *) BUILD_DIR="$ROOT/$BUILD_DIR" ;; esac
BIN="$BUILD_DIR/bin"
start=$(date +%s)
say() { echo "compose_test: $*"; }
fail() { echo "compose_test: FAILED: $*" >&2; exit 1; }

# What the test needs (Debian 12 packages), only those missing.
"$ROOT/deploy/install_missing.sh" compose_test docker.io docker-compose debootstrap
[ -x "$BIN/ps_launch" ] || fail "$BIN/ps_launch is missing: run deploy/setup.sh first"

WORK=$(mktemp -d /tmp/ps-compose.XXXXXX)
PROJECT="pscompose$$"
COMPOSE=(docker-compose -p "$PROJECT" -f "$ROOT/deploy/docker-compose.yml")
ENGINE=""
UP=""
cleanup() {
  local rc=$?
  [ -n "$UP" ] && { "${COMPOSE[@]}" down -v --remove-orphans -t 2 >/dev/null 2>&1 || true; }
  [ -n "$ENGINE" ] && "$ROOT/deploy/docker_engine.sh" stop "$ENGINE"
  rm -rf "$WORK"
  exit $rc
}
trap cleanup EXIT

if ! docker version >/dev/null 2>&1; then
  ENGINE="$WORK/engine"
  eval "$("$ROOT/deploy/docker_engine.sh" start "$ENGINE")"
  say "started a private Docker engine ($DOCKER_HOST)"
fi

"$ROOT/deploy/image.sh" --build-dir "$BUILD_DIR" --tag paramserver:compose-test
export PS_IMAGE=paramserver:compose-test
image_size=$(docker image inspect -f '{{.Size}}' "$PS_IMAGE")

# Long enough to kill a server mid-run.
EPOCHS=60
export PS_SET="train.epochs=$EPOCHS"

say "baseline: the same job with ps_launch, no fault"
"$BIN/ps_launch" --config examples/spambase_replicated.yaml --set "job.output_dir=$WORK/baseline" \
  --set "train.epochs=$EPOCHS" >"$WORK/baseline.log" 2>&1 || { tail -20 "$WORK/baseline.log"; fail "baseline job"; }

say "docker-compose up"
up_start=$(date +%s)
UP=1
"${COMPOSE[@]}" up -d >"$WORK/up.log" 2>&1 || { cat "$WORK/up.log"; fail "docker-compose up"; }
scheduler=$("${COMPOSE[@]}" ps -q scheduler)
[ -n "$scheduler" ] || fail "no scheduler container"

# Kill a server once training is under way (epoch 3 evaluated).
# (The log is read into a variable first: with pipefail, `docker logs | grep
# -q` fails when grep stops reading early and docker logs gets SIGPIPE, which
# happens once the log is long.)
scheduler_log() { docker logs "$scheduler" 2>&1 || true; }
for _ in $(seq 1 600); do
  log=$(scheduler_log)
  grep -q "epoch 3/$EPOCHS" <<<"$log" && break
  [ "$(docker inspect -f '{{.State.Running}}' "$scheduler")" = true ] || break
  sleep 0.1  # poll period of the scheduler's log
done
log=$(scheduler_log)
grep -q "epoch 3/$EPOCHS" <<<"$log" || { tail -20 <<<"$log"; fail "training did not start"; }
victim=$("${COMPOSE[@]}" ps -q server-1)
docker kill "$victim" >/dev/null
say "killed server-1 at epoch 3 of $EPOCHS"

code=$(timeout 300 docker wait "$scheduler") || fail "the scheduler did not exit within 300 s"
wall=$(( $(date +%s) - up_start ))
docker logs "$scheduler" >"$WORK/scheduler.log" 2>&1
if [ "$code" != 0 ]; then
  tail -30 "$WORK/scheduler.log"
  fail "the scheduler exited with $code"
fi
grep -q "partitions promoted to a backup" "$WORK/scheduler.log" || fail "no failover in the scheduler's log"

# Outputs from the volume (docker cp works on a stopped container).
docker cp "$scheduler:/out/job" "$WORK/compose" >/dev/null
[ -s "$WORK/compose/metrics.json" ] || fail "no metrics.json on the volume"
rows=$("$ROOT/tests/same_model.sh" "$BIN" "$WORK/baseline/model" "$WORK/compose/model") \
  || fail "the compose cluster's model differs from the no-fault run's"
acc=$(grep -o '"accuracy": *[0-9.]*' "$WORK/compose/metrics.json" | head -n 1 | grep -o '[0-9.]*$')

say "docker-compose down"
"${COMPOSE[@]}" down -v --remove-orphans -t 2 >/dev/null 2>&1
UP=""
left=$(docker ps -aq --filter "label=com.docker.compose.project=$PROJECT")
[ -z "$left" ] || fail "containers left: $left"
grep -q "^${PROJECT}_" <<<"$(docker network ls --format '{{.Name}}')" && fail "a network is left"
grep -q "^${PROJECT}_" <<<"$(docker volume ls --format '{{.Name}}')" && fail "a volume is left"
docker image rm -f "$PS_IMAGE" >/dev/null
if [ -n "$ENGINE" ]; then
  "$ROOT/deploy/docker_engine.sh" stop "$ENGINE"
  ENGINE_DIR=$ENGINE
  ENGINE=""
  grep -q " $ENGINE_DIR/" /proc/mounts && fail "mounts left under $ENGINE_DIR"
  pgrep -f -- "$ENGINE_DIR/" >/dev/null && fail "engine processes left"
fi

say "the compose job (3 servers, replication 2, a standby server and worker, server-1 killed)"
say "ended like the no-fault run: $rows of the model identical, test accuracy $acc"
say "image $(awk -v s="$image_size" 'BEGIN {printf "%.0f MB", s / 1e6}'), compose run ${wall}s, whole test $(( $(date +%s) - start ))s"
