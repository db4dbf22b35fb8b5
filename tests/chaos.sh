#!/usr/bin/env bash
# Chaos run: random kill -9 of servers and workers while jobs run, then the
# invariants of issue 4 are checked:
#   1. exactly once: ps_bench counts +1 pushes per key on a replicated
#      cluster while servers are killed; every key must equal its
#      acknowledged pushes (lost = 0, duplicated = 0);
#   2. nothing changes: a BSP training job with replication 2, standby
#      servers and standby workers, killed at random, ends with the model of
#      the same job run without kills (bit for bit) and its accuracy.
# It prints every kill, and a summary line:
#   chaos: seed S, K kills (servers X, workers Y), J jobs, lost updates L, model difference D
#
# Usage: tests/chaos.sh [BUILD_BIN_DIR]   (default: build/bin)
# Environment: CHAOS_SECONDS (how long each job is under fire, default 20),
#              CHAOS_SEED (default: from the clock), CHAOS_OUT (default: a temp dir).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN="$(cd "${1:-$ROOT/build/bin}" && pwd)"
SECONDS_UNDER_FIRE="${CHAOS_SECONDS:-20}"
SEED="${CHAOS_SEED:-$(date +%s)}"
OUT="${CHAOS_OUT:-$(mktemp -d /tmp/chaos.XXXXXX)}"
RANDOM="$SEED"
mkdir -p "$OUT"
KILLS=0
SERVER_KILLS=0
WORKER_KILLS=0
START=$(date +%s.%N)

say() { printf 'chaos: t=%6.2fs %s\n' "$(awk -v a="$(date +%s.%N)" -v b="$START" 'BEGIN { print a - b }')" "$*"; }
die() { echo "chaos: FAILED: $*" >&2; exit 1; }

# The scheduler's address, once its port file exists.
scheduler_of() {
  local port_file="$1/logs/scheduler.port"
  for _ in $(seq 1 600); do
    [[ -s "$port_file" ]] && { echo "127.0.0.1:$(head -1 "$port_file")"; return; }
    sleep 0.1
  done
  die "no scheduler port in $port_file"
}

# The scheduler's view of the members (psctl status lines "ROLE RANK ADDRESS STATE ...").
members() { "$BIN/psctl" --scheduler "$1" --token_file "$OUT/train/auth/job.token" status 2>/dev/null || true; }

# Every earlier kill has been noticed: as many live processes of the binary
# as members the scheduler still counts alive (or waiting as a standby), and
# for servers every partition's copies complete. Only then is the next shot
# fired, so that kills never outrun the failovers they cause (the point is
# to check failover, not to kill more copies than replication keeps).
settled() {  # scheduler binary role
  local status procs listed
  status=$(members "$1")
  procs=$(pgrep -fc "$BIN/$2 --scheduler $1" || true)
  listed=$(grep -cE "^$3 +-?[0-9]+ +[^ ]+ +(alive|standby) " <<< "$status" || true)
  [[ "$procs" == "$listed" ]] || return 1
  [[ "$3" != server ]] || grep -q ' 0 partitions still copying' <<< "$status"
}

kill_a_server() {  # scheduler
  local servers victim
  settled "$1" ps_server server || return 0
  servers=($(pgrep -f "$BIN/ps_server --scheduler $1" || true))
  [[ ${#servers[@]} -ge 3 ]] || return 0  # keep two: replication 2 needs them
  victim=${servers[$((RANDOM % ${#servers[@]}))]}
  kill -9 "$victim" 2>/dev/null || return 0
  KILLS=$((KILLS + 1)); SERVER_KILLS=$((SERVER_KILLS + 1))
  say "kill -9 server pid $victim ($(( ${#servers[@]} - 1 )) server processes left)"
}

# A worker process that holds a rank: started as one, or a standby that took one
# over (its log, the process's stdout, says so).
holds_rank() {  # pid
  grep -qa -- --standby "/proc/$1/cmdline" 2>/dev/null || return 0
  grep -q 'takes over rank' "$(readlink "/proc/$1/fd/1")" 2>/dev/null
}

kill_a_worker() {  # scheduler
  local spares candidates=() victim p
  settled "$1" ps_worker worker || return 0
  # Keep the BSP result: only while a standby waits to take over (psctl lists
  # waiting standby workers with rank -1).
  spares=$(members "$1" | grep -cE '^worker +-1 ' || true)
  [[ "$spares" -ge 1 ]] || return 0
  for p in $(pgrep -f "$BIN/ps_worker --scheduler $1" || true); do
    holds_rank "$p" && candidates+=("$p")
  done
  [[ ${#candidates[@]} -ge 1 ]] || return 0
  victim=${candidates[$((RANDOM % ${#candidates[@]}))]}
  kill -9 "$victim" 2>/dev/null || return 0
  KILLS=$((KILLS + 1)); WORKER_KILLS=$((WORKER_KILLS + 1))
  say "kill -9 worker pid $victim ($spares standby workers were waiting)"
}

# Fires at a job until it ends or the time is up: `kinds` is "server" or "server worker".
fire() {  # scheduler job_pid deadline kinds...
  local scheduler=$1 job=$2 deadline=$3; shift 3
  local kinds=("$@")
  while kill -0 "$job" 2>/dev/null && (( $(date +%s) < deadline )); do
    sleep "$(printf '0.%d' $((5 + RANDOM % 10)))"  # 0.5-1.4 s between shots
    case ${kinds[$((RANDOM % ${#kinds[@]}))]} in
      server) kill_a_server "$scheduler" ;;
      worker) kill_a_worker "$scheduler" ;;
    esac
  done
}

say "seed $SEED, ${SECONDS_UNDER_FIRE}s under fire per job, output in $OUT"

# --- 1. exactly once under server kills ------------------------------------
cat > "$OUT/count.yaml" <<EOF
job: {name: chaos-count, mode: asp, output_dir: $OUT/count}
cluster: {num_servers: 3, num_workers: 1, replication: 2, standby_servers: 3,
          heartbeat_interval_ms: 100, heartbeat_timeout_ms: 1000}
model: {type: benchmark}
optimizer: {type: sgd, learning_rate: 1}
data: {format: libsvm, train_path: $ROOT/data/spambase/train.libsvm}
EOF
"$BIN/ps_bench" --config "$OUT/count.yaml" --count_seconds "$((SECONDS_UNDER_FIRE + 2))" \
  > "$OUT/count.log" 2>&1 &
BENCH=$!
SCHED=$(scheduler_of "$OUT/count")
for _ in $(seq 1 300); do grep -q 'counting for' "$OUT/count.log" && break; sleep 0.1; done
say "counting job up (scheduler $SCHED)"
fire "$SCHED" "$BENCH" $(( $(date +%s) + SECONDS_UNDER_FIRE )) server
wait "$BENCH" || die "the counting job failed: $(tail -5 "$OUT/count.log")"
COUNT_LINE=$(grep 'exactly-once check' "$OUT/count.log") || die "no count result in $OUT/count.log"
LOST=$(sed -E 's/.*"lost": ([0-9]+).*/\1/' <<< "$COUNT_LINE")
DUPLICATED=$(sed -E 's/.*"duplicated": ([0-9]+).*/\1/' <<< "$COUNT_LINE")
say "$COUNT_LINE"

# --- 2. BSP training under server and worker kills --------------------------
TRAIN_SETS=(--set cluster.replication=2 --set cluster.standby_servers=3
            --set cluster.standby_workers=3 --set cluster.heartbeat_interval_ms=100
            --set cluster.heartbeat_timeout_ms=1000 --set train.epochs=30)
"$BIN/ps_launch" --config "$ROOT/examples/spambase_lr.yaml" --set "job.output_dir=$OUT/baseline" \
  "${TRAIN_SETS[@]}" --worker_delay 0:3 > "$OUT/baseline.log" 2>&1 \
  || die "the baseline job failed: $(tail -5 "$OUT/baseline.log")"
say "baseline job done"
"$BIN/ps_launch" --config "$ROOT/examples/spambase_lr.yaml" --set "job.output_dir=$OUT/train" \
  "${TRAIN_SETS[@]}" --worker_delay 0:3 > "$OUT/train.log" 2>&1 &
JOB=$!
SCHED=$(scheduler_of "$OUT/train")
for _ in $(seq 1 300); do grep -q 'epoch 1/' "$OUT/train.log" && break; sleep 0.1; done
say "training job up (scheduler $SCHED)"
fire "$SCHED" "$JOB" $(( $(date +%s) + SECONDS_UNDER_FIRE )) server worker
wait "$JOB" || die "the training job failed: $(tail -5 "$OUT/train.log")"
"$BIN/ps_model" dump "$OUT/baseline/model" > "$OUT/baseline.dump"
"$BIN/ps_model" dump "$OUT/train/model" > "$OUT/train.dump"
DIFF=$(paste -d' ' "$OUT/baseline.dump" "$OUT/train.dump" | awk '
  { n = NF / 2; for (i = 3; i <= n; ++i) { d = $i - $(i + n); if (d < 0) d = -d; if (d > m) m = d } }
  END { printf "%g", m + 0 }')
cmp -s "$OUT/baseline.dump" "$OUT/train.dump" && IDENTICAL=yes || IDENTICAL=no
ACCURACY=$(grep -o '"accuracy":[0-9.]*' "$OUT/train/metrics.json" | tail -1)
say "training: $ACCURACY, model identical to the baseline: $IDENTICAL (max difference $DIFF)"

echo "chaos: seed $SEED, $KILLS kills (servers $SERVER_KILLS, workers $WORKER_KILLS), 3 jobs," \
     "lost updates $LOST, duplicated $DUPLICATED, model difference $DIFF"
[[ "$LOST" == 0 && "$DUPLICATED" == 0 ]] || die "updates were lost or duplicated"
[[ "$IDENTICAL" == yes ]] || die "the model differs from the baseline's"
(( KILLS > 0 )) || die "nothing was killed"
echo "chaos: PASSED"
