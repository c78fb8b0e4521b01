#!/bin/bash
# Two commits of automl side by side on the suite, interleaved per dataset (order alternating), so
# both see the same machine: `bash benchmarks/paired_trees.sh OLD NEW [BUDGET] [SEED]`.
# Each commit is exported with `git archive` to a temporary tree (this checkout's harness copied in)
# and run with PYTHONPATH pointing at it; results go to benchmarks/results/tmp/paired-<commit>.jsonl.
# Used for issue 15's before/after table (8524f5e vs 85de849, 60 s, seed 0).
set -euo pipefail
OLD=$1; NEW=$2; BUDGET=${3:-60}; SEED=${4:-0}
HERE=$(cd "$(dirname "$0")/.." && pwd)
PY=${PYTHON:-$HERE/.venv/bin/python}
SUITE=${SUITE:-$HERE/../shared/benchmarks}
OUT=$HERE/benchmarks/results/tmp
mkdir -p "$OUT"
for c in "$OLD" "$NEW"; do
  rm -rf "/tmp/automl-tree-$c" && mkdir -p "/tmp/automl-tree-$c"
  git -C "$HERE" archive "$c" | tar -x -C "/tmp/automl-tree-$c"
  rm -rf "/tmp/automl-tree-$c/benchmarks" && cp -r "$HERE/benchmarks" "/tmp/automl-tree-$c/"
done
DS=$(cd /tmp && "$PY" -c "import yaml; print(' '.join(yaml.safe_load(open('$SUITE/suite.yaml'))))")
i=0
for d in $DS; do
  if [ $((i % 2)) -eq 0 ]; then order="$OLD $NEW"; else order="$NEW $OLD"; fi
  for c in $order; do
    (cd /tmp && PYTHONPATH="/tmp/automl-tree-$c" "$PY" "/tmp/automl-tree-$c/benchmarks/run_suite.py" \
      --suite "$SUITE" --datasets "$d" --seeds "$SEED" --budgets "$BUDGET" \
      --out "$OUT/paired-$c.jsonl" --workdir "/tmp/automl-paired-runs/$c" --skip-done)
  done
  i=$((i + 1))
done
