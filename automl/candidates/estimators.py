"""Small scikit-learn estimators that the registry needs and scikit-learn lacks."""
from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.svm import SVC


def ovr_from_ovo(dec: np.ndarray, n_classes: int) -> np.ndarray:
    """One-vs-rest decision values from one-vs-one margins, as scikit-learn's
    ``_ovr_decision_function(dec < 0, -dec, n_classes)`` computes them, vectorised.

    scikit-learn loops over the class pairs in order, adding each pair's confidence to its two
    classes. Here each class's contributions are laid out in that same pair order and summed
    with ``cumsum`` (a strictly sequential sum), so every float is the same.
    """
    pairs = [(i, j) for i in range(n_classes) for j in range(i + 1, n_classes)]
    index = np.empty((n_classes, n_classes - 1), dtype=int)
    sign = np.empty((n_classes, n_classes - 1))
    fill = [0] * n_classes
    for k, (i, j) in enumerate(pairs):
        index[i, fill[i]], sign[i, fill[i]] = k, 1.0  # confidence is -dec: class i gets -(-dec)
        index[j, fill[j]], sign[j, fill[j]] = k, -1.0
        fill[i] += 1
        fill[j] += 1
    contrib = dec[:, index] * sign  # (rows, classes, pairs of the class)
    sums = np.cumsum(contrib, axis=2)[:, :, -1]
    wins = (dec[:, index] >= 0) == (sign > 0)  # dec >= 0: the pair's first class wins
    votes = wins.sum(axis=2).astype(float)
    return votes + sums / (3 * (np.abs(sums) + 1))


class SoftmaxSVC(ClassifierMixin, BaseEstimator):
    """An RBF SVC whose probabilities are a softmax of its decision function.

    Unlike ``SVC(probability=True)`` (deprecated, and 5x slower through internal Platt CV),
    the arg-max of ``predict_proba`` always equals ``predict``.
    """

    def __init__(self, C: float = 1.0, gamma="scale", kernel: str = "rbf", temperature: float = 1.0):
        self.C = C
        self.gamma = gamma
        self.kernel = kernel
        self.temperature = temperature

    def fit(self, X, y):
        self.svc_ = SVC(C=self.C, gamma=self.gamma, kernel=self.kernel, decision_function_shape="ovr")
        self.svc_.fit(X, y)
        self.classes_ = self.svc_.classes_
        return self

    def decision_function(self, X):
        """scikit-learn's one-vs-rest decision values, computed from the pairwise ones without
        its per-pair Python loop (see :func:`ovr_from_ovo`; the same floats)."""
        svc = self.svc_
        if len(svc.classes_) <= 2:
            return svc.decision_function(X)
        if svc.decision_function_shape != "ovo":
            svc.decision_function_shape = "ovo"  # raw pairwise margins; predict() does not use it
        return ovr_from_ovo(np.asarray(svc.decision_function(X), dtype=float), len(svc.classes_))

    def predict_proba(self, X):
        d = np.asarray(self.decision_function(X), dtype=float)
        if d.ndim == 1:  # binary: one margin for the second class
            d = np.column_stack([-d, d])
        z = d / max(self.temperature, 1e-6)
        z -= z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)

    def predict(self, X):
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]


def _signed_log(y):
    return np.sign(y) * np.log1p(np.abs(y))


def _signed_exp(z):
    return np.sign(z) * np.expm1(np.abs(z))


class TargetTransformRegressor(BaseEstimator):
    """Fit a regressor on a transformed target (``log``: signed log1p) and invert predictions.

    Unlike scikit-learn's TransformedTargetRegressor it also transforms an ``eval_set``, so
    boosting can stop early on validation rounds in the transformed space.
    """

    def __init__(self, regressor=None, transform: str = "log"):
        self.regressor = regressor
        self.transform = transform

    def _f(self, y):
        return _signed_log(np.asarray(y, dtype=float)) if self.transform == "log" else np.asarray(y, dtype=float)

    def fit(self, X, y, eval_set=None, **fit_params):
        from sklearn.base import clone

        self.regressor_ = clone(self.regressor)
        if eval_set is not None:
            fit_params["eval_set"] = [(Xv, self._f(yv)) for Xv, yv in eval_set]
        self.regressor_.fit(X, self._f(y), **fit_params)
        return self

    def predict(self, X):
        z = np.asarray(self.regressor_.predict(X), dtype=float)
        return _signed_exp(z) if self.transform == "log" else z

    @property
    def best_iteration(self):
        return self.regressor_.best_iteration
