#!/bin/bash
# automl and the peers (FLAML, AutoGluon, AutoGluon best_quality) side by side on the suite,
# interleaved per dataset so that both see the same machine in the same hour:
#
#     bash benchmarks/side_by_side.sh COMMIT [BUDGET] [SEEDS] [PEER_SEEDS]
#
# COMMIT (or a directory holding a source tree) is exported with `git archive` to a frozen tree,
# so this checkout can change while the suite runs; the records name it (AUTOML_BENCH_COMMIT,
# which a directory's run should set). For each dataset of suite.yaml (or
# DATASETS="a b"): automl at every seed of SEEDS (default 0), then each peer at PEER_SEEDS
# (default 0; "" runs no peers), the order of automl and the peers alternating per dataset.
# Results: benchmarks/results/tmp/side-automl.jsonl and side-peers.jsonl (or AUTOML_OUT, PEERS_OUT),
# skipping what those files already hold, so an interrupted run resumes where it stopped.
# Then: python benchmarks/compare.py --automl <automl file> --peers <peers file> --budget BUDGET
set -euo pipefail
COMMIT=$1; BUDGET=${2:-60}; SEEDS=${3:-0}; PEER_SEEDS=${4-0}
HERE=$(cd "$(dirname "$0")/.." && pwd)
PY=${PYTHON:-$HERE/.venv/bin/python}
SUITE=${SUITE:-$HERE/../shared/benchmarks}
AUTOML_OUT=${AUTOML_OUT:-$HERE/benchmarks/results/tmp/side-automl.jsonl}
PEERS_OUT=${PEERS_OUT:-$HERE/benchmarks/results/tmp/side-peers.jsonl}
# absolute: the runs below change directory (a relative path landed under /tmp)
AUTOML_OUT=$(realpath -m "$AUTOML_OUT"); PEERS_OUT=$(realpath -m "$PEERS_OUT")
mkdir -p "$(dirname "$AUTOML_OUT")" "$(dirname "$PEERS_OUT")"
if [ -d "$COMMIT" ]; then
  TREE=$(cd "$COMMIT" && pwd)
else
  export AUTOML_BENCH_COMMIT=${AUTOML_BENCH_COMMIT:-$(git -C "$HERE" rev-parse --short "$COMMIT")}  # the tree has no git
  TREE=/tmp/automl-side-$COMMIT
  rm -rf "$TREE" && mkdir -p "$TREE"
  git -C "$HERE" archive "$COMMIT" | tar -x -C "$TREE"
  rm -rf "$TREE/benchmarks" && cp -r "$HERE/benchmarks" "$TREE/"
fi
DS=${DATASETS:-$(cd /tmp && "$PY" -c "import yaml; print(' '.join(yaml.safe_load(open('$SUITE/suite.yaml'))))")}
run_automl() {
  (cd /tmp && PYTHONPATH="$TREE" "$PY" "$TREE/benchmarks/run_suite.py" --suite "$SUITE" \
    --datasets "$1" --seeds "$SEEDS" --budgets "$BUDGET" --out "$AUTOML_OUT" \
    --workdir /tmp/automl-side-runs --skip-done)
}
run_peers() {
  [ -n "$PEER_SEEDS" ] || return 0
  "$PY" "$HERE/benchmarks/run_peers.py" --suite "$SUITE" --datasets "$1" --seeds "$PEER_SEEDS" \
    --budgets "$BUDGET" --out "$PEERS_OUT" --skip-done
}
i=0
for d in $DS; do
  if [ $((i % 2)) -eq 0 ]; then run_automl "$d"; run_peers "$d"; else run_peers "$d"; run_automl "$d"; fi
  i=$((i + 1))
done
