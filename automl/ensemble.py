"""Greedy ensemble selection with replacement (Caruana et al., 2004) over out-of-fold predictions.

The selector works on the trials' out-of-fold predictions, scored with the run's metric on the
same folds; the ensemble is kept only when it beats the best single model on validation.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

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


def share_preprocessing(estimators: Sequence) -> List[Tuple[Any, List[Tuple[int, Any]]]]:
    """Group members whose fitted processing steps are identical (same recipe, same rows).

    Returns ``[(processing or None, [(member index, final step), ...]), ...]``: the rows are
    transformed once per group instead of once per member. Members that are not a Pipeline
    form groups of their own with ``None`` as processing.
    """
    import hashlib
    import pickle

    from sklearn.pipeline import Pipeline

    groups: Dict[Any, Tuple[Any, List[Tuple[int, Any]]]] = {}
    for i, est in enumerate(estimators):
        if isinstance(est, Pipeline) and len(est.steps) > 1:
            pre = est[:-1]
            key = hashlib.sha256(pickle.dumps(pre, protocol=pickle.HIGHEST_PROTOCOL)).hexdigest()
            groups.setdefault(key, (pre, []))[1].append((i, est.steps[-1][1]))
        else:
            groups[("single", i)] = (None, [(i, est)])
    return list(groups.values())


def significant_count_gain(y: np.ndarray, ensemble: np.ndarray, single: np.ndarray, alpha: float = 0.025) -> tuple:
    """For accuracy: is the ensemble's gain over the best single model more than a few rows?

    Counts the validation rows the ensemble labels right and the single model wrong (``b``) and
    the reverse (``c``), and asks whether ``b`` of those ``b + c`` disagreements is more than a
    coin would give: McNemar's exact (binomial, one-sided) test at ``alpha``. Returns
    ``(passed, b, c)``. Caruana's selection maximises accuracy on the same rows it is judged on,
    so gains of a few rows are mostly fitted noise. (The normal approximation used before,
    ``b - c >= 2 sqrt(b + c)``, let 4 rows to 0 through, whose exact p-value is 1/16; on digits
    such an ensemble lost 4 test rows of 450 against the single model.)
    """
    from scipy.stats import binomtest

    right_e = np.argmax(ensemble, axis=1) == y
    right_s = np.argmax(single, axis=1) == y
    b, c = int(np.sum(right_e & ~right_s)), int(np.sum(~right_e & right_s))
    passed = b > c and binomtest(b, b + c, 0.5, alternative="greater").pvalue < alpha
    return bool(passed), b, c


class WeightedEnsemble(BaseEstimator):
    """A weighted average of fitted pipelines: probabilities (classification) or values.

    Members with identical fitted processing (same candidate recipe) share one transform of
    the rows; each member's output is still summed in member order, so sharing changes no float.
    """

    def __init__(self, estimators: list, weights: Sequence[float], problem_type: str, n_classes: int = 0):
        self.estimators = estimators
        self.weights = weights
        self.problem_type = problem_type
        self.n_classes = n_classes

    @property
    def classes_(self):
        return np.arange(self.n_classes)

    def groups(self):
        """Members grouped by shared processing (computed once, see :func:`share_preprocessing`)."""
        cached = self.__dict__.get("_groups")
        if cached is None or cached[0] is not self.estimators:
            cached = (self.estimators, share_preprocessing(self.estimators))
            self.__dict__["_groups"] = cached
        return cached[1]

    def with_groups(self, groups) -> "WeightedEnsemble":
        """A shallow copy that predicts through ``groups`` (same shape as :meth:`groups`: the
        endpoint's fast path passes fast transforms and final steps)."""
        other = copy.copy(self)
        other.__dict__["_groups"] = (other.estimators, groups)
        return other

    def __getstate__(self):
        state = dict(self.__dict__)
        state.pop("_groups", None)  # derived; rebuilt on first use
        return state

    def _full(self, p: np.ndarray, seen) -> np.ndarray:
        if p.shape[1] == self.n_classes:
            return p
        full = np.zeros((len(p), self.n_classes))
        full[:, np.asarray(seen, dtype=int)] = p
        return full

    def member_outputs(self, X, groups=None) -> List[np.ndarray]:
        """Each member's probabilities over all classes (or values), in member order."""
        outs: List[Optional[np.ndarray]] = [None] * len(self.estimators)
        regression = self.problem_type == "regression"
        for pre, members in (groups if groups is not None else self.groups()):
            Xt = X if pre is None else pre.transform(X)
            for i, est in members:
                outs[i] = (np.asarray(est.predict(Xt), dtype=float) if regression
                           else self._full(est.predict_proba(Xt), est.classes_))
        return outs

    def combine(self, outs: List[np.ndarray]) -> np.ndarray:
        total = sum(w * o for o, w in zip(outs, self.weights))
        if self.problem_type == "regression":
            return total
        return total / total.sum(axis=1, keepdims=True)  # exact row sums despite float weights

    def predict_proba(self, X) -> np.ndarray:
        return self.combine(self.member_outputs(X))

    def predict(self, X) -> np.ndarray:
        if self.problem_type == "regression":
            return self.combine(self.member_outputs(X))
        return np.argmax(self.predict_proba(X), axis=1)


class BaggedModel(WeightedEnsemble):
    """The plain mean of k fitted fold pipelines: probabilities (classification) or values.

    A :class:`~automl.ensemble.WeightedEnsemble` with equal weights, so the endpoint's fast path
    (serving/predictor.py ``fast_model``) takes each fold pipeline on its fast path as it does for
    ensemble members; the combination is an exact ``np.mean`` of the fold outputs.
    """

    def __init__(self, estimators: list, problem_type: str, n_classes: int = 0):
        self.estimators = estimators
        self.problem_type = problem_type
        self.n_classes = n_classes

    @property
    def weights(self) -> np.ndarray:
        return np.full(len(self.estimators), 1.0 / max(1, len(self.estimators)))

    def combine(self, outs: List[np.ndarray]) -> np.ndarray:
        return np.mean(np.stack(outs), axis=0)


def stack_features(outs: Sequence[np.ndarray], problem_type: str) -> np.ndarray:
    """The second level's inputs from the members' outputs: values (regression), else the log of
    each member's probabilities (binary: of the positive class only, the other is redundant)."""
    if problem_type == "regression":
        return np.column_stack([np.asarray(o, dtype=float) for o in outs])
    cols = [o[:, 1:] if problem_type == "binary" else o for o in outs]
    return np.log(np.clip(np.hstack(cols), 1e-6, 1.0))


class StackedModel(BaggedModel):
    """A second level (``final_estimator``: logistic regression or ridge) on the members' outputs.

    The members are the level-1 models (bagged or refit pipelines); ``final_estimator`` was fitted
    on their out-of-fold predictions only (selection/stacking.py). Built on BaggedModel for its
    members' shared transforms and the endpoint's fast path; only the combination differs.
    """

    def __init__(self, estimators: list, final_estimator: Any, problem_type: str, n_classes: int = 0):
        super().__init__(estimators, problem_type, n_classes)
        self.final_estimator = final_estimator

    def combine(self, outs: List[np.ndarray]) -> np.ndarray:
        Z = stack_features(outs, self.problem_type)
        if self.problem_type == "regression":
            return np.asarray(self.final_estimator.predict(Z), dtype=float)
        return self._full(self.final_estimator.predict_proba(Z), self.final_estimator.classes_)
