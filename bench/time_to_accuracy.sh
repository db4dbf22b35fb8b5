#!/usr/bin/env bash
# Time to accuracy: the Fashion-MNIST MLP (examples/fashion_mnist_mlp.yaml,
# 2 servers + 2 workers on this machine) against scikit-learn's
# MLPClassifier(128, batch 128, adam) on the same split, in the same run, on
# the same cores. Prints, for each, the wall time of training (evaluation of
# the test set after every epoch included, start-up excluded) until its test
# accuracy first reaches each target.
#
#   bench/time_to_accuracy.sh [--build DIR] [--out DIR] [--epochs N] [--targets "0.87 0.88"]
#                             [--set section.field=value ...]   (passed to ps_launch)
#
# scikit-learn runs when Debian's python3-sklearn is installed (with
# libopenblas0-pthread it uses OpenBLAS); without it only our figures print.
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD=build
OUT=out/time_to_accuracy
EPOCHS=15
TARGETS="0.87 0.88"
SETS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --build) BUILD=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --epochs) EPOCHS=$2; shift 2 ;;
    --targets) TARGETS=$2; shift 2 ;;
    --set) SETS+=(--set "$2"); shift 2 ;;
    *) echo "time_to_accuracy.sh: unknown argument '$1'" >&2; exit 2 ;;
  esac
done
DATA=/usr/share/datasets/fashion-mnist
for f in train-images-idx3-ubyte.gz train-labels-idx1-ubyte.gz t10k-images-idx3-ubyte.gz t10k-labels-idx1-ubyte.gz; do
  [ -r "$DATA/$f" ] || { echo "time_to_accuracy.sh: $DATA/$f is missing (apt-get install dataset-fashion-mnist)" >&2; exit 1; }
done
[ -x "$BUILD/bin/ps_launch" ] || { echo "time_to_accuracy.sh: $BUILD/bin/ps_launch not built (deploy/setup.sh)" >&2; exit 1; }
mkdir -p "$OUT"
rm -rf "$OUT/ours"

# Each line: NAME EPOCH SECONDS ACCURACY (one per epoch).
curves="$OUT/curves.txt"
: > "$curves"

echo "time_to_accuracy: ours (examples/fashion_mnist_mlp.yaml, $EPOCHS epochs)..." >&2
"$BUILD/bin/ps_launch" --config examples/fashion_mnist_mlp.yaml \
  --set "job.output_dir=$PWD/$OUT/ours" --set "train.epochs=$EPOCHS" "${SETS[@]}" \
  > "$OUT/ours.log" 2>&1 || { tail -20 "$OUT/ours.log" >&2; exit 1; }
/usr/bin/python3 - "$OUT/ours/metrics.json" >> "$curves" <<'EOF'
import json, sys
for e in json.load(open(sys.argv[1]))["history"]:
    print("ours", e["epoch"], e["seconds"], e["test"]["accuracy"])
EOF

if /usr/bin/python3 -c 'import sklearn' 2>/dev/null; then
  echo "time_to_accuracy: scikit-learn MLPClassifier (same split, $EPOCHS epochs)..." >&2
  /usr/bin/python3 - "$DATA" "$EPOCHS" >> "$curves" <<'EOF'
import gzip, sys, time
import numpy as np
from sklearn.neural_network import MLPClassifier

data, epochs = sys.argv[1], int(sys.argv[2])

def images(name):
    with gzip.open(f"{data}/{name}") as f:
        raw = f.read()
    return np.frombuffer(raw, np.uint8, offset=16).reshape(-1, 784).astype(np.float32) / 255.0

def labels(name):
    with gzip.open(f"{data}/{name}") as f:
        return np.frombuffer(f.read(), np.uint8, offset=8).astype(np.int64)

x, y = images("train-images-idx3-ubyte.gz"), labels("train-labels-idx1-ubyte.gz")
xt, yt = images("t10k-images-idx3-ubyte.gz"), labels("t10k-labels-idx1-ubyte.gz")
# Like the example: one hidden layer of 128 ReLU units, Adam at 0.001, a
# global batch of 128 (2 workers x 64), no weight decay.
clf = MLPClassifier(hidden_layer_sizes=(128,), activation="relu", solver="adam",
                    learning_rate_init=0.001, batch_size=128, alpha=0.0, random_state=42)
classes = np.arange(10)
rng = np.random.default_rng(42)
elapsed = 0.0
for epoch in range(1, epochs + 1):
    order = rng.permutation(len(x))
    start = time.perf_counter()
    clf.partial_fit(x[order], y[order], classes=classes)
    accuracy = float((clf.predict(xt) == yt).mean())
    elapsed += time.perf_counter() - start
    print("sklearn", epoch, round(elapsed, 3), accuracy, flush=True)
EOF
else
  echo "time_to_accuracy: python3-sklearn is not installed: scikit-learn's figures are left out" \
       "(apt-get install python3-sklearn libopenblas0-pthread)" >&2
fi

/usr/bin/python3 - "$curves" $TARGETS <<'EOF'
import sys
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
targets = [float(t) for t in sys.argv[2:]]
names = [n for n in ("ours", "sklearn") if any(r[0] == n for r in rows)]
first = {}
for name in names:
    curve = [(int(e), float(s), float(a)) for n, e, s, a in rows if n == name]
    for t in targets:
        hit = next(((e, s) for e, s, a in curve if a >= t), None)
        first[(name, t)] = hit
    best = max(a for _, _, a in curve)
    print(f"{name:8} best test accuracy {best:.4f} over {len(curve)} epochs, "
          f"{curve[-1][1]:.1f} s in all")
print()
print("target | " + " | ".join(f"{n} (s, epoch)" for n in names) +
      (" | ours / sklearn" if len(names) == 2 else ""))
for t in targets:
    cells = []
    for n in names:
        hit = first[(n, t)]
        cells.append("not reached" if hit is None else f"{hit[1]:.1f} s (epoch {hit[0]})")
    ratio = ""
    if len(names) == 2:
        a, b = first[("ours", t)], first[("sklearn", t)]
        ratio = " | " + (f"{a[1] / b[1]:.2f}" if a and b else "-")
    print(f"{t:.2f}   | " + " | ".join(cells) + ratio)
EOF
