#!/usr/bin/env bash
# The main job, from a fresh Debian 12 machine: installs what is missing,
# builds, then runs two jobs on a local cluster (1 scheduler, 2 servers,
# 2 workers, each its own process):
#   1. logistic regression on spambase (data/spambase), about 2 s;
#   2. an MLP on Fashion-MNIST (Debian's dataset-fashion-mnist), about 30 s.
# Each prints progress and its test metrics, and writes metrics.json, the
# model and report.html under out/. Extra arguments go to both ps_launch runs
# (e.g. --set job.mode=ssp).
set -euo pipefail
cd "$(dirname "$0")/.."
deploy/setup.sh build
build/bin/ps_launch --config examples/spambase_lr.yaml "$@"
echo
build/bin/ps_launch --config examples/fashion_mnist_mlp.yaml "$@"
echo
echo "quickstart: reports in out/spambase-lr/report.html and out/fashion-mlp/report.html"
