"""Log a finished run folder to MLflow: a parent run, a nested run per trial, a pyfunc model.

Every value comes from the run folder, each file checked against ``manifest.json``:

- the parent run: the resolved config (``config.yaml``, secrets already masked) as parameters,
  the validation and test scores as metrics, and config.yaml, summary.json, leaderboard.csv and
  report.html as artifacts;
- one nested run per trial (``leaderboard.csv``): candidate, algorithm and hyperparameters as
  parameters, every metric, time, latency and size as metrics, the status as the run's status;
- the chosen model as an MLflow pyfunc model named ``model`` (``runs:/<parent id>/model``), with
  a signature and an input example from the training rows (automl/tracking/pyfunc.py).
"""
from __future__ import annotations

import inspect
import io
import json
import logging
import math
import os
import re
import tempfile
import time
from typing import Any, Dict, Iterable, List, Optional

import pandas as pd
import yaml

from automl.rundir.layout import (CONFIG_FILE, LEADERBOARD_FILE, MODEL_FILE, REPORT_FILE, SUMMARY_FILE,
                                  TRAIN_DATA_FILE)
from automl.rundir.manifest import read_manifest, read_verified
from automl.rundir.run import Run

log = logging.getLogger(__name__)

MODEL_NAME = "model"  # the parent run's model: runs:/<parent run id>/model
# Leaderboard columns that are neither parameters nor metrics.
_NOT_METRICS = frozenset({"trial_id", "trial_number", "candidate", "algorithm", "status", "error", "node_ip",
                          "node_id", "params_json", "refit_params_json", "rerank_splits"})
_PARAM_PREFIXES = ("model.", "preprocess.")
_RUN_STATUS = {"completed": "FINISHED", "failed": "FAILED", "timeout": "FAILED"}  # stopped, pruned: KILLED
_MAX_VALUE = 6000  # MLflow's limit on a parameter or tag value
_PARAMS_PER_BATCH = 100  # MLflow's limit on parameters per log_batch call
_BAD_KEY_CHARS = re.compile(r"[^\w.\- :/]")
_ARTIFACTS = (CONFIG_FILE, SUMMARY_FILE, LEADERBOARD_FILE, REPORT_FILE)


def log_run_folder(run_dir: str, uri: Optional[str], experiment: str, so: Dict[str, Any], shown_dir: str) -> str:
    """Log the run folder ``run_dir`` (shown as ``shown_dir``); returns the parent run's id."""
    from mlflow.tracking import MlflowClient

    started = time.time()
    run = Run(run_dir, so)
    manifest = read_manifest(run_dir, so)
    client = MlflowClient(tracking_uri=uri)
    exp_id = _experiment_id(client, experiment)
    summary = run.summary
    best = summary.get("best") or {}
    tags = {"automl.run_dir": shown_dir, "automl.problem_type": str(summary.get("problem_type")),
            "automl.metric": str(summary.get("metric")), "automl.best_candidate": str(best.get("candidate"))}
    active = _active_run_id(uri)
    if active:  # a fit inside the caller's own MLflow run is nested under it
        tags["mlflow.parentRunId"] = active
    parent = client.create_run(exp_id, run_name=os.path.basename(shown_dir.rstrip("/")) or "automl", tags=tags)
    pid = parent.info.run_id
    try:
        _log_parent(client, pid, run, manifest)
        n_trials = _log_trials(client, exp_id, pid, run.leaderboard)
        model_uri = _log_model(uri, pid, run, manifest)
    except BaseException:
        client.set_terminated(pid, "FAILED")
        raise
    client.set_terminated(pid, "FINISHED")
    log.info("logged the run to MLflow in %.1f s: experiment %r, run %s with %d trial runs%s", time.time() - started,
             experiment, pid, n_trials, f"; model {model_uri}" if model_uri else "")
    return pid


def _active_run_id(uri: Optional[str]) -> Optional[str]:
    """The caller's active MLflow run on the same tracking store, if any."""
    import mlflow

    active = mlflow.active_run()
    if active is None or (uri and uri != mlflow.get_tracking_uri()):
        return None
    return active.info.run_id


def _experiment_id(client: Any, name: str) -> str:
    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    try:
        return client.create_experiment(name)
    except Exception:  # another process created it meanwhile
        found = client.get_experiment_by_name(name)
        if found is None:
            raise
        return found.experiment_id


def _batches(items: List[Any], size: int) -> Iterable[List[Any]]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


def _log_batch(client: Any, run_id: str, params: Dict[str, Any], metrics: Dict[str, float]) -> None:
    """Parameters (as text, cut to MLflow's limit) and finite metrics, in batches MLflow accepts."""
    from mlflow.entities import Metric, Param

    now = int(time.time() * 1000)
    plist = [Param(_key(k), str(v)[:_MAX_VALUE]) for k, v in params.items()]
    mlist = [Metric(_key(k), float(v), now, 0) for k, v in metrics.items() if _finite(v)]
    for chunk in _batches(plist, _PARAMS_PER_BATCH):
        client.log_batch(run_id, params=chunk)
    for chunk in _batches(mlist, 1000):
        client.log_batch(run_id, metrics=chunk)


def _key(name: Any) -> str:
    """A parameter or metric name MLflow accepts (letters, digits, ``_-. :/``; at most 250)."""
    return _BAD_KEY_CHARS.sub("_", str(name))[:250]


def _finite(value: Any) -> bool:
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def _flatten(node: Any, prefix: str = "") -> Dict[str, Any]:
    """Scalar leaves of a config as ``a.b.c`` keys (candidates aside: each trial run has its own)."""
    out: Dict[str, Any] = {}
    if isinstance(node, dict):
        for key, value in node.items():
            if not prefix and key in ("candidates", "hydra"):
                continue
            out.update(_flatten(value, f"{prefix}{key}."))
    else:
        out[prefix.rstrip(".")] = json.dumps(node) if isinstance(node, list) else node
    return out


def _log_parent(client: Any, pid: str, run: Run, manifest: Dict[str, Any]) -> None:
    so, summary = run.storage_options, run.summary
    config = yaml.safe_load(read_verified(run.run_dir, CONFIG_FILE, so, manifest).decode("utf-8")) or {}
    best = summary.get("best") or {}
    params = {**_flatten(config), "best.trial_id": best.get("trial_id"), "best.candidate": best.get("candidate")}
    metric = summary.get("metric")
    metrics: Dict[str, Any] = {f"cv_{metric}": best.get("score"), "wall_time_s": summary.get("wall_time_s"),
                               "n_trials": summary.get("n_trials"),
                               "n_trials_completed": summary.get("n_trials_completed"),
                               "n_trials_failed": summary.get("n_trials_failed")}
    metrics.update({f"test_{k}": v for k, v in (summary.get("test_metrics") or {}).items()})
    _log_batch(client, pid, params, metrics)
    with tempfile.TemporaryDirectory(prefix="automl-mlflow-") as tmp:
        for rel in _ARTIFACTS:
            if rel in manifest["files"]:
                with open(os.path.join(tmp, rel), "wb") as fh:
                    fh.write(read_verified(run.run_dir, rel, so, manifest))
        client.log_artifacts(pid, tmp)


def trial_params(row: pd.Series) -> Dict[str, Any]:
    """A leaderboard row's candidate, algorithm and hyperparameters."""
    params: Dict[str, Any] = {"candidate": row.get("candidate"), "algorithm": row.get("algorithm")}
    raw = row.get("params_json")
    if isinstance(raw, str) and raw.strip():
        params.update(json.loads(raw))
    else:  # older leaderboards: one column per hyperparameter
        params.update({k: v for k, v in row.items() if str(k).startswith(_PARAM_PREFIXES) and pd.notna(v)})
    return {k: v for k, v in params.items() if v is not None and not (isinstance(v, float) and math.isnan(v))}


def trial_metrics(row: pd.Series) -> Dict[str, float]:
    """A leaderboard row's metrics: objective, every metric, fit time, latency, size."""
    return {str(k): float(v) for k, v in row.items()
            if k not in _NOT_METRICS and not str(k).startswith(_PARAM_PREFIXES) and _finite(v)
            and not isinstance(v, (bool, str))}


def _log_trials(client: Any, exp_id: str, pid: str, leaderboard: pd.DataFrame) -> int:
    for _, row in leaderboard.iterrows():
        status = str(row.get("status"))
        tags = {"mlflow.parentRunId": pid, "automl.trial_id": str(row["trial_id"]), "automl.status": status}
        error = row.get("error")
        if isinstance(error, str) and error.strip():
            tags["automl.error"] = error[:_MAX_VALUE]
        child = client.create_run(exp_id, run_name=f"{row.get('candidate')}/{row['trial_id']}", tags=tags)
        _log_batch(client, child.info.run_id, trial_params(row), trial_metrics(row))
        client.set_terminated(child.info.run_id, _RUN_STATUS.get(status, "KILLED"))
    return len(leaderboard)


def input_example(run: Run, manifest: Dict[str, Any], features: List[str], n: int = 5) -> pd.DataFrame:
    """A few training rows, features only; integer columns as floats (a missing value is a float)."""
    raw = read_verified(run.run_dir, TRAIN_DATA_FILE, run.storage_options, manifest)
    frame = pd.read_parquet(io.BytesIO(raw), columns=features)
    complete = frame.dropna()
    rows = (complete if len(complete) else frame).head(n).reset_index(drop=True)
    ints = [c for c in rows.columns if pd.api.types.is_integer_dtype(rows[c]) and not pd.api.types.is_bool_dtype(rows[c])]
    return rows.astype({c: "float64" for c in ints})


def _log_model(uri: Optional[str], pid: str, run: Run, manifest: Dict[str, Any]) -> Optional[str]:
    """The chosen model as a pyfunc model under the parent run; returns its URI (None: not logged)."""
    import mlflow
    from mlflow.models import infer_signature

    from automl.tracking.pyfunc import MODEL_ARTIFACT, AutoMLPyfuncModel, pip_requirements

    if MODEL_FILE not in manifest["files"]:
        log.warning("not logging the model to MLflow: the run keeps no %s (a custom algorithm's pickle, or "
                    "an earlier release's model.pkl)", MODEL_FILE)
        return None
    bundle = run.model
    example = input_example(run, manifest, list(bundle.feature_columns))
    signature = infer_signature(example, bundle.predict_frame(example))
    previous = mlflow.get_tracking_uri()
    with tempfile.TemporaryDirectory(prefix="automl-mlflow-") as tmp:
        path = os.path.join(tmp, MODEL_FILE)
        with open(path, "wb") as fh:
            fh.write(read_verified(run.run_dir, MODEL_FILE, run.storage_options, manifest))
        where = "name" if "name" in inspect.signature(mlflow.pyfunc.log_model).parameters else "artifact_path"
        try:
            if uri:
                mlflow.set_tracking_uri(uri)
            with mlflow.start_run(run_id=pid, nested=True):  # nested: the caller may have a run open
                mlflow.pyfunc.log_model(**{where: MODEL_NAME}, python_model=AutoMLPyfuncModel(),
                                        artifacts={MODEL_ARTIFACT: path}, signature=signature,
                                        input_example=example, pip_requirements=pip_requirements())
        finally:
            mlflow.set_tracking_uri(previous)
    return f"runs:/{pid}/{MODEL_NAME}"
