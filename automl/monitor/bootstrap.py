"""Bootstrap samples of automl's metrics, vectorised: one matrix product per metric for all resamples.

A resample is a row of counts ``W`` (how often each row was drawn); every metric of
:mod:`automl.metrics` with ``sample_weight=W[b]`` equals the metric on that resample, and the
functions here compute all ``b`` at once. With ``W`` all ones they give the plain metric
(``tests/test_model_quality.py`` checks each against :mod:`automl.metrics`).
"""
from __future__ import annotations

from typing import Callable, Dict, List, Optional, Sequence

import numpy as np

_CELLS = 4_000_000  # resamples x rows per chunk (about 32 MB of float64)


def resample_counts(n: int, n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    """``(n_resamples, n)`` counts of each row in ``n_resamples`` draws of ``n`` rows with replacement."""
    idx = rng.integers(0, n, size=(n_resamples, n))
    flat = (idx + (np.arange(n_resamples) * n)[:, None]).ravel()
    return np.bincount(flat, minlength=n_resamples * n).reshape(n_resamples, n).astype(float)


def _div(a: np.ndarray, b: np.ndarray, empty: float = 0.0) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(b > 0, a / np.where(b > 0, b, 1), empty)


def _class_counts(W: np.ndarray, y: np.ndarray, pred: np.ndarray, k: int):
    """Per resample and class: true positives, predicted and actual (weighted) counts, each (B, k)."""
    Y = np.eye(k)[y]
    P = np.eye(k)[pred]
    return W @ (Y * P), W @ P, W @ Y


def _macro(kind: str) -> Callable:
    def score(W, y, pred, proba, pos, k):
        tp, n_pred, n_true = _class_counts(W, y, pred, k)
        present = (n_pred + n_true) > 0  # scikit-learn averages over labels in y_true or y_pred
        if kind == "precision":
            per = _div(tp, n_pred)
        elif kind == "recall":
            per = _div(tp, n_true)
        else:
            per = _div(2 * tp, n_pred + n_true)
        return _div((per * present).sum(1), present.sum(1), np.nan)
    return score


def _balanced_accuracy(W, y, pred, proba, pos, k):
    tp, _, n_true = _class_counts(W, y, pred, k)
    present = n_true > 0  # classes absent from y_true are left out, as scikit-learn does
    return _div((_div(tp, n_true) * present).sum(1), present.sum(1), np.nan)


def _binary(kind: str) -> Callable:
    def score(W, y, pred, proba, pos, k):
        yt, yp = (y == pos).astype(float), (pred == pos).astype(float)
        tp, n_pred, n_true = W @ (yt * yp), W @ yp, W @ yt
        if kind == "precision":
            return _div(tp, n_pred)
        if kind == "recall":
            return _div(tp, n_true)
        return _div(2 * tp, n_pred + n_true)
    return score


def _accuracy(W, y, pred, proba, pos, k):
    return _div(W @ (y == pred).astype(float), W.sum(1), np.nan)


def _logloss(W, y, pred, proba, pos, k):
    p = np.clip(proba[np.arange(len(y)), y], 1e-15, 1)
    return _div(W @ -np.log(p), W.sum(1), np.nan)


def _auc(W, y, pred, proba, pos, k):
    """The weighted Mann-Whitney statistic (ties count half), for every resample at once."""
    s = proba[:, pos]
    order = np.argsort(s, kind="mergesort")
    starts = np.r_[0, np.nonzero(np.diff(s[order]))[0] + 1]  # first index of each distinct score
    positive = (y[order] == pos).astype(float)
    Ws = W[:, order]
    w_pos = np.add.reduceat(Ws * positive, starts, axis=1)
    w_neg = np.add.reduceat(Ws * (1 - positive), starts, axis=1)
    below = np.cumsum(w_neg, axis=1) - w_neg
    return _div((w_pos * (below + 0.5 * w_neg)).sum(1), w_pos.sum(1) * w_neg.sum(1), np.nan)


def _regression(kind: str) -> Callable:
    def score(W, y, pred, proba, pos, k):
        e = y - pred
        total = W.sum(1)
        mse = _div(W @ (e * e), total, np.nan)
        if kind == "mse":
            return mse
        if kind == "rmse":
            return np.sqrt(mse)
        if kind == "mae":
            return _div(W @ np.abs(e), total, np.nan)
        mean = _div(W @ y, total, np.nan)
        sst = W @ (y * y) - total * mean * mean
        return np.where(sst > 1e-12 * np.maximum(total, 1), 1 - _div(W @ (e * e), sst, np.nan), np.nan)
    return score


VECTORISED: Dict[str, Dict[str, Callable]] = {
    "regression": {name: _regression(name) for name in ("mse", "rmse", "mae", "r2")},
    "binary": {"f1": _binary("f1"), "accuracy": _accuracy, "auc": _auc, "balanced_accuracy": _balanced_accuracy,
               "precision": _binary("precision"), "recall": _binary("recall"), "logloss": _logloss},
    "multiclass": {"accuracy": _accuracy, "balanced_accuracy": _balanced_accuracy, "f1_macro": _macro("f1"),
                   "precision_macro": _macro("precision"), "recall_macro": _macro("recall"), "logloss": _logloss},
}


def bootstrap_samples(problem_type: str, names: Sequence[str], n_resamples: int, rng: np.random.Generator,
                      y: np.ndarray, pred: np.ndarray, proba: Optional[np.ndarray], pos: int = 1,
                      n_classes: int = 2) -> Dict[str, np.ndarray]:
    """Each metric of ``names`` on ``n_resamples`` bootstrap resamples of the rows, the resamples
    drawn a chunk at a time so that memory stays near ``_CELLS`` counts whatever the row count."""
    step = max(1, _CELLS // max(len(y), 1))
    parts: Dict[str, List[np.ndarray]] = {name: [] for name in names}
    for start in range(0, n_resamples, step):
        W = resample_counts(len(y), min(step, n_resamples - start), rng)
        for name in names:
            parts[name].append(metric_samples(problem_type, name, W, y, pred, proba, pos, n_classes))
    return {name: np.concatenate(p) if p else np.empty(0) for name, p in parts.items()}


def metric_samples(problem_type: str, name: str, W: np.ndarray, y: np.ndarray, pred: np.ndarray,
                   proba: Optional[np.ndarray], pos: int = 1, n_classes: int = 2) -> np.ndarray:
    """The metric ``name`` on each resample (rows of ``W``); NaN where it is undefined (one class only).

    ``y`` and ``pred`` are class indices (classification) or values (regression); ``proba`` the
    class probabilities, for ``auc`` and ``logloss``."""
    fn = VECTORISED[problem_type][name]
    if problem_type != "regression":
        y, pred = y.astype(int), pred.astype(int)
    step = max(1, _CELLS // max(len(y), 1))
    parts = [fn(W[i:i + step], y, pred, proba, pos, n_classes) for i in range(0, len(W), step)]
    return np.concatenate(parts).astype(float)
