"""Small scikit-learn estimators that the registry needs and scikit-learn lacks."""
from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.svm import SVC


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

    def predict_proba(self, X):
        d = np.asarray(self.svc_.decision_function(X), dtype=float)
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
