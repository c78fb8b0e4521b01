#!/usr/bin/env bash
# Install the peer systems (FLAML, AutoGluon) for benchmarks/run_peers.py in a SEPARATE
# virtual environment: they are never dependencies of automl.
#
#     bash benchmarks/peers_setup.sh [VENV]          # default VENV: /work/peers-venv
#     WITH_TORCH=1 bash benchmarks/peers_setup.sh    # also AutoGluon's torch models (NN_TORCH, FASTAI)
#
# Without torch, AutoGluon skips its two neural-network models and logs that; everything else in
# its default and best_quality presets (LightGBM, CatBoost, XGBoost, random/extra trees, KNN,
# linear models, weighted ensemble, bagging and stacking) runs. The `ray` extra is AutoGluon's own
# recommendation: best_quality fits its bagged folds in parallel and memory-safe through it. WITH_TORCH=1 installs the CPU
# build torch==2.13.0 from the machine's local wheel cache (no multi-GB CUDA download).
# The versions are those of the reference figures in ../shared/benchmarks/peers_*_60.jsonl.
set -euo pipefail
VENV="${1:-/work/peers-venv}"
python3 -m venv --clear "$VENV"
"$VENV/bin/pip" install --quiet --upgrade pip
if [[ "${WITH_TORCH:-0}" == "1" ]]; then
    "$VENV/bin/pip" install --quiet "torch==2.13.0"
    extras="lightgbm,catboost,xgboost,ray,fastai"
else
    extras="lightgbm,catboost,xgboost,ray"
fi
# flaml[automl] would add the `xgboost` distribution (<3, with 0.5 GB of CUDA NCCL) while AutoGluon
# takes `xgboost-cpu`: both write the same `xgboost` module. So FLAML's automl extra is spelled out
# with one xgboost-cpu that satisfies both (FLAML: xgboost < 3; AutoGluon: >= 2.1.1).
"$VENV/bin/pip" install --quiet "flaml>=2.7" lightgbm scikit-learn "xgboost-cpu>=2.1.1,<3" \
    "autogluon.tabular[$extras]==1.6.3" psutil pyyaml
"$VENV/bin/python" -c "import flaml, xgboost, autogluon.tabular as ag; print('flaml', flaml.__version__, 'autogluon', ag.__version__, 'xgboost', xgboost.__version__)"
du -sh "$VENV"
