"""Every path inside a run folder, in one place.

A run folder (``output_dir`` of ``automl fit``) holds, relative to its root::

    config.yaml                     the resolved config, secrets masked
    summary.json                    problem, metric, best trial, scores, column types
    leaderboard.csv                 one row per trial
    model.skops                     the chosen model (skops; model.pkl in runs of earlier releases)
    manifest.json                   sha256 and size of every file, checked before a model loads
    run_state.json                  the run's id and wall time so far (resume=true)
    history.json                    each attempt that published: first fit, crash resume, continuation
    report.html                     the run's report
    bias.json                       bias metrics of the explain.facet column (automl/rundir/bias.py)
    data_exploration.ipynb          notebooks that recompute the report from the files here
    candidate_definitions.ipynb
    data/train.parquet              the exact training rows, target included
    candidates/<name>.yaml          every candidate, rerunnable as edited (candidates_dir=)
    trials/<id>/result.json         one finished trial (resume=true)
    trials/<id>/oof.npy             its out-of-fold predictions (ensembles, report)
    trials/<id>/fold_models.skops   holdout splits: the best trial's fitted fold model (the refit's fallback)
    models/<id>.skops               other trials' models, refit on demand and cached
    baseline/statistics.json        the training data's statistics and constraints (automl monitor)
    baseline/constraints.json
    baseline/attributions.json      mean |SHAP| per feature of the final model on training rows
    monitoring/<timestamp>/         what `automl monitor` writes when no output= is given
    logs/ray.log                    Ray's own messages during the search (kept off the terminal)

Paths are relative, with ``/`` separators, because a run folder may be any fsspec URL; join them to
the run folder's URL with ``automl.artifacts.join``. This module imports nothing from automl, so
any layer may ask it.
"""
from __future__ import annotations

CONFIG_FILE = "config.yaml"
SUMMARY_FILE = "summary.json"
LEADERBOARD_FILE = "leaderboard.csv"
MODEL_FILE = "model.skops"  # see automl/rundir/modelfile.py
LEGACY_MODEL_FILE = "model.pkl"  # earlier releases, and custom algorithms: loads only with allow_pickle=true
MANIFEST_FILE = "manifest.json"
STATE_FILE = "run_state.json"
HISTORY_FILE = "history.json"  # the run's attempts (search/resume.py)
REPORT_FILE = "report.html"
BIAS_FILE = "bias.json"  # CI, DPL and DPPL of the explain.facet column (automl/rundir/bias.py, docs/bias.md)
EXPLORATION_NOTEBOOK = "data_exploration.ipynb"
CANDIDATES_NOTEBOOK = "candidate_definitions.ipynb"

DATA_DIR = "data"
TRAIN_DATA_FILE = f"{DATA_DIR}/train.parquet"
CANDIDATES_DIR = "candidates"
TRIALS_DIR = "trials"
TRIAL_RESULT_FILE = "result.json"
TRIAL_OOF_FILE = "oof.npy"
MODELS_DIR = "models"
BASELINE_DIR = "baseline"
STATISTICS_FILE = f"{BASELINE_DIR}/statistics.json"
CONSTRAINTS_FILE = f"{BASELINE_DIR}/constraints.json"
ATTRIBUTIONS_FILE = f"{BASELINE_DIR}/attributions.json"  # mean |SHAP| per feature on training rows
MONITORING_DIR = "monitoring"
LOGS_DIR = "logs"
RAY_LOG_FILE = f"{LOGS_DIR}/ray.log"  # Ray's own messages during the search (stages/search.py, raystart.py)

# Data-capture files of `automl serve`, read by `automl monitor` (they live at capture.destination,
# not in the run folder): capture-<YYYYmmddTHHMMSS>-<pid>-<seq>.jsonl
CAPTURE_PREFIX = "capture-"
CAPTURE_SUFFIX = ".jsonl"


def candidate_file(name: str) -> str:
    """``candidates/<name>.yaml``: one candidate as YAML."""
    return f"{CANDIDATES_DIR}/{name}.yaml"


def trial_dir(trial_id: object) -> str:
    """``trials/<id>``: the files of one trial."""
    return f"{TRIALS_DIR}/{trial_id}"


def trial_result_file(trial_id: object) -> str:
    """``trials/<id>/result.json``: one finished trial's record."""
    return f"{trial_dir(trial_id)}/{TRIAL_RESULT_FILE}"


def trial_oof_file(trial_id: object) -> str:
    """``trials/<id>/oof.npy``: one trial's out-of-fold predictions."""
    return f"{trial_dir(trial_id)}/{TRIAL_OOF_FILE}"


def trial_fold_models_file(trial_id: object, suffix: str = ".skops") -> str:
    """``trials/<id>/fold_models.skops``: a holdout trial's fitted fold model, kept for the best trial
    so far (the select stage's fallback when a refit on all rows would not fit the clock; ``.pkl``
    for a custom algorithm's, rundir/foldmodels.py)."""
    return f"{trial_dir(trial_id)}/fold_models{suffix}"


def trial_model_file(trial_id: object, suffix: str = ".skops") -> str:
    """``models/<id>.skops``: a non-best trial's model, refit on demand and cached (``.pkl``: a
    pickle of an earlier release)."""
    return f"{MODELS_DIR}/{trial_id}{suffix}"


def capture_file_name(stamp: str, pid: int, seq: int) -> str:
    """``capture-<stamp>-<pid>-<seq>.jsonl``: one data-capture file of an endpoint."""
    return f"{CAPTURE_PREFIX}{stamp}-{pid}-{seq:06d}{CAPTURE_SUFFIX}"


def is_capture_file_name(name: str) -> bool:
    """Whether a file's base name is a data-capture file's."""
    return name.startswith(CAPTURE_PREFIX) and name.endswith(CAPTURE_SUFFIX)
