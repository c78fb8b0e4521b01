"""Greedy ensemble selection with replacement (Caruana et al., 2004) over out-of-fold predictions.

The selector works on the trials' out-of-fold predictions, scored with the run's metric on the
same folds; the ensemble is kept only when it beats the best single model on validation.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional, Sequence

import numpy as np
from sklearn.base import BaseEstimator

from automl.metrics import Metric


@dataclass
class Selection:
    indices: List[int]  # positions in the candidate list, with repeats
    weights: np.ndarray  # one weight per candidate (sums to 1)
    score: float
    best_single_score: float


def _better(metric: Metric, a: float, b: float, eps: float = 1e-9) -> bool:
    return a > b + eps if metric.greater_is_better else a < b - eps


def caruana_select(preds: Sequence[np.ndarray], y: np.ndarray, metric: Metric, pos_index: int = 1,
                   max_iter: int = 40, score_fn=None) -> Optional[Selection]:
    """Select an ensemble; ``None`` when it does not beat the best single model.

    ``preds[i]`` is model i's out-of-fold prediction (probabilities, or values for regression);
    ``score_fn(y, pred)`` defaults to ``metric.fn(y, pred, pos_index)``.
    """
    if len(preds) < 2:
        return None
    score = score_fn or (lambda yy, p: metric.fn(yy, p, pos_index))
    singles = [score(y, p) for p in preds]
    order = np.argsort(singles)
    best_i = int(order[-1] if metric.greater_is_better else order[0])
    best_single = singles[best_i]
    chosen = [best_i]
    total = preds[best_i].astype(float).copy()
    trace = [(best_single, list(chosen))]
    for _ in range(max_iter - 1):
        n = len(chosen) + 1
        cand_scores = [score(y, (total + p) / n) for p in preds]
        j = int(np.argmax(cand_scores) if metric.greater_is_better else np.argmin(cand_scores))
        chosen.append(j)
        total += preds[j]
        trace.append((cand_scores[j], list(chosen)))
    pick = max(trace, key=lambda t: t[0]) if metric.greater_is_better else min(trace, key=lambda t: t[0])
    best_score, members = pick
    if len(set(members)) < 2 or not _better(metric, best_score, best_single):
        return None
    weights = np.bincount(members, minlength=len(preds)).astype(float)
    return Selection(members, weights / weights.sum(), float(best_score), float(best_single))


class WeightedEnsemble(BaseEstimator):
    """A weighted average of fitted pipelines: probabilities (classification) or values."""

    def __init__(self, estimators: list, weights: Sequence[float], problem_type: str, n_classes: int = 0):
        self.estimators = estimators
        self.weights = weights
        self.problem_type = problem_type
        self.n_classes = n_classes

    @property
    def classes_(self):
        return np.arange(self.n_classes)

    def _member_proba(self, est, X) -> np.ndarray:
        p = est.predict_proba(X)
        seen = np.asarray(est.classes_, dtype=int)
        if p.shape[1] == self.n_classes:
            return p
        full = np.zeros((len(X), self.n_classes))
        full[:, seen] = p
        return full

    def predict_proba(self, X) -> np.ndarray:
        p = sum(w * self._member_proba(e, X) for e, w in zip(self.estimators, self.weights))
        return p / p.sum(axis=1, keepdims=True)  # exact row sums despite float weights

    def predict(self, X) -> np.ndarray:
        if self.problem_type == "regression":
            return sum(w * np.asarray(e.predict(X), dtype=float) for e, w in zip(self.estimators, self.weights))
        return np.argmax(self.predict_proba(X), axis=1)
