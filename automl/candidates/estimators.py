"""Small scikit-learn estimators that the registry needs and scikit-learn lacks."""
from __future__ import annotations

from functools import lru_cache

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.svm import SVC


def relative_gamma(X, factor: float) -> float:
    """``factor`` times scikit-learn's ``gamma="scale"`` (1 / (n_features * Var(X))): an RBF
    width that means the same whatever the scale of the processed features."""
    from scipy import sparse

    var = (X.multiply(X)).mean() - X.mean() ** 2 if sparse.issparse(X) else np.asarray(X, dtype=float).var()
    return float(factor) / (X.shape[1] * var) if var > 0 else float(factor)


class RelativeGammaSVR(BaseEstimator):
    """scikit-learn's SVR (RBF) with ``gamma = gamma_factor * 1 / (n_features * Var(X))``."""

    def __init__(self, C: float = 1.0, epsilon: float = 0.1, gamma_factor: float = 1.0):
        self.C = C
        self.epsilon = epsilon
        self.gamma_factor = gamma_factor

    def fit(self, X, y, sample_weight=None):
        from sklearn.svm import SVR

        self.svr_ = SVR(C=self.C, epsilon=self.epsilon, gamma=relative_gamma(X, self.gamma_factor))
        self.svr_.fit(X, y, sample_weight=sample_weight)
        return self

    def predict(self, X):
        return self.svr_.predict(X)


@lru_cache(maxsize=None)
def _pair_tables(n_classes: int) -> tuple:
    """For each class, the indices of its pairs in scikit-learn's pair order and the sign its
    confidence takes there (built once per class count: the endpoint calls this per request)."""
    index = np.empty((n_classes, n_classes - 1), dtype=int)
    sign = np.empty((n_classes, n_classes - 1))
    fill = [0] * n_classes
    pairs = ((i, j) for i in range(n_classes) for j in range(i + 1, n_classes))
    for k, (i, j) in enumerate(pairs):
        index[i, fill[i]], sign[i, fill[i]] = k, 1.0  # confidence is -dec: class i gets -(-dec)
        index[j, fill[j]], sign[j, fill[j]] = k, -1.0
        fill[i] += 1
        fill[j] += 1
    index.flags.writeable = sign.flags.writeable = False  # shared by every call
    return index, sign


def ovr_from_ovo(dec: np.ndarray, n_classes: int) -> np.ndarray:
    """One-vs-rest decision values from one-vs-one margins, as scikit-learn's
    ``_ovr_decision_function(dec < 0, -dec, n_classes)`` computes them, vectorised.

    scikit-learn loops over the class pairs in order, adding each pair's confidence to its two
    classes. Here each class's contributions are laid out in that same pair order and summed
    with ``cumsum`` (a strictly sequential sum), so every float is the same.
    """
    index, sign = _pair_tables(n_classes)
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

    def __init__(self, C: float = 1.0, gamma="scale", kernel: str = "rbf", temperature: float = 1.0,
                 gamma_factor=None):
        self.C = C
        self.gamma = gamma
        self.kernel = kernel
        self.temperature = temperature
        self.gamma_factor = gamma_factor

    def fit(self, X, y, sample_weight=None):
        gamma = relative_gamma(X, self.gamma_factor) if self.gamma_factor is not None else self.gamma
        # "ovo": decision_function gives the pairwise margins, turned into one-vs-rest values by
        # ovr_from_ovo (predict() does not use it)
        self.svc_ = SVC(C=self.C, gamma=gamma, kernel=self.kernel, decision_function_shape="ovo")
        self.svc_.fit(X, y, sample_weight=sample_weight)
        self.classes_ = self.svc_.classes_
        return self

    def decision_function(self, X):
        """scikit-learn's one-vs-rest decision values, computed from the pairwise ones without
        its per-pair Python loop (see :func:`ovr_from_ovo`; the same floats)."""
        svc = self.svc_
        if len(svc.classes_) <= 2:
            return svc.decision_function(X)
        if svc.decision_function_shape != "ovo":  # a model saved before SoftmaxSVC fitted with "ovo"
            svc.decision_function_shape = "ovo"
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


def signed_log(y):
    return np.sign(y) * np.log1p(np.abs(y))


def _signed_exp(z):
    return np.sign(z) * np.expm1(np.abs(z))


class TargetTransformRegressor(BaseEstimator):
    """Fit a regressor on a transformed target and invert its predictions.

    ``transform``: ``log`` (signed log1p) or ``none``; ``standardize`` then centres and scales
    the (transformed) target by its training mean and standard deviation, which neural networks
    and SVR need (their defaults assume targets of order one). Unlike scikit-learn's
    TransformedTargetRegressor it also transforms an ``eval_set``, so boosting can stop early
    on validation rounds in the transformed space.
    """

    def __init__(self, regressor=None, transform: str = "log", standardize: bool = False):
        self.regressor = regressor
        self.transform = transform
        self.standardize = standardize

    def _g(self, y):
        return signed_log(np.asarray(y, dtype=float)) if self.transform == "log" else np.asarray(y, dtype=float)

    def _f(self, y):
        z = self._g(y)
        if getattr(self, "scale_", None) is not None:
            z = (z - self.scale_[0]) / self.scale_[1]
        return z

    def fit(self, X, y, eval_set=None, **fit_params):
        from sklearn.base import clone

        self.scale_ = None
        if self.standardize:
            z = self._g(y)
            self.scale_ = (float(z.mean()), float(z.std()) or 1.0)
        self.regressor_ = clone(self.regressor)
        if eval_set is not None:
            fit_params["eval_set"] = [(Xv, self._f(yv)) for Xv, yv in eval_set]
        if fit_params.get("eval_y") is not None:  # LightGBM >= 4.7 names the validation target eval_y
            fit_params["eval_y"] = tuple(self._f(yv) for yv in fit_params["eval_y"])
        self.regressor_.fit(X, self._f(y), **fit_params)
        return self

    def predict(self, X):
        z = np.asarray(self.regressor_.predict(X), dtype=float)
        if getattr(self, "scale_", None) is not None:
            z = z * self.scale_[1] + self.scale_[0]
        return _signed_exp(z) if self.transform == "log" else z

    @property
    def best_iteration(self):
        return self.regressor_.best_iteration
