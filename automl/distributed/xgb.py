"""XGBoost as a Ray Train job: each worker reads its shard of the training and validation rows,
turns them into a matrix with the trial's processing (fitted on the sample), and trains one
model together with the others through XGBoost's collective (Ray's XGBoost trainer sets it up).
Rank 0 checkpoints the booster; every worker says on which node it ran."""
from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import pandas as pd

from automl.candidates.estimators import signed_log
from automl.distributed.dataset import plain_frame

log = logging.getLogger(__name__)
PATIENCE = 20  # rounds without improvement on the validation rows before a trial stops
BATCH_ROWS = 65_536
BOOSTER_FILE = "model.ubj"
_RENAME = {"learning_rate": "eta", "reg_lambda": "lambda", "reg_alpha": "alpha", "random_state": "seed"}


@dataclass
class ShardSpec:
    """How a worker turns a batch of rows into XGBoost's matrix (pickled to every worker)."""

    pre: Any  # the fitted processing steps (a scikit-learn Pipeline), or None
    features: List[str]
    target: str
    classes: List[Any]  # classification: the labels in code order; [] for regression
    target_transform: str = "none"  # regression: log trains on the signed log1p of the target

    def matrix(self, batch: pd.DataFrame) -> Tuple[Any, np.ndarray]:
        batch = plain_frame(batch)
        X = batch[self.features]
        X = self.pre.transform(X) if self.pre is not None else X.to_numpy(dtype=np.float32)
        if self.classes:
            codes = {c: i for i, c in enumerate(self.classes)}
            y = batch[self.target].map(codes).to_numpy(dtype=np.float32)
        else:
            y = pd.to_numeric(batch[self.target], errors="coerce").to_numpy(dtype=float)
            y = (signed_log(y) if self.target_transform == "log" else y).astype(np.float32)
        return X, y


def booster_params(model_params: Dict[str, Any], problem_type: str, n_classes: int, seed: int,
                   max_rounds: int, nthread: int = 1) -> Tuple[Dict[str, Any], int]:
    """xgboost.train's parameters and rounds from the search space's ``model.*`` values."""
    params: Dict[str, Any] = {"tree_method": "hist", "seed": seed, "nthread": nthread, "verbosity": 0}
    rounds = max_rounds
    for k, v in model_params.items():
        if k == "n_estimators":
            rounds = min(int(v), max_rounds)
        elif k not in ("n_jobs", "verbosity"):
            params[_RENAME.get(k, k)] = v
    if problem_type == "regression":
        params.update(objective="reg:squarederror", eval_metric="rmse")
    elif problem_type == "binary":
        params.update(objective="binary:logistic", eval_metric="logloss")
    else:
        params.update(objective="multi:softprob", num_class=n_classes, eval_metric="mlogloss")
    return params, rounds


def shard_matrix(shard, spec: ShardSpec) -> Tuple[Any, np.ndarray]:
    """This worker's shard as one matrix (dense, or sparse when the processing makes it so)."""
    import scipy.sparse as sp

    parts, labels = [], []
    for batch in shard.iter_batches(batch_size=BATCH_ROWS, batch_format="pandas"):
        X, y = spec.matrix(batch)
        parts.append(X)
        labels.append(y)
    if not parts:
        return np.zeros((0, len(spec.features)), dtype=np.float32), np.zeros(0, dtype=np.float32)
    if any(sp.issparse(p) for p in parts):
        return sp.vstack([sp.csr_matrix(p) for p in parts]).tocsr(), np.concatenate(labels)
    return np.vstack([np.asarray(p, dtype=np.float32) for p in parts]), np.concatenate(labels)


def _gather_nodes() -> Tuple[List[str], List[str]]:
    """(node ids, IPs) of every worker, in rank order, through XGBoost's collective."""
    import ray
    from xgboost import collective

    ctx = ray.train.get_context()
    rank, size = ctx.get_world_rank(), ctx.get_world_size()
    node = ray.get_runtime_context().get_node_id()
    ip = ray.util.get_node_ip_address()
    width = 64
    mine = np.zeros((size, width), dtype=np.float64)
    raw = (node + "|" + ip).encode()[:width]
    mine[rank, :len(raw)] = np.frombuffer(raw, dtype=np.uint8)
    every = collective.allreduce(mine.ravel(), collective.Op.SUM).reshape(size, width) if size > 1 else mine
    ids, ips = [], []
    for row in every:
        text = bytes(int(v) for v in row if v > 0).decode(errors="replace")
        node_id, _, node_ip = text.partition("|")
        ids.append(node_id)
        ips.append(node_ip)
    return ids, ips


def _allreduce_sum(value: float) -> float:
    from xgboost import collective

    if collective.get_world_size() <= 1:
        return value
    return float(collective.allreduce(np.array([value], dtype=np.float64), collective.Op.SUM)[0])


def train_per_worker(config: Dict[str, Any]) -> None:
    """One Ray Train worker: its shards, then xgboost.train with the others; rank 0 checkpoints."""
    import ray.train
    import xgboost as xgb

    spec: ShardSpec = config["spec"]
    X, y = shard_matrix(ray.train.get_dataset_shard("train"), spec)
    Xv, yv = shard_matrix(ray.train.get_dataset_shard("valid"), spec)
    dtrain, dvalid = xgb.DMatrix(X, label=y), xgb.DMatrix(Xv, label=yv)
    booster = xgb.train(config["params"], dtrain, num_boost_round=config["rounds"], evals=[(dvalid, "valid")],
                        early_stopping_rounds=PATIENCE, verbose_eval=False)
    rows = _allreduce_sum(float(len(y)))
    ids, ips = _gather_nodes()
    metrics = {"best_iteration": int(getattr(booster, "best_iteration", config["rounds"] - 1)),
               "train_rows": int(rows), "node_ids": ",".join(ids), "node_ips": ",".join(ips)}
    report_booster(booster, metrics, ray.train.get_context().get_world_rank(), BOOSTER_FILE)


def report_booster(booster: Any, metrics: Dict[str, Any], rank: int, filename: str) -> None:
    """End a Train worker's loop: rank 0 reports ``metrics`` with ``booster`` saved as ``filename`` in
    a checkpoint (XGBoost's or LightGBM's ``save_model``), the other ranks the metrics alone."""
    import ray.train

    if rank == 0:
        with tempfile.TemporaryDirectory() as tmp:
            booster.save_model(os.path.join(tmp, filename))
            ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(tmp))
    else:
        ray.train.report(metrics)


def train_booster(train_ds, valid_ds, spec: ShardSpec, params: Dict[str, Any], rounds: int, num_workers: int,
                  cpus_per_worker: float, storage: Tuple[str, Any], name: str):
    """Run the Train job; returns (booster, metrics of rank 0). ``storage``: (path, pyarrow
    filesystem or None) where the checkpoint goes."""
    import ray.train
    import xgboost as xgb
    from ray.train.xgboost import XGBoostTrainer

    path, filesystem = storage
    trainer = XGBoostTrainer(
        train_per_worker, train_loop_config={"spec": spec, "params": params, "rounds": rounds},
        datasets={"train": train_ds, "valid": valid_ds},
        scaling_config=ray.train.ScalingConfig(num_workers=num_workers, resources_per_worker={"CPU": cpus_per_worker},
                                               placement_strategy="SPREAD"),  # across nodes where there are several
        run_config=ray.train.RunConfig(name=name, storage_path=path, storage_filesystem=filesystem,
                                       failure_config=ray.train.FailureConfig(max_failures=0)),
    )
    result = trainer.fit()
    if result.error:
        raise result.error
    with result.checkpoint.as_directory() as folder:
        booster = xgb.Booster(model_file=os.path.join(folder, BOOSTER_FILE))
    return booster, dict(result.metrics or {})


def as_estimator(booster, problem_type: str, params: Dict[str, Any], n_classes: int):
    """The booster inside XGBoost's scikit-learn estimator, as the single-machine mode saves it."""
    import xgboost as xgb

    raw = bytearray(booster.save_raw("ubj"))
    est = xgb.XGBRegressor(**params) if problem_type == "regression" else xgb.XGBClassifier(**params)
    est.load_model(raw)
    if problem_type != "regression" and getattr(est, "n_classes_", None) != n_classes:
        est.n_classes_ = n_classes  # classes_ follows from it
    return est


def sklearn_params(model_params: Dict[str, Any], seed: int, best_iteration: Optional[int]) -> Dict[str, Any]:
    """The estimator's own parameters (as single-machine trials record them), rounds as trained."""
    out = dict(tree_method="hist", n_jobs=1, random_state=seed, verbosity=0)
    out.update(model_params)
    if best_iteration is not None:
        out["n_estimators"] = int(best_iteration) + 1
    return out
