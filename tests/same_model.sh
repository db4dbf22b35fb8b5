#!/usr/bin/env bash
# Exit 0 if two saved models are equal, row for row and bit for bit (as
# ps_model dump prints them); else shows the first differences.
#   tests/same_model.sh BIN_DIR MODEL_A MODEL_B
set -euo pipefail
bin=$1 a=$2 b=$3
da=$(mktemp) db=$(mktemp)
trap 'rm -f "$da" "$db"' EXIT
"$bin/ps_model" dump "$a" >"$da"
"$bin/ps_model" dump "$b" >"$db"
[ -s "$da" ] || { echo "same_model: $a is empty" >&2; exit 1; }
if ! cmp -s "$da" "$db"; then
  diff "$da" "$db" | head -10 >&2
  exit 1
fi
echo "$(wc -l <"$da") rows"
