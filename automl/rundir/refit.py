"""Refit any trial of a finished run from its folder, so that any trial can be deployed.

Everything comes from the run folder: the training rows (``data/train.parquet``), the
candidate as the run used it (``candidates/<name>.yaml``), the trial's parameters (the
leaderboard's ``params_json``, or its ``model.*``/``preprocess.*`` columns in older runs) and
the seed (``config.yaml``). Each of these files is checked against ``manifest.json`` before it
is used, and the trial id must be a plain id (no path parts) before it names a file.
"""
from __future__ import annotations

import io
import json
import logging
import math
import time
from typing import TYPE_CHECKING, Any, Dict, Optional

import pandas as pd
import yaml

from automl.candidates.candidate import Candidate
from automl.data.compact import compact_features
from automl.data.weights import weights_from_record
from automl.errors import ArtifactError
from automl.rundir.manifest import add_to_manifest, check_trial_id, read_manifest, read_verified
from automl.model import ModelBundle
from automl.problem import encode_target
from automl.rundir.layout import CONFIG_FILE, SUMMARY_FILE, TRAIN_DATA_FILE, candidate_file, trial_model_file
from automl.rundir.modelfile import model_bytes
from automl.rundir.summary import parse_summary

if TYPE_CHECKING:  # pragma: no cover
    from automl.rundir.run import Run

log = logging.getLogger(__name__)

_PARAM_PREFIXES = ("model.", "preprocess.")


def load_candidate(run: "Run", name: str, manifest: Optional[Dict[str, Any]] = None) -> Candidate:
    """The candidate as the run used it (``candidates/<name>.yaml``, checked against the manifest)."""
    data = read_verified(run.run_dir, candidate_file(name), run.storage_options, manifest)
    spec = yaml.safe_load(data.decode("utf-8")) or {}
    return Candidate(name=name, algorithm=spec["algorithm"], processing=dict(spec.get("processing") or {}),
                     space=dict(spec.get("space") or {"params": {}, "fixed": {}}),
                     description=spec.get("description", ""))


def trial_params(row: pd.Series, candidate: Candidate) -> Dict[str, Any]:
    """The trial's parameters, typed: ``params_json`` if the leaderboard has it, else its columns."""
    for key in ("refit_params_json", "params_json"):  # refit_*: early-stopped rounds as fixed n_estimators
        raw = row.get(key)
        if isinstance(raw, str) and raw.strip():
            return json.loads(raw)
    specs = (candidate.space or {}).get("params", {})
    params: Dict[str, Any] = {}
    for key, value in row.items():
        if not str(key).startswith(_PARAM_PREFIXES) or key not in specs:
            continue
        if value is None or (isinstance(value, float) and math.isnan(value)):
            continue
        kind = specs[key].get("type")
        if kind == "int":
            value = int(round(float(value)))
        elif kind == "float":
            value = float(value)
        elif kind == "categorical":  # CSV turned choices into text/float; map back to the declared choice
            value = next((c for c in specs[key].get("choices", []) if str(c) == str(value)
                          or _same_number(c, value)), value)
        params[str(key)] = value
    return params


def _same_number(a: Any, b: Any) -> bool:
    try:
        return float(a) == float(b)
    except (TypeError, ValueError):
        return False


def refit_trial(run: "Run", row: pd.Series) -> ModelBundle:
    """Rebuild the trial's pipeline and fit it on all training rows, as ``automl fit`` did the best."""
    from automl.candidates.pipeline import build_pipeline

    started = time.time()
    so = run.storage_options
    manifest = read_manifest(run.run_dir, so)  # every file read below is checked against it
    trial_id, name = check_trial_id(row["trial_id"], "trial_id in leaderboard.csv"), str(row["candidate"])
    s = parse_summary(read_verified(run.run_dir, SUMMARY_FILE, so, manifest))
    if TRAIN_DATA_FILE not in manifest["files"]:
        raise ArtifactError(f"run {run.run_dir} keeps no {TRAIN_DATA_FILE}, so trial={trial_id} cannot be refit; "
                            f"rerun `automl fit` with this version, or use the best trial")
    train = pd.read_parquet(io.BytesIO(read_verified(run.run_dir, TRAIN_DATA_FILE, so, manifest)))
    candidate = load_candidate(run, name, manifest)
    params = trial_params(row, candidate)
    features, info = s.features, s.problem_info()
    column_types = {c: s.column_types[c] for c in features}
    seed = _seed(run, manifest)
    pipeline = build_pipeline(candidate, params, column_types, info.problem_type, seed)
    X = compact_features(train[features], column_types)  # the table the search and the best refit saw
    w = weights_from_record(s.get("sample_weights"), train, s.target)  # a weighted run: the same weights
    pipeline.fit(X, encode_target(train[s.target], info), **({} if w is None else {"model__sample_weight": w}))
    log.info("refit trial %s (%s) on %d rows in %.1f s", trial_id, name, len(train), time.time() - started)
    score, threshold = row.get("objective"), row.get("threshold")
    threshold = None if threshold is None or pd.isna(threshold) or info.problem_type != "binary" else float(threshold)
    return ModelBundle(pipeline=pipeline, problem_type=info.problem_type, target=s.target, feature_columns=features,
                       column_types=column_types, classes=info.classes, positive_class=info.positive_class,
                       threshold=threshold, trial_id=trial_id, candidate=name,
                       metadata={"params": params, "score": None if pd.isna(score) else float(score)})


def save_trial_model(run: "Run", trial_id: str, bundle: ModelBundle) -> str:
    """Write a refit model to ``models/<trial_id>.skops`` and add its sha256 to ``manifest.json``;
    returns its path in the run folder (``.pkl`` for a custom algorithm's model, see modelfile)."""
    suffix, data = model_bytes(bundle)
    rel = trial_model_file(check_trial_id(trial_id), suffix)
    add_to_manifest(run.run_dir, rel, data, run.storage_options)
    return rel


def _seed(run: "Run", manifest: Dict[str, Any]) -> int:
    if CONFIG_FILE not in manifest["files"]:
        return 0
    cfg = yaml.safe_load(read_verified(run.run_dir, CONFIG_FILE, run.storage_options, manifest).decode()) or {}
    return int(cfg.get("seed", 0) or 0)
