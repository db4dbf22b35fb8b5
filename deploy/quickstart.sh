#!/usr/bin/env bash
# The main job, from a fresh Debian 12 machine: installs what is missing,
# builds, then trains logistic regression on spambase with a local cluster
# (1 scheduler, 2 servers, 2 workers, each its own process) and prints the
# test metrics. Extra arguments go to ps_launch (e.g. --set job.mode=ssp).
set -euo pipefail
cd "$(dirname "$0")/.."
deploy/setup.sh build
exec build/bin/ps_launch --config examples/spambase_lr.yaml "$@"
