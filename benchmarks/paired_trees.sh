#!/bin/bash
# Two commits of automl side by side on the suite, interleaved per dataset (order alternating), so
# both see the same machine: `bash benchmarks/paired_trees.sh OLD NEW [BUDGET] [SEED]`.
# Each commit is exported with `git archive` to a temporary tree (this checkout's harness copied in)
# and run with PYTHONPATH pointing at it; results go to benchmarks/results/tmp/paired-<name>.jsonl.
# OLD or NEW may also be a directory holding a source tree (e.g. a commit plus an uncommitted
# change), used as it is; DATASETS="a b" restricts the run to those datasets.
# Used for issue 15's before/after table (8524f5e vs 85de849, 60 s, seed 0).
set -euo pipefail
OLD=$1; NEW=$2; BUDGET=${3:-60}; SEED=${4:-0}
HERE=$(cd "$(dirname "$0")/.." && pwd)
PY=${PYTHON:-$HERE/.venv/bin/python}
SUITE=${SUITE:-$HERE/../shared/benchmarks}
OUT=$HERE/benchmarks/results/tmp
mkdir -p "$OUT"
declare -A TREE
for c in "$OLD" "$NEW"; do
  if [ -d "$c" ]; then TREE[$c]=$(cd "$c" && pwd); continue; fi
  TREE[$c]=/tmp/automl-tree-$c
  rm -rf "${TREE[$c]}" && mkdir -p "${TREE[$c]}"
  git -C "$HERE" archive "$c" | tar -x -C "${TREE[$c]}"
  rm -rf "${TREE[$c]}/benchmarks" && cp -r "$HERE/benchmarks" "${TREE[$c]}/"
done
DS=${DATASETS:-$(cd /tmp && "$PY" -c "import yaml; print(' '.join(yaml.safe_load(open('$SUITE/suite.yaml'))))")}
i=0
for d in $DS; do
  if [ $((i % 2)) -eq 0 ]; then order="$OLD $NEW"; else order="$NEW $OLD"; fi
  for c in $order; do
    name=$(basename "$c")
    (cd /tmp && PYTHONPATH="${TREE[$c]}" "$PY" "${TREE[$c]}/benchmarks/run_suite.py" \
      --suite "$SUITE" --datasets "$d" --seeds "$SEED" --budgets "$BUDGET" \
      --out "$OUT/paired-$name.jsonl" --workdir "/tmp/automl-paired-runs/$name" --skip-done)
  done
  i=$((i + 1))
done
