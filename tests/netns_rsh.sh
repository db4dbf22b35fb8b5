#!/usr/bin/env bash
# A remote shell for ps_launch --hostfile in tests/netns_test.sh: runs the
# command line "on host ADDRESS", i.e. in the network namespace that holds
# that address (as ssh would on the machine of that name).
#   netns_rsh.sh ADDRESS COMMAND_LINE
set -euo pipefail
host=$1
shift
for ns in $(ip netns list | awk '{print $1}'); do
  if ip -n "$ns" -o -4 addr show 2>/dev/null | grep -q " inet $host/"; then
    exec ip netns exec "$ns" sh -c "$*"
  fi
done
echo "netns_rsh: no namespace has address $host" >&2
exit 255
