"""LightGBM as a Ray Train job (Ray's LightGBMTrainer): each worker reads its shard of the training
rows, turns it into a matrix with the trial's processing (fitted on the sample) and trains one
model with the others through LightGBM's own network (``tree_learner=data``; Ray Train gives every
worker the machines and ports, ``ray.train.lightgbm.get_network_params``). Every worker reads all
validation rows, so each computes the same validation score and early stopping stops them in the
same round (LightGBM does not combine the workers' metrics). Rank 0 checkpoints the booster; every
worker says on which node it ran, through a small actor of the trial."""
from __future__ import annotations

import logging
import os
from typing import Any, Dict, List, Tuple

import numpy as np

from automl.distributed.xgb import PATIENCE, ShardSpec, report_booster, shard_matrix

log = logging.getLogger(__name__)
BOOSTER_FILE = "model.txt"
_RENAME = {"random_state": "seed"}  # the other scikit-learn names are LightGBM aliases
_DROP = ("n_jobs", "verbose", "verbosity", "silent", "importance_type", "class_weight")  # num_threads=1 per worker


def booster_params(model_params: Dict[str, Any], problem_type: str, n_classes: int, seed: int,
                   max_rounds: int) -> Tuple[Dict[str, Any], int]:
    """lightgbm.train's parameters and rounds from the search space's ``model.*`` values (the
    scikit-learn names LightGBM accepts as aliases; ``n_estimators`` becomes the rounds)."""
    params: Dict[str, Any] = {"seed": seed, "num_threads": 1, "verbose": -1, "tree_learner": "data"}
    rounds = max_rounds
    for k, v in model_params.items():
        if k == "n_estimators":
            rounds = min(int(v), max_rounds)
        elif k not in _DROP:
            params[_RENAME.get(k, k)] = v
    if problem_type == "regression":
        params.update(objective="regression", metric="l2")
    elif problem_type == "binary":
        params.update(objective="binary", metric="binary_logloss")
    else:
        params.update(objective="multiclass", num_class=n_classes, metric="multi_logloss")
    return params, rounds


class NodeBook:
    """A Ray actor of the trial: each worker writes its rank, node and row count."""

    def __init__(self) -> None:
        self.rows: Dict[int, Tuple[str, str, int]] = {}

    def add(self, rank: int, node: str, ip: str, n_rows: int) -> None:
        self.rows[rank] = (node, ip, n_rows)

    def read(self) -> Dict[int, Tuple[str, str, int]]:
        return dict(self.rows)


def train_per_worker(config: Dict[str, Any]) -> None:
    """One Ray Train worker: its training shard and every validation row, then lightgbm.train
    with the others; rank 0 checkpoints the booster."""
    import lightgbm as lgb
    import ray
    import ray.train
    from ray.train.lightgbm import get_network_params

    spec: ShardSpec = config["spec"]
    X, y = shard_matrix(ray.train.get_dataset_shard("train"), spec)
    Xv, yv = shard_matrix(ray.train.get_dataset_shard("valid"), spec)
    rank = ray.train.get_context().get_world_rank()
    ray.get(config["book"].add.remote(rank, ray.get_runtime_context().get_node_id(), ray.util.get_node_ip_address(),
                                      int(len(y))))
    params = {**config["params"], **get_network_params()}
    dtrain = lgb.Dataset(X, label=y, free_raw_data=True)
    dvalid = lgb.Dataset(Xv, label=yv, reference=dtrain)
    booster = lgb.train(params, dtrain, num_boost_round=config["rounds"], valid_sets=[dvalid], valid_names=["valid"],
                        callbacks=[lgb.early_stopping(PATIENCE, verbose=False)])
    metrics = {"best_iteration": int(booster.best_iteration or booster.current_iteration())}
    report_booster(booster, metrics, rank, BOOSTER_FILE)


def train_booster(train_ds, valid_ds, spec: ShardSpec, params: Dict[str, Any], rounds: int, num_workers: int,
                  cpus_per_worker: float, storage: Tuple[str, Any], name: str):
    """Run the Train job; returns (booster, metrics): best_iteration, train_rows and the workers'
    node ids and IPs in rank order. ``storage``: (path, pyarrow filesystem or None)."""
    import lightgbm as lgb
    import ray
    import ray.train
    from ray.train.lightgbm import LightGBMTrainer

    path, filesystem = storage
    book = ray.remote(num_cpus=0)(NodeBook).remote()
    try:
        trainer = LightGBMTrainer(
            train_per_worker, train_loop_config={"spec": spec, "params": params, "rounds": rounds, "book": book},
            datasets={"train": train_ds, "valid": valid_ds},
            dataset_config=ray.train.DataConfig(datasets_to_split=["train"]),  # every worker: all validation rows
            scaling_config=ray.train.ScalingConfig(num_workers=num_workers,
                                                   resources_per_worker={"CPU": cpus_per_worker},
                                                   placement_strategy="SPREAD"),
            run_config=ray.train.RunConfig(name=name, storage_path=path, storage_filesystem=filesystem,
                                           failure_config=ray.train.FailureConfig(max_failures=0)),
        )
        result = trainer.fit()
        if result.error:
            raise result.error
        workers = [v for _, v in sorted(ray.get(book.read.remote()).items())]
    finally:
        ray.kill(book)
    with result.checkpoint.as_directory() as folder:
        booster = lgb.Booster(model_file=os.path.join(folder, BOOSTER_FILE))
    metrics = dict(result.metrics or {})
    metrics.update(train_rows=sum(w[2] for w in workers), node_ids=",".join(w[0] for w in workers),
                   node_ips=",".join(w[1] for w in workers))
    return booster, metrics


def as_estimator(booster, problem_type: str, params: Dict[str, Any], X_small, y_small: np.ndarray):
    """The booster inside LightGBM's scikit-learn estimator, as the single-machine mode saves it:
    the estimator is fitted for one round on a few processed sample rows (which sets its classes
    and feature count through LightGBM's public fit), then holds the Train job's booster instead.
    ``y_small`` must hold every class code."""
    import lightgbm as lgb

    cls = lgb.LGBMRegressor if problem_type == "regression" else lgb.LGBMClassifier
    est = cls(**{**params, "n_estimators": 1}).fit(X_small, y_small)
    est._Booster = booster  # LightGBM's scikit-learn wrapper has no public setter for its booster
    est.set_params(n_estimators=int(params.get("n_estimators", booster.current_iteration())))
    return est


def sklearn_params(model_params: Dict[str, Any], seed: int, best_iteration: Any) -> Dict[str, Any]:
    """The estimator's own parameters (as single-machine trials record them), rounds as trained."""
    out: Dict[str, Any] = dict(n_jobs=1, random_state=seed, verbose=-1)
    out.update(model_params)
    if best_iteration:
        out["n_estimators"] = int(best_iteration)
    return out


def small_rows(y: np.ndarray, problem_type: str, per_class: int = 5) -> List[int]:
    """Row positions of a few sample rows: the first 200 (regression) or a few of every class."""
    if problem_type == "regression":
        return list(range(min(len(y), 200)))
    picked: List[int] = []
    for c in np.unique(y):
        picked.extend(np.flatnonzero(y == c)[:per_class].tolist())
    return sorted(picked)
