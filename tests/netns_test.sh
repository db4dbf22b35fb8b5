#!/usr/bin/env bash
# Several hosts on one machine: the scheduler, 3 servers (replication 2) and
# 2 workers each in its own network namespace, started by ps_launch --hostfile with its own address on a
# private switch (10.213.9.0/24, which exists only inside these namespaces).
# Mid-run, in one job the link of one primary server is cut for good (its
# port on the switch goes down: it keeps running, unreachable), in another
# the scheduler's link is cut for 20 s, in a third a primary server and one
# worker cannot reach each other (unreachable routes) while both reach
# everyone else; in a fourth (cluster.coordinator: etcd, etcd on its own
# host) the leading scheduler's host is lost (its link cut, its processes
# killed) and a standby scheduler on another host takes the job over; each
# job must end with the model of the same job run without a fault. Needs
# root (ip netns). NETNS_CASES picks cases (default all: "server-cut
# scheduler-cut worker-cut scheduler-lost"); NETNS_KEEP=1 keeps the logs.
#   tests/netns_test.sh BIN_DIR
set -euo pipefail
BIN=$(cd "${1:?usage: netns_test.sh BIN_DIR}" && pwd)
ROOT=$(cd "$(dirname "$0")/.." && pwd)
say() { echo "netns_test: $*"; }
fail() { echo "netns_test: FAILED: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || fail "needs root for ip netns"
command -v ip >/dev/null || fail "needs iproute2"

TAG="ps$$"
SW="$TAG-sw"
WORK=$(mktemp -d /tmp/ps-netns.XXXXXX)
HOSTS=(sched srv0 srv1 srv2 wrk0 wrk1 sched2 etcd)
declare -A ADDR=([sched]=10.213.9.1 [srv0]=10.213.9.2 [srv1]=10.213.9.3 [srv2]=10.213.9.4
                 [wrk0]=10.213.9.5 [wrk1]=10.213.9.6 [sched2]=10.213.9.7 [etcd]=10.213.9.8)
EPOCHS=40
SETS=(--set cluster.num_servers=3 --set cluster.num_workers=2 --set cluster.standby_servers=0
      --set cluster.standby_workers=0 --set "train.epochs=$EPOCHS")

cleanup() {
  local rc=$?
  for h in "${HOSTS[@]}" sw; do
    local ns="$TAG-$h"
    [ -e "/run/netns/$ns" ] || continue
    for p in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$p" 2>/dev/null || true; done
    for _ in $(seq 1 50); do [ -z "$(ip netns pids "$ns" 2>/dev/null)" ] && break; sleep 0.1; done  # wait for exits
    ip netns del "$ns" 2>/dev/null || true
  done
  if [ -n "${NETNS_KEEP:-}" ]; then echo "netns_test: kept $WORK"; else rm -rf "$WORK"; fi
  exit $rc
}
trap cleanup EXIT

# The switch: a bridge in its own namespace; each host a veth pair to it.
ip netns add "$SW"
ip -n "$SW" link add br0 type bridge
ip -n "$SW" link set dev br0 up
for h in "${HOSTS[@]}"; do
  ns="$TAG-$h"
  ip netns add "$ns"
  ip link add "$TAG$h" netns "$ns" type veth peer name "p-$h" netns "$SW"
  ip -n "$SW" link set dev "p-$h" master br0
  ip -n "$SW" link set dev "p-$h" up
  ip -n "$ns" link set dev lo up
  ip -n "$ns" addr add "${ADDR[$h]}/24" dev "$TAG$h"
  ip -n "$ns" link set dev "$TAG$h" up
done
on() { local h=$1; shift; ip netns exec "$TAG-$h" "$@"; }

say "baseline: the same job with ps_launch on loopback"
"$BIN/ps_launch" --config "$ROOT/examples/spambase_replicated.yaml" --set "job.output_dir=$WORK/baseline" \
  "${SETS[@]}" >"$WORK/baseline.log" 2>&1 || { tail -20 "$WORK/baseline.log"; fail "baseline job"; }

# The job through ps_launch --hostfile: the scheduler here (in sched's
# namespace), servers and workers started on their hosts by the remote shell
# tests/netns_rsh.sh (what ssh does on real machines).
printf '%s roles=server\n' "${ADDR[srv0]}" "${ADDR[srv1]}" "${ADDR[srv2]}" >"$WORK/hosts"
printf '%s roles=worker\n' "${ADDR[wrk0]}" "${ADDR[wrk1]}" >>"$WORK/hosts"
# start_job NAME [--set ...]: the job across the 6 namespaces, in the
# background (sched_pid), its output in $WORK/NAME, once training is under
# way (epoch 3).
start_job() {
  local name=$1
  shift
  on sched "$BIN/ps_launch" --config "$ROOT/examples/spambase_replicated.yaml" \
    --set "job.output_dir=$WORK/$name" "${SETS[@]}" "$@" --hostfile "$WORK/hosts" \
    --rsh "$ROOT/tests/netns_rsh.sh" --scheduler_host "${ADDR[sched]}" >"$WORK/$name.log" 2>&1 &
  sched_pid=$!
  for _ in $(seq 1 600); do grep -q "epoch 3/$EPOCHS" "$WORK/$name.log" && break; sleep 0.1; done
  grep -q "epoch 3/$EPOCHS" "$WORK/$name.log" || { tail -20 "$WORK/$name.log"; fail "$name: training did not start"; }
  for h in srv0 srv1 srv2 wrk0 wrk1; do
    [ -n "$(ip netns pids "$TAG-$h")" ] || fail "$name: nothing runs on host $h"
  done
}
# end_job NAME: waits for it, and compares its model with the baseline's.
end_job() {
  local name=$1 code=0
  for _ in $(seq 1 1800); do kill -0 "$sched_pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$sched_pid" 2>/dev/null; then tail -20 "$WORK/$name.log"; fail "$name: the job did not end within 180 s"; fi
  wait "$sched_pid" || code=$?
  [ "$code" -eq 0 ] || { tail -30 "$WORK/$name.log"; fail "$name: ps_launch exited with $code"; }
  rows=$("$ROOT/tests/same_model.sh" "$BIN" "$WORK/baseline/model" "$WORK/$name/model") \
    || fail "$name: the model differs from the run without a cut"
  say "$name: the job ended like the uncut run: $rows of the model identical"
}

# Which cases run (all by default):
# NETNS_CASES="server-cut scheduler-cut worker-cut scheduler-lost".
CASES=" ${NETNS_CASES:-server-cut scheduler-cut worker-cut scheduler-lost} "
case_on() { [[ "$CASES" == *" $1 "* ]]; }

# 1. The link of server rank 1 (a primary of a third of the partitions) is
# cut for good once training is under way: it is failed over.
server_cut() {
say "server-cut: the job across 6 namespaces (ps_launch --hostfile)"
start_job server-cut
victim=""
for k in 0 1 2; do grep -q "server rank 1 listening on" "$WORK/server-cut/logs/server-$k.log" && victim=srv$k; done
[ -n "$victim" ] || fail "no server has rank 1"
grep -q "server 1 registered at ${ADDR[$victim]}:" "$WORK/server-cut.log" || fail "rank 1 did not advertise ${ADDR[$victim]}"
ip -n "$SW" link set dev "p-$victim" down
cut_at=$(date +%s)
say "server-cut: cut the link of server rank 1 ($victim, ${ADDR[$victim]}) at epoch 3 of $EPOCHS"
end_job server-cut
grep -q "partitions promoted to a backup" "$WORK/server-cut.log" || fail "server-cut: no failover in the scheduler's log"
say "server-cut: the job ended $(( $(date +%s) - cut_at ))s after the cut: $(grep -m1 'partitions promoted' "$WORK/server-cut.log")"
ip -n "$SW" link set dev "p-$victim" up
}
case_on server-cut && server_cut

# 2. The scheduler's own link is cut for 20 s (20x the heartbeat timeout,
# a third of cluster.scheduler_timeout_ms): every member falls silent at
# once. The scheduler must suspect itself, not them: no failover, and the
# job ends as if nothing happened.
scheduler_cut() {
say "scheduler-cut: the same job; the scheduler's link is cut for 20 s"
start_job scheduler-cut
ip -n "$SW" link set dev p-sched down
say "scheduler-cut: cut at epoch 3 of $EPOCHS"
sleep 20  # the fault's length, not a wait for anything
ip -n "$SW" link set dev p-sched up
say "scheduler-cut: link back"
end_job scheduler-cut
grep -q "suspects its own network" "$WORK/scheduler-cut.log" || fail "scheduler-cut: the scheduler never suspected its own link"
if grep -E "promoted to a backup|sent no heartbeat|did not answer the scheduler's probe \(" "$WORK/scheduler-cut.log"; then
  fail "scheduler-cut: the scheduler failed a member over while it was the one cut off"
fi
say "scheduler-cut: $(grep -m1 'hears from .* again after' "$WORK/scheduler-cut.log" | sed 's/.*\] //')"
}
case_on scheduler-cut && scheduler_cut

# 3. A primary server cut off from one worker only (both still reach the
# scheduler and the other worker): the worker keeps reporting it, the
# scheduler finds it answers and, after a heartbeat timeout of reports,
# fails it over anyway; the job ends as if nothing happened.
worker_cut() {
say "worker-cut: the same job; server rank 1 and one worker cannot reach each other"
# Each attempt of the cut worker waits out its RPC timeout (the cut drops
# packets on an open connection): 3 s instead of 30 s here.
start_job worker-cut --set cluster.rpc_timeout_ms=3000
victim=""
for k in 0 1 2; do grep -q "server rank 1 listening on" "$WORK/worker-cut/logs/server-$k.log" && victim=srv$k; done
[ -n "$victim" ] || fail "worker-cut: no server has rank 1"
on wrk0 ip route add unreachable "${ADDR[$victim]}/32"
on "$victim" ip route add unreachable "${ADDR[wrk0]}/32"
cut_at=$(date +%s)
say "worker-cut: $victim (${ADDR[$victim]}) and wrk0 (${ADDR[wrk0]}) cut from each other at epoch 3 of $EPOCHS"
end_job worker-cut
on wrk0 ip route del unreachable "${ADDR[$victim]}/32"
on "$victim" ip route del unreachable "${ADDR[wrk0]}/32"
grep -q "it is failed over as if it were dead" "$WORK/worker-cut.log" || fail "worker-cut: server rank 1 was not failed over"
say "worker-cut: the job ended $(( $(date +%s) - cut_at ))s after the cut: $(grep -m1 'failed over as if it were dead' "$WORK/worker-cut.log" | sed 's/.*\] //')"
}
case_on worker-cut && worker_cut

# 4. cluster.coordinator: etcd. etcd on its own host, the leading scheduler
# on sched, a standby (ps_scheduler --standby) on sched2, members that know
# both. Mid-run the leader's host is lost: its link goes down and its
# processes are killed. The standby takes the job over from the state in
# etcd once the leader's lease (2 s) expires; the job ends as if nothing
# happened. Started by hand, host by host: ps_launch would run on the lost
# host.
scheduler_lost() {
say "scheduler-lost: leader and standby schedulers on two hosts, etcd on a third"
command -v etcd >/dev/null || fail "scheduler-lost: needs etcd (deploy/setup.sh installs etcd-server)"
local dir="$WORK/scheduler-lost"
mkdir -p "$dir"
"$BIN/psctl" keygen "$dir/auth" >/dev/null
# Port 0 (the namespace is private anyway); the address is in etcd's log.
on etcd etcd --name lost --data-dir "$dir/etcd" --listen-client-urls "http://${ADDR[etcd]}:0" \
  --advertise-client-urls "http://${ADDR[etcd]}:0" --listen-peer-urls http://127.0.0.1:0 \
  --initial-advertise-peer-urls http://127.0.0.1:1 --initial-cluster lost=http://127.0.0.1:1 \
  --enable-grpc-gateway=false --log-outputs stderr >"$dir/etcd.log" 2>&1 &
local endpoint=""
for _ in $(seq 1 300); do
  endpoint=$(grep -o "serving insecure client requests on [0-9.:]*" "$dir/etcd.log" | head -1 | awk '{print $NF}') || true
  [ -n "$endpoint" ] && break
  sleep 0.1  # poll period, bounded by the loop
done
[ -n "$endpoint" ] || { cat "$dir/etcd.log"; fail "scheduler-lost: etcd did not start"; }
local sets=("${SETS[@]}" --set "job.output_dir=$dir/out" --set cluster.coordinator=etcd
            --set "cluster.etcd_endpoints=$endpoint" --set cluster.etcd_lease_seconds=2)
local config="$ROOT/examples/spambase_replicated.yaml"
on sched "$BIN/ps_scheduler" --config "$config" "${sets[@]}" --host "${ADDR[sched]}" --port 0 \
  --port_file "$dir/port1" --token_file "$dir/auth/job.token" >"$dir/scheduler-1.log" 2>&1 &
for _ in $(seq 1 300); do [ -s "$dir/port1" ] && break; sleep 0.1; done  # poll, bounded
[ -s "$dir/port1" ] || { cat "$dir/scheduler-1.log"; fail "scheduler-lost: the leader did not start"; }
on sched2 "$BIN/ps_scheduler" --config "$config" "${sets[@]}" --standby --host "${ADDR[sched2]}" \
  --port 0 --port_file "$dir/port2" --token_file "$dir/auth/job.token" >"$dir/scheduler-2.log" 2>&1 &
local standby_pid=$!
for _ in $(seq 1 300); do [ -s "$dir/port2" ] && break; sleep 0.1; done  # poll, bounded
[ -s "$dir/port2" ] || { cat "$dir/scheduler-2.log"; fail "scheduler-lost: the standby did not start"; }
local schedulers="${ADDR[sched]}:$(cat "$dir/port1"),${ADDR[sched2]}:$(cat "$dir/port2")"
local members=()
for h in srv0 srv1 srv2 wrk0 wrk1; do
  local role=server
  [[ $h == wrk* ]] && role=worker
  on "$h" "$BIN/ps_$role" --scheduler "$schedulers" --host 0.0.0.0 --advertise "${ADDR[$h]}" \
    --token_file "$dir/auth/$role.token" >"$dir/$h.log" 2>&1 &
  members+=($!)
done
for _ in $(seq 1 600); do grep -q "epoch 3/$EPOCHS" "$dir/scheduler-1.log" && break; sleep 0.1; done
grep -q "epoch 3/$EPOCHS" "$dir/scheduler-1.log" || { tail -20 "$dir/scheduler-1.log"; fail "scheduler-lost: training did not start"; }
# The leader's host is lost: off the network, its processes dead.
ip -n "$SW" link set dev p-sched down
for p in $(ip netns pids "$TAG-sched"); do kill -9 "$p" 2>/dev/null || true; done
local lost_at=$(date +%s.%N)
say "scheduler-lost: the leader's host (${ADDR[sched]}) lost at epoch 3 of $EPOCHS"
ls "$dir/out" | grep -q "^scheduler.state" && fail "scheduler-lost: a scheduler state file was written (etcd holds the state)"
for _ in $(seq 1 300); do grep -q "taken over from the state in etcd" "$dir/scheduler-2.log" && break; sleep 0.1; done
grep -q "taken over from the state in etcd" "$dir/scheduler-2.log" || { tail -20 "$dir/scheduler-2.log"; fail "scheduler-lost: the standby did not take over"; }
say "scheduler-lost: the standby took over $(awk -v a="$lost_at" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }') s after the loss"
for pid in "${members[@]}" "$standby_pid"; do
  for _ in $(seq 1 1800); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done  # poll, bounded
  kill -0 "$pid" 2>/dev/null && { tail -20 "$dir/scheduler-2.log"; fail "scheduler-lost: the job did not end within 180 s"; }
  wait "$pid" || { tail -20 "$dir/scheduler-2.log"; fail "scheduler-lost: a process exited with an error"; }
done
ip -n "$SW" link set dev p-sched up
rows=$("$ROOT/tests/same_model.sh" "$BIN" "$WORK/baseline/model" "$dir/out/model") \
  || fail "scheduler-lost: the model differs from the run without a fault"
say "scheduler-lost: the job ended like the run without a fault: $rows of the model identical"
}
case_on scheduler-lost && scheduler_lost
exit 0
