"""The memory plan: each candidate's peak memory per trial, predicted before the search.

The estimate comes from the rows a trial fits on (per fold, after ``validation.max_train_rows``),
the columns and their encoding (one-hot width from each categorical's level count, TF-IDF terms,
date parts), float64 matrix copies per algorithm, and model-specific terms (a forest's trees, the
SVM's kernel cache, k-NN's distance blocks). It is compared with the memory one trial may use:
``scale.memory_per_trial_mb``, else this machine's available memory shared by the trials that run
at once. A candidate predicted over it trains on the largest sample of each fold's rows that fits
(down to ``scale.memory_sample_min_rows``) and its final model on the most rows that fit; below that
floor it is skipped with the reason, before any trial could be killed for memory. The figures are estimates (docs/scale.md, "Time and memory plans"), not bounds.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field, replace
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import pandas as pd

from automl.candidates.processing import SplineExpand
from automl.search.trial import OUT_OF_MEMORY, WORKER_DIED

log = logging.getLogger(__name__)

MB = 1_000_000  # scale.memory_per_trial_mb is in MB (10^6 bytes), like select.max_size_mb
WORKER_BASE_MB = 150.0  # a trial worker's own footprint: Python, numpy, scikit-learn, XGBoost imported
# Processed float64 matrices (training rows x processed columns) a fit holds at its peak, beyond
# the processed matrix itself: the scaler's and the solver's copies (linear, MLP, SVM, k-NN), the
# library's own float32 copy and histogram bins (boosting), the float32 copy of the forests.
COPIES = {"linear": 3.0, "mlp": 3.0, "svm": 2.0, "knn": 2.0, "xgboost": 2.0, "lightgbm": 2.0,
          "catboost": 2.5, "hist_gb": 1.5, "random_forest": 1.5, "extra_trees": 1.5}
UNKNOWN_COPIES = 3.0  # a custom module:factory algorithm
TREE_NODE_BYTES = 64  # scikit-learn's tree node record, plus 8 bytes per class of its value array
SVM_CACHE_MB = 200.0  # scikit-learn's SVC cache_size: the kernel rows it keeps (n^2 is never stored whole)
KNN_BLOCK_MB = 1024.0  # scikit-learn's working_memory: distance blocks at prediction time
DATE_PARTS = 7  # year, month, day, weekday, day of year, hour, minute
TEXT_DENSITY = 0.1  # share of TF-IDF terms counted as dense (the matrix is sparse)
SAMPLE_ROWS = 20_000  # the frame's size in memory is measured on this many rows, scaled


@dataclass
class DataShape:
    """What the estimate reads about the data: sizes, column types and level counts."""

    train_rows: int  # rows a trial fits on per fold (after validation.max_train_rows)
    valid_rows: int  # rows a trial predicts per fold
    frame_mb: float  # the trials' feature frame (every row) in memory
    column_types: Dict[str, str]
    levels: Dict[str, int]  # distinct values per categorical column
    with_missing: int  # numeric columns with missing values (a missing indicator each)
    n_rows: int = 1  # rows of the frame
    n_classes: int = 0

    @classmethod
    def of(cls, X: pd.DataFrame, column_types: Dict[str, str], folds: List[Tuple[np.ndarray, np.ndarray]],
           n_classes: int) -> "DataShape":
        cats = [c for c, t in column_types.items() if t == "categorical"]
        nums = [c for c, t in column_types.items() if t == "numeric"]
        sample = X.sample(n=SAMPLE_ROWS, random_state=0) if len(X) > SAMPLE_ROWS else X  # deep sizes cost a pass
        frame_mb = float(sample.memory_usage(deep=True, index=False).sum()) * len(X) / max(1, len(sample)) / MB
        return cls(train_rows=max(len(tr) for tr, _ in folds), valid_rows=max(len(va) for _, va in folds),
                   frame_mb=frame_mb, column_types=dict(column_types),
                   levels={c: int(X[c].nunique()) for c in cats},
                   with_missing=int(X[nums].isna().any().sum()) if nums else 0, n_rows=len(X), n_classes=n_classes)


def processed_width(shape: DataShape, processing: Dict[str, Any]) -> float:
    """Columns after a candidate's processing (dense equivalent)."""
    onehot = processing.get("categorical", "onehot") == "onehot"
    high = int(processing.get("high_cardinality_threshold", 30))
    high_encoded = processing.get("high_cardinality", "target") != "none"
    width = float(shape.with_missing if processing.get("missing_indicator", True) else 0)
    for col, kind in shape.column_types.items():
        if kind == "categorical":
            n = shape.levels.get(col, 1)
            if onehot and not (high_encoded and n > high):
                width += min(n, int(processing.get("onehot_max_categories", 30))) + 1
            else:
                width += 1
        elif kind == "text":
            width += 0 if processing.get("text") == "drop" else \
                int(processing.get("text_max_features", 300)) * TEXT_DENSITY
        elif kind == "datetime":
            width += 0 if processing.get("datetime") == "drop" else DATE_PARTS
        else:
            width += 1 + (SplineExpand().basis if processing.get("scale") == "spline" else 0)
    return max(1.0, width)


def _param(space: Dict[str, Any], name: str, default: float) -> float:
    """A search-space parameter's starting value (``init``), or its fixed value, or ``default``."""
    spec = (space or {}).get("params", {}).get(name)
    if isinstance(spec, dict) and spec.get("init") is not None:
        return float(spec["init"])
    fixed = (space or {}).get("fixed", {}).get(name)
    return float(fixed) if isinstance(fixed, (int, float)) else default


def model_mb(algorithm: str, space: Dict[str, Any], shape: DataShape, width: float) -> float:
    """The model-specific term: trees, kernel cache, distance blocks (MB)."""
    n = shape.train_rows
    if algorithm in ("random_forest", "extra_trees"):
        trees = _param(space, "model.n_estimators", 100)
        leaf = max(1.0, _param(space, "model.min_samples_leaf", 1))
        share = 0.632 if algorithm == "random_forest" else 1.0  # bootstrap: about 63% distinct rows
        nodes = 2.0 * n * share / leaf
        return trees * nodes * (TREE_NODE_BYTES + 8 * max(1, shape.n_classes)) / MB
    if algorithm == "svm":
        return min(n * float(n) * 8 / MB, SVM_CACHE_MB) + n * width * 8 / MB  # kernel rows + support vectors
    if algorithm == "knn":
        return min(shape.valid_rows * float(n) * 8 / MB, KNN_BLOCK_MB)
    return 0.0


def peak_mb(algorithm: str, processing: Dict[str, Any], space: Dict[str, Any], shape: DataShape) -> float:
    """A trial's predicted peak memory (MB): the worker, its copy of the data, the fold's rows,
    the processed matrices and the model."""
    width = processed_width(shape, processing)
    fold_mb = shape.frame_mb * min(1.0, (shape.train_rows + shape.valid_rows) / max(1, shape.n_rows))  # iloc copies
    matrix_mb = shape.train_rows * width * 8 / MB
    valid_mb = shape.valid_rows * width * 8 / MB
    copies = COPIES.get(algorithm, UNKNOWN_COPIES)
    return (WORKER_BASE_MB + shape.frame_mb + fold_mb + matrix_mb * (1 + copies) + valid_mb
            + model_mb(algorithm, space, shape, width))


def parallel_trials(num_cpus: Optional[float], cpus_per_trial: float) -> int:
    """Trials that run at once on this machine."""
    return max(1, int((num_cpus or os.cpu_count() or 1) // max(1e-9, float(cpus_per_trial))))


def memory_limit_mb(override: Optional[float], num_cpus: Optional[float], cpus_per_trial: float) -> Tuple[float, str]:
    """(MB one trial may use, where that figure comes from)."""
    if override:
        return float(override), "scale.memory_per_trial_mb"
    import psutil

    n = parallel_trials(num_cpus, cpus_per_trial)
    return psutil.virtual_memory().available / MB / n, f"available memory / {n} parallel trial(s)"


@dataclass
class MemoryPlan:
    """The estimates, the limit and which candidates it leaves out (summary.json's ``memory_plan``)."""

    limit_mb: Optional[float]
    source: str
    peak_mb: Dict[str, float] = field(default_factory=dict)
    skipped: Dict[str, str] = field(default_factory=dict)
    # name -> the down-sample: estimate_mb, limit_mb, train_rows (per fold), refit_rows, reason
    sampled: Dict[str, Dict[str, Any]] = field(default_factory=dict)

    def record(self) -> Dict[str, Any]:
        return {"limit_mb": None if self.limit_mb is None else round(self.limit_mb, 1), "limit_source": self.source,
                "peak_mb": {k: round(v, 1) for k, v in self.peak_mb.items()}, "skipped": dict(self.skipped),
                "sampled": {k: dict(v) for k, v in self.sampled.items()}}


def rows_within_mb(cand: Any, shape: DataShape, limit_mb: float, valid_rows: Optional[int] = None) -> int:
    """The most training rows (up to ``shape.train_rows``) at which ``cand``'s estimate, with
    ``valid_rows`` predicted rows (the fold's by default), is at most ``limit_mb`` (0: none)."""
    shape = replace(shape, valid_rows=shape.valid_rows if valid_rows is None else valid_rows)
    lo, hi = 0, shape.train_rows
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if peak_mb(cand.algorithm, cand.processing, cand.space, replace(shape, train_rows=mid)) <= limit_mb:
            lo = mid
        else:
            hi = mid - 1
    return lo


def memory_sample(cand: Any, shape: DataShape, limit_mb: float, min_rows: int) -> Optional[Dict[str, Any]]:
    """The down-sample that fits ``limit_mb``: ``train_rows`` per fold (at least ``min_rows``, and
    two per class) and ``refit_rows`` for the final model; None when even the floor does not fit."""
    floor = max(int(min_rows), 2 * max(1, shape.n_classes))
    if not min_rows or shape.train_rows <= floor:
        return None
    rows = rows_within_mb(cand, shape, limit_mb)
    if rows < floor:
        return None
    refit = rows_within_mb(cand, replace(shape, train_rows=shape.n_rows), limit_mb, valid_rows=0)
    return {"train_rows": rows, "refit_rows": max(rows, refit),
            "sample_peak_mb": round(peak_mb(cand.algorithm, cand.processing, cand.space,
                                            replace(shape, train_rows=rows)), 1)}


def plan_memory(candidates: List[Any], shape: DataShape, limit: Optional[Tuple[float, str]],
                min_sample_rows: int = 0) -> MemoryPlan:
    """Estimate each candidate (``name``, ``algorithm``, ``processing``, ``space``) against ``limit``
    (None: estimates only, e.g. on a cluster whose workers' memory is unknown before Ray starts).
    One over it is down-sampled (``plan.sampled``) when a sample of at least ``min_sample_rows``
    rows per fold fits (0: never), else skipped."""
    plan = MemoryPlan(limit[0] if limit else None, limit[1] if limit else "unknown (a cluster: set "
                      "scale.memory_per_trial_mb to check the estimates)")
    for cand in candidates:
        est = peak_mb(cand.algorithm, cand.processing, cand.space, shape)
        plan.peak_mb[cand.name] = est
        if plan.limit_mb is None or est <= plan.limit_mb:
            continue
        why = (f"predicted peak memory {est:.0f} MB per trial ({shape.train_rows} rows x "
               f"{processed_width(shape, cand.processing):.0f} processed columns) exceeds "
               f"the {plan.limit_mb:.0f} MB a trial may use ({plan.source})")
        sample = memory_sample(cand, shape, plan.limit_mb, min_sample_rows)
        if sample is None:
            plan.skipped[cand.name] = why
            continue
        plan.sampled[cand.name] = {"estimate_mb": round(est, 1), "limit_mb": round(plan.limit_mb, 1), **sample,
                                   "reason": (f"{why}: its trials fit on a sample of {sample['train_rows']} "
                                              f"rows per fold (predicted {sample['sample_peak_mb']:.0f} MB), its "
                                              f"final model on at most {sample['refit_rows']} rows")}
    return plan


# The kernel's OOM-kill counters: this cgroup's (v2, v1) and the machine's (/proc/vmstat).
OOM_KILL_FILES = ("/sys/fs/cgroup/memory.events", "/sys/fs/cgroup/memory/memory.oom_control", "/proc/vmstat")


def oom_kills(paths: Tuple[str, ...] = OOM_KILL_FILES) -> Optional[int]:
    """The kernel's OOM kills so far: the sum of the ``oom_kill`` lines of ``paths`` that can be
    read (None when none can)."""
    total, found = 0, False
    for path in paths:
        try:
            with open(path) as fh:
                for line in fh:
                    key, _, value = line.partition(" ")
                    if key == "oom_kill":
                        total, found = total + int(value), True
        except (OSError, ValueError):  # no such cgroup file on this machine, or not readable
            continue
    return total if found else None


class OomKills:
    """Whether the kernel's OOM killer struck since the last look: a trial worker that died by a
    signal then died of memory, not of something else (search/tuner.py, search/local.py)."""

    def __init__(self, paths: Tuple[str, ...] = OOM_KILL_FILES) -> None:
        self.paths = paths
        self.seen = oom_kills(paths)

    def new(self) -> bool:
        now = oom_kills(self.paths)
        struck = now is not None and self.seen is not None and now > self.seen
        self.seen = now if now is not None else self.seen
        return struck

    def worker_died(self) -> str:
        """A dead worker's reason: out of memory when the OOM killer struck, else WORKER_DIED."""
        if self.new():
            return (f"{OUT_OF_MEMORY} (the kernel's OOM killer ended the trial's worker; "
                    "the run went on without it)")
        return WORKER_DIED


OOM_KILLS = OomKills()  # counted from when the fit imports the memory plan, before any trial
