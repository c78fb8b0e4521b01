"""One trial of the distributed search (a Tune function trainable): XGBoost or LightGBM as a Ray Train job
over the training rows, any other candidate on the stratified training sample in this worker.
Either way the model is scored on the validation rows in the dataset (Ray Data tasks predict
them; only the labels and predictions reach the trial), and saved to the run folder as an
ordinary automl model (``models/<trial_id>.skops``) that predicts without Ray."""
from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.pipeline import Pipeline

from automl import artifacts as art
from automl.candidates.estimators import TargetTransformRegressor
from automl.candidates.generate import Candidate
from automl.candidates.pipeline import build_pipeline, predict_matrix
from automl.candidates.space import params_of, split_params
from automl.distributed.dataset import DATA_TASK_CPUS, plain_frame
from automl.distributed import lgbm, xgb
from automl.distributed.xgb import ShardSpec
from automl.metrics import get_metric, score_all, worst_value
from automl.model import ModelBundle
from automl.problem import ProblemInfo
from automl.rundir.layout import trial_model_file
from automl.rundir.modelfile import model_bytes

log = logging.getLogger(__name__)
DISTRIBUTED_ALGORITHMS = ("xgboost", "lightgbm")  # trained as Ray Train jobs; the others on the sample
PREDICT_BATCH_ROWS = 65_536


@dataclass
class DistJob:
    """What every trial reads (through Ray's object store)."""

    train: Any  # Ray Datasets: training and validation rows
    valid: Any
    sample: pd.DataFrame  # the stratified training sample (processing is fitted on it)
    y_sample: np.ndarray  # its encoded target
    candidates: Dict[str, Candidate]
    info: ProblemInfo
    features: List[str]
    feature_types: Dict[str, str]
    target: str
    seed: int
    num_workers: int
    cpus_per_worker: float
    max_rounds: int
    output_dir: str
    storage_options: Dict[str, Any] = field(default_factory=dict)
    train_storage: Tuple[str, Any] = ("", None)  # where Train jobs checkpoint (path, pyarrow filesystem)

    @property
    def n_classes(self) -> int:
        return len(self.info.classes)

    def bundle(self, pipeline: Pipeline, trial_id: str, candidate: str) -> ModelBundle:
        info = self.info
        return ModelBundle(pipeline=pipeline, problem_type=info.problem_type, target=self.target,
                           feature_columns=list(self.features), column_types=dict(self.feature_types),
                           classes=list(info.classes), positive_class=info.positive_class, trial_id=str(trial_id),
                           candidate=candidate, metadata={"scale": "distributed"})


def _predict_batch(batch: pd.DataFrame, model: Pipeline, features: List[str], target: str, classes: List[Any],
                   problem_type: str) -> pd.DataFrame:
    batch = plain_frame(batch)
    pred = predict_matrix(model, batch[features], problem_type, len(classes))
    if classes:
        y = batch[target].map({c: i for i, c in enumerate(classes)}).to_numpy(dtype=float)
    else:
        y = pd.to_numeric(batch[target], errors="coerce").to_numpy(dtype=float)
    cols = {"y": y}
    if pred.ndim == 1:
        cols["p"] = pred
    else:
        cols.update({f"p{i}": pred[:, i] for i in range(pred.shape[1])})
    return pd.DataFrame(cols)


def holdout_predictions(valid, model: Pipeline, job: DistJob) -> Tuple[np.ndarray, np.ndarray]:
    """(labels, predictions) of the validation rows, predicted by Ray Data tasks."""
    preds = valid.map_batches(_predict_batch, batch_size=PREDICT_BATCH_ROWS, batch_format="pandas",
                              num_cpus=DATA_TASK_CPUS,
                              fn_kwargs={"model": model, "features": job.features, "target": job.target,
                                         "classes": job.info.classes, "problem_type": job.info.problem_type})
    frame = preds.to_pandas()
    y = frame.pop("y").to_numpy()
    pred = frame.to_numpy(dtype=float)
    if pred.shape[1] == 1:
        return y, pred[:, 0]
    return y, pred / pred.sum(axis=1, keepdims=True)  # XGBoost's float32 rows sum to 1 only within 1e-7


def fit_processing(cand: Candidate, params: Dict[str, Any], job: DistJob) -> Tuple[Optional[Pipeline], Dict[str, Any]]:
    """The candidate's processing steps fitted on the sample (None without any), and its model parameters."""
    pipe = build_pipeline(cand, params, job.feature_types, job.info.problem_type, job.seed)
    model_params, _ = split_params({**cand.space.get("fixed", {}), **params})
    steps = pipe.steps[:-1]
    if not steps:
        return None, model_params
    pre = Pipeline(steps).fit(job.sample[job.features], job.y_sample)
    return pre, model_params


def target_transform_of(cand: Candidate, params: Dict[str, Any], problem_type: str) -> str:
    """The trial's preprocess.target_transform (regression; ``none`` otherwise)."""
    if problem_type != "regression":
        return "none"
    merged = {**cand.space.get("fixed", {}), **params}  # as build_pipeline reads it
    value = merged.get("preprocess.target_transform", cand.processing.get("target_transform", "none"))
    return str(value or "none")


def with_target_transform(est: Any, transform: str) -> Any:
    """The Train job's estimator (fitted on the transformed target) inside the regressor that
    inverts its predictions, as a single-machine trial's pipeline holds it."""
    if transform == "none":
        return est
    wrapped = TargetTransformRegressor(clone(est), transform=transform)
    wrapped.regressor_, wrapped.scale_ = est, None  # fitted: the Train job trained it on the transformed target
    return wrapped


def fit_distributed(cand: Candidate, params: Dict[str, Any], job: DistJob,
                    trial_id: str) -> Tuple[Pipeline, Dict[str, Any]]:
    """XGBoost or LightGBM over all training rows as a Ray Train job of ``job.num_workers`` workers."""
    pre, model_params = fit_processing(cand, params, job)
    info = job.info
    transform = target_transform_of(cand, params, info.problem_type)
    spec = ShardSpec(pre, job.features, job.target, list(info.classes), transform)
    if cand.algorithm == "lightgbm":
        est, metrics, trained = _train_lightgbm(pre, model_params, spec, job, trial_id)
    else:
        xparams, rounds = xgb.booster_params(model_params, info.problem_type, job.n_classes, job.seed, job.max_rounds)
        booster, metrics = xgb.train_booster(job.train, job.valid, spec, xparams, rounds, job.num_workers,
                                             job.cpus_per_worker, job.train_storage, f"trial-{trial_id}")
        # the estimator's parameters with the rounds early stopping kept
        trained = xgb.sklearn_params(model_params, job.seed, metrics.get("best_iteration"))
        est = xgb.as_estimator(booster, info.problem_type, trained, job.n_classes)
    model = with_target_transform(est, transform)
    pipeline = Pipeline((pre.steps if pre is not None else []) + [("model", model)])
    extra = {"train_rows": metrics.get("train_rows"), "workers": job.num_workers, "trained_as": "ray_train",
             "node_ids": metrics.get("node_ids", ""), "node_ips": metrics.get("node_ips", ""),
             "refit_params": trained}
    return pipeline, extra


def _train_lightgbm(pre: Optional[Pipeline], model_params: Dict[str, Any], spec: ShardSpec, job: DistJob,
                    trial_id: str) -> Tuple[Any, Dict[str, Any], Dict[str, Any]]:
    """The LightGBM Train job; (its booster in LightGBM's estimator, the job's metrics, the estimator's parameters)."""
    info = job.info
    lparams, rounds = lgbm.booster_params(model_params, info.problem_type, job.n_classes, job.seed, job.max_rounds)
    booster, metrics = lgbm.train_booster(job.train, job.valid, spec, lparams, rounds, job.num_workers,
                                          job.cpus_per_worker, job.train_storage, f"trial-{trial_id}")
    trained = lgbm.sklearn_params(model_params, job.seed, metrics.get("best_iteration"))
    rows = lgbm.small_rows(job.y_sample, info.problem_type)
    X_small, y_small = spec.matrix(job.sample.iloc[rows])  # processed, and the target as the job trained on it
    est = lgbm.as_estimator(booster, info.problem_type, trained, X_small, y_small)
    return est, metrics, trained


def fit_on_sample(cand: Candidate, params: Dict[str, Any], job: DistJob) -> Tuple[Pipeline, Dict[str, Any]]:
    """Any other candidate: fitted on the stratified training sample, in this worker."""
    pipe = build_pipeline(cand, params, job.feature_types, job.info.problem_type, job.seed)
    pipe.fit(job.sample[job.features], job.y_sample)
    return pipe, {"train_rows": int(len(job.sample)), "workers": 1, "trained_as": "sample"}


def _here() -> Dict[str, str]:
    import ray

    try:
        return {"node_ids": ray.get_runtime_context().get_node_id(), "node_ips": ray.util.get_node_ip_address()}
    except Exception:  # outside Ray
        return {"node_ids": "", "node_ips": ""}


def evaluate(config: Dict[str, Any], job: DistJob, trial_id: str) -> Dict[str, Any]:
    """Fit, score on the validation rows and save one trial; a failure is a failed trial's row."""
    cand = job.candidates[config["candidate"]]
    params = params_of(config, cand.name)
    info, started = job.info, time.time()
    row: Dict[str, Any] = {"candidate": cand.name, "params_json": json.dumps(params, default=str)}
    try:
        if cand.algorithm in DISTRIBUTED_ALGORITHMS:
            model, extra = fit_distributed(cand, params, job, trial_id)
        else:
            model, extra = fit_on_sample(cand, params, job)
            extra.update(_here())
        fit_s = time.time() - started
        y, pred = holdout_predictions(job.valid, model, job)
        metrics = score_all(info.problem_type, y, pred, info.pos_index)
        row.update({f"metric_{k}": float(v) for k, v in metrics.items()})
        suffix, data = model_bytes(job.bundle(model, trial_id, cand.name))
        art.write_bytes(art.join(job.output_dir, trial_model_file(trial_id, suffix)), data, job.storage_options)
        refit = extra.pop("refit_params", None) or params
        row.update({"status": "completed", "objective": float(metrics[info.metric]), "fit_s": fit_s,
                    "model_size_bytes": len(data), "validation_rows": int(len(y)),
                    "refit_params_json": json.dumps(refit, default=str), **extra})
    except Exception as exc:  # one bad trial never sinks the run
        text = str(exc).strip().splitlines()
        row.update({"status": "failed", "error": f"{type(exc).__name__}: {text[0] if text else ''}"[:500],
                    "objective": worst_value(get_metric(info.metric, info.problem_type)),
                    "fit_s": time.time() - started, **_here()})
    row["node_ip"], row["node_id"] = row.get("node_ips", ""), row.get("node_ids", "")
    return row


def run_trial(config: Dict[str, Any], job: Optional[DistJob] = None) -> None:
    """The Tune trainable: one trial, reported once."""
    from ray import tune

    tune.report(evaluate(config, job, tune.get_context().get_trial_id()))
