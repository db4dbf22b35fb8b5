#!/usr/bin/env bash
# A private Docker engine for the compose test, on machines with no running
# one (no systemd, CI): Debian's dockerd with its own data root and socket,
# no iptables rules and no default bridge (compose makes its own network).
#   eval "$(deploy/docker_engine.sh start DIR)"   # prints export DOCKER_HOST=...
#   deploy/docker_engine.sh stop DIR               # stops it, leaves nothing behind
set -euo pipefail

cmd=${1:-}
dir=${2:-}
[ -n "$cmd" ] && [ -n "$dir" ] || { echo "usage: docker_engine.sh start|stop DIR" >&2; exit 2; }

case "$cmd" in
  start)
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    sock="$dir/docker.sock"
    dockerd --data-root "$dir/data" --exec-root "$dir/exec" --pidfile "$dir/dockerd.pid" \
      -H "unix://$sock" --iptables=false --ip6tables=false --bridge=none \
      >"$dir/dockerd.log" 2>&1 &
    # Ready when the socket answers (about a second), or give up.
    for _ in $(seq 1 300); do
      if DOCKER_HOST="unix://$sock" docker version >/dev/null 2>&1; then
        echo "export DOCKER_HOST=unix://$sock"
        exit 0
      fi
      kill -0 $! 2>/dev/null || break
      sleep 0.1  # poll period for the socket
    done
    echo "docker_engine.sh: dockerd did not come up; its log:" >&2
    tail -20 "$dir/dockerd.log" >&2
    exit 1
    ;;
  stop)
    [ -d "$dir" ] || exit 0
    dir=$(cd "$dir" && pwd)
    if [ -f "$dir/dockerd.pid" ]; then
      pid=$(cat "$dir/dockerd.pid")
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 1 200); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done  # wait for exit
      kill -9 "$pid" 2>/dev/null || true
    fi
    # containerd and shims it started, if any are left.
    for p in $(pgrep -f -- "$dir/" || true); do kill -9 "$p" 2>/dev/null || true; done
    # Overlay and other mounts under the engine's folders, deepest first.
    awk -v d="$dir/" 'index($2, d) == 1 {print $2}' /proc/mounts | sort -r | while read -r m; do
      umount -l "$m" 2>/dev/null || true
    done
    rm -rf "$dir"
    ;;
  *) echo "usage: docker_engine.sh start|stop DIR" >&2; exit 2 ;;
esac
