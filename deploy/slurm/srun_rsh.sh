#!/usr/bin/env bash
# ps_launch's remote shell inside a Slurm allocation: runs the command line
# on node HOST as one task of the job (srun), like ssh would.
#   srun_rsh.sh HOST COMMAND_LINE
set -euo pipefail
host=$1
shift
exec srun --nodes=1 --ntasks=1 --overlap --kill-on-bad-exit=0 -w "$host" sh -c "$*"
