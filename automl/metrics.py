"""Metric registry: Autopilot's metric names per problem type, default first.

Classification metrics are computed from class probabilities (columns in the order of the
run's encoded classes); predicted labels are the arg-max, or the tuned threshold for binary.
Every metric takes optional per-row ``sample_weight`` (``data.weight_column`` / ``data.weights``)
and then equals scikit-learn's metric with that ``sample_weight``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Dict, Optional

import numpy as np
from sklearn import metrics as skm

from automl.errors import ConfigError


@dataclass(frozen=True)
class Metric:
    name: str
    greater_is_better: bool
    needs_proba: bool
    fn: Callable  # fn(y_true, y_pred_or_proba, pos_index, sample_weight=None) -> float


def _labels(proba: np.ndarray, threshold: Optional[float] = None, pos: int = 1) -> np.ndarray:
    if threshold is not None and proba.shape[1] == 2:
        return np.where(proba[:, pos] >= threshold, pos, 1 - pos)
    return np.argmax(proba, axis=1)


def _cls(fn, **kw):
    return lambda y, p, pos, w=None: float(fn(y, _labels(p, pos=pos), sample_weight=w, **kw))


def _bin(fn):
    return lambda y, p, pos, w=None: float(fn(y, _labels(p, pos=pos), pos_label=pos, zero_division=0,
                                              sample_weight=w))


def _reg(fn, root: bool = False):
    def score(y, p, pos, w=None) -> float:
        value = float(fn(y, p, sample_weight=w))
        return float(np.sqrt(value)) if root else value
    return score


def _weighted_auc(positive: np.ndarray, s: np.ndarray, w: np.ndarray) -> float:
    """The weighted Mann-Whitney statistic: the weighted share of (positive, negative) pairs
    ordered right, ties counting half (scikit-learn's ``roc_auc_score`` with ``sample_weight``)."""
    _, inv = np.unique(s, return_inverse=True)
    w = np.asarray(w, dtype=float)
    w_pos = np.bincount(inv, weights=w * positive)
    w_neg = np.bincount(inv, weights=w * ~positive)
    total = w_pos.sum() * w_neg.sum()
    if not total > 0:
        raise ValueError("AUC needs both classes (with weight) in y_true")
    below = np.cumsum(w_neg) - w_neg  # negative weight at lower scores
    return float((w_pos * (below + 0.5 * w_neg)).sum() / total)


def _auc(y, p, pos, w=None):
    """ROC AUC as the Mann-Whitney statistic (average ranks for ties): exact, and much faster
    than scikit-learn's for the thousands of calls ensemble selection makes."""
    from scipy.stats import rankdata

    positive = y == pos
    if w is not None:
        return _weighted_auc(positive, p[:, pos], w)
    n_pos = int(positive.sum())
    n_neg = len(y) - n_pos
    if n_pos == 0 or n_neg == 0:
        raise ValueError("AUC needs both classes in y_true")
    ranks = rankdata(p[:, pos])
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _accuracy(y, p, pos, w=None):
    return float(np.average(_labels(p, pos=pos) == y, weights=w))


def _logloss(y, p, pos, w=None):
    return float(skm.log_loss(y, np.clip(p, 1e-15, 1), labels=np.arange(p.shape[1]), sample_weight=w))


def _macro(fn):
    return lambda y, p, pos, w=None: float(fn(y, _labels(p), average="macro", zero_division=0, sample_weight=w))


METRICS: Dict[str, Dict[str, Metric]] = {
    "regression": {
        "mse": Metric("mse", False, False, _reg(skm.mean_squared_error)),
        "rmse": Metric("rmse", False, False, _reg(skm.mean_squared_error, root=True)),
        "mae": Metric("mae", False, False, _reg(skm.mean_absolute_error)),
        "r2": Metric("r2", True, False, _reg(skm.r2_score)),
    },
    "binary": {
        "f1": Metric("f1", True, False, _bin(skm.f1_score)),
        "accuracy": Metric("accuracy", True, False, _accuracy),
        "auc": Metric("auc", True, True, _auc),
        "balanced_accuracy": Metric("balanced_accuracy", True, False, _cls(skm.balanced_accuracy_score)),
        "precision": Metric("precision", True, False, _bin(skm.precision_score)),
        "recall": Metric("recall", True, False, _bin(skm.recall_score)),
        "logloss": Metric("logloss", False, True, _logloss),
    },
    "multiclass": {
        "accuracy": Metric("accuracy", True, False, _accuracy),
        "balanced_accuracy": Metric("balanced_accuracy", True, False, _cls(skm.balanced_accuracy_score)),
        "f1_macro": Metric("f1_macro", True, False, _macro(skm.f1_score)),
        "precision_macro": Metric("precision_macro", True, False, _macro(skm.precision_score)),
        "recall_macro": Metric("recall_macro", True, False, _macro(skm.recall_score)),
        "logloss": Metric("logloss", False, True, _logloss),
    },
}

ALL_METRIC_NAMES = sorted({m for group in METRICS.values() for m in group})


def default_metric(problem_type: str) -> str:
    return next(iter(METRICS[problem_type]))


def check_metric_name(metric: str, problem_type: str) -> None:
    """Fail before any work if the metric is unknown or does not fit the problem type."""
    if metric == "auto":
        return
    if metric not in ALL_METRIC_NAMES:
        raise ConfigError(
            f"metric '{metric}' is unknown; valid metrics: {', '.join(ALL_METRIC_NAMES)}"
        )
    if problem_type != "auto" and metric not in METRICS[problem_type]:
        raise ConfigError(
            f"metric '{metric}' does not fit problem_type={problem_type}; "
            f"use one of {', '.join(METRICS[problem_type])}"
        )


def get_metric(name: str, problem_type: str) -> Metric:
    check_metric_name(name, problem_type)
    return METRICS[problem_type][name]


THRESHOLD_METRICS = ("f1", "balanced_accuracy")


def hard_labels(proba: np.ndarray, threshold: float, pos_index: int) -> np.ndarray:
    """One-hot rows of the labels a binary decision threshold gives (for label metrics)."""
    labels = np.where(proba[:, pos_index] >= threshold, pos_index, 1 - pos_index)
    return np.eye(2)[labels]


def tune_threshold(y: np.ndarray, proba: np.ndarray, metric: str, pos_index: int = 1,
                   sample_weight: Optional[np.ndarray] = None) -> tuple[float, float]:
    """The decision threshold on the positive class that maximises f1 or balanced accuracy.

    Every distinct score is tried at once from cumulative (weighted) counts (O(n log n)).
    """
    s = proba[:, pos_index]
    pos = (y == pos_index).astype(float)
    w = np.ones(len(s)) if sample_weight is None else np.asarray(sample_weight, dtype=float)
    order = np.argsort(-s, kind="mergesort")
    s_sorted, p_sorted, w_sorted = s[order], pos[order], w[order]
    last = np.r_[np.nonzero(np.diff(s_sorted))[0], len(s) - 1]  # last index of each distinct score
    tp = np.cumsum(p_sorted * w_sorted)[last]
    fp = np.cumsum((1 - p_sorted) * w_sorted)[last]
    n_pos, n_neg = (pos * w).sum(), ((1 - pos) * w).sum()
    if metric == "f1":
        values = 2 * tp / np.maximum(2 * tp + fp + (n_pos - tp), 1e-12)
    elif metric == "balanced_accuracy":
        values = 0.5 * (tp / max(n_pos, 1) + (n_neg - fp) / max(n_neg, 1))
    else:
        raise ValueError(f"threshold tuning supports {THRESHOLD_METRICS}, not {metric}")
    i = int(np.argmax(values))
    return float(s_sorted[last[i]]), float(values[i])


def objective_score(problem_type: str, metric: str, pos_index: int, y: np.ndarray, pred: np.ndarray,
                    sample_weight: Optional[np.ndarray] = None) -> float:
    """The run's metric on out-of-fold predictions as a trial scores them: binary f1 and balanced
    accuracy at their tuned threshold, every other metric as is (weighted by ``sample_weight``)."""
    if problem_type == "binary" and metric in THRESHOLD_METRICS:
        return tune_threshold(y, pred, metric, pos_index, sample_weight)[1]
    return get_metric(metric, problem_type).fn(y, pred, pos_index, sample_weight)


def score_all(problem_type: str, y_true: np.ndarray, pred: np.ndarray, pos_index: int = 1,
              threshold: float | None = None, sample_weight: Optional[np.ndarray] = None) -> Dict[str, float]:
    """Every metric of the problem type; a metric that cannot be computed is NaN.

    With a binary ``threshold``, label metrics use it; probability metrics are unaffected.
    With ``sample_weight``, each is scikit-learn's weighted metric.
    """
    hard = hard_labels(pred, threshold, pos_index) if threshold is not None and problem_type == "binary" else pred
    out = {}
    for name, metric in METRICS[problem_type].items():
        try:
            out[name] = metric.fn(y_true, pred if metric.needs_proba else hard, pos_index, sample_weight)
        except ValueError:
            out[name] = float("nan")
    return out


def worst_value(metric: Metric) -> float:
    """A finite, very bad objective reported for failed trials (the searcher needs a number)."""
    return -1e12 if metric.greater_is_better else 1e12
