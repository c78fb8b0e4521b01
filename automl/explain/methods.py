"""Exact contributions of one fitted model on its processed feature matrix.

Each function returns :class:`Raw`: ``values`` (rows, outputs, processed columns), ``base``
(rows, outputs), the output space and the method, or ``None`` when it does not handle the model.
The outputs are the model's own: one for regression and for a binary margin (log-odds of the
model's second class), one per class otherwise. Additivity: ``base + values.sum(-1)`` is the
model's raw output in ``space``.

- XGBoost, LightGBM, CatBoost: the library's own exact TreeSHAP (``pred_contribs``,
  ``pred_contrib``, ``ShapValues``), in margin space (log-odds; per-class logits for multiclass).
- scikit-learn forests (and histogram gradient boosting): the ``shap`` package's TreeExplainer
  (path-dependent TreeSHAP, exact), when ``automl[explain]`` is installed; forests explain
  their probabilities, histogram boosting its margin.
- Linear models: exact from the coefficients, ``coef * (x - mean)`` with the mean over the
  background rows; base ``intercept + coef . mean``.
"""
from __future__ import annotations

import importlib.util
import logging
import weakref
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

log = logging.getLogger(__name__)

MARGIN, PROBABILITY, VALUE = "margin", "probability", "value"


@dataclass
class Raw:
    values: np.ndarray  # (rows, outputs, processed columns)
    base: np.ndarray  # (rows, outputs)
    space: str
    method: str


def _dense(X: Any) -> np.ndarray:
    return np.asarray(X.toarray() if hasattr(X, "toarray") else X, dtype=float)


def _split_bias(c: np.ndarray, n_rows: int) -> tuple[np.ndarray, np.ndarray]:
    """Contributions with the bias as the last column: (rows, p+1) or (rows, outputs, p+1)."""
    c = np.asarray(c, dtype=float).reshape(n_rows, -1, c.shape[-1])
    return c[..., :-1], c[..., -1]


def _xgboost(model: Any, X: Any) -> Optional[Raw]:
    if type(model).__module__.split(".")[0] != "xgboost" or not hasattr(model, "get_booster"):
        return None
    import xgboost as xgb

    try:
        rounds = (0, int(model.best_iteration) + 1)  # early-stopped: predict uses the best rounds too
    except AttributeError:
        rounds = (0, 0)
    dm = xgb.DMatrix(X, missing=model.missing if model.missing is not None else np.nan)
    c = model.get_booster().predict(dm, pred_contribs=True, iteration_range=rounds)
    values, base = _split_bias(c, X.shape[0])
    return Raw(values, base, MARGIN if hasattr(model, "classes_") else VALUE, "TreeSHAP (XGBoost pred_contribs)")


def _lightgbm(model: Any, X: Any) -> Optional[Raw]:
    if type(model).__module__.split(".")[0] != "lightgbm":
        return None
    c = np.asarray(model.predict(_dense(X), pred_contrib=True), dtype=float)
    n_out = 1 if not hasattr(model, "classes_") or len(model.classes_) <= 2 else len(model.classes_)
    values, base = _split_bias(c.reshape(X.shape[0], n_out, -1), X.shape[0])
    return Raw(values, base, MARGIN if hasattr(model, "classes_") else VALUE, "TreeSHAP (LightGBM pred_contrib)")


def _is_catboost(model: Any) -> bool:
    """A CatBoost model, or automl's subclass for native categoricals (candidates/native_catboost.py)."""
    return any(c.__module__.split(".")[0] == "catboost" for c in type(model).__mro__)


def _catboost(model: Any, X: Any) -> Optional[Raw]:
    if not _is_catboost(model):
        return None
    from catboost import Pool

    cats = list(model.get_cat_feature_indices())  # categorical: native keeps strings in those columns
    data = Pool(np.asarray(X, dtype=object), cat_features=cats) if cats else Pool(_dense(X))
    c = np.asarray(model.get_feature_importance(data=data, type="ShapValues"), dtype=float)
    values, base = _split_bias(c, X.shape[0])
    return Raw(values, base, MARGIN if hasattr(model, "classes_") else VALUE, "TreeSHAP (CatBoost ShapValues)")


SHAP_FORESTS = ("RandomForestClassifier", "RandomForestRegressor", "ExtraTreesClassifier", "ExtraTreesRegressor")
SHAP_BOOSTING = ("HistGradientBoostingClassifier", "HistGradientBoostingRegressor")


_TREE_EXPLAINERS: "weakref.WeakKeyDictionary[Any, Any]" = weakref.WeakKeyDictionary()


def shap_available() -> bool:
    return importlib.util.find_spec("shap") is not None


def _shap_tree(model: Any, X: Any) -> Optional[Raw]:
    """scikit-learn trees through shap's TreeExplainer (path-dependent TreeSHAP: no background)."""
    name = type(model).__name__
    if type(model).__module__.split(".")[0] != "sklearn" or name not in SHAP_FORESTS + SHAP_BOOSTING:
        return None
    if not shap_available():
        return None
    import shap

    Xd = _dense(X)
    try:
        explainer = _TREE_EXPLAINERS.get(model)
        if explainer is None:  # reading the trees costs more than explaining a row: once per model
            explainer = _TREE_EXPLAINERS[model] = shap.TreeExplainer(model)
        sv = explainer.shap_values(Xd, check_additivity=False)
    except Exception as exc:  # a model shap does not support (e.g. multiclass histogram boosting)
        log.info("shap TreeExplainer cannot explain %s (%s); using the model-agnostic estimate", name, exc)
        return None
    if isinstance(sv, list):  # older shap: one (rows, p) array per output
        sv = np.stack([np.asarray(s) for s in sv], axis=-1)
    sv = np.asarray(sv, dtype=float)
    sv = sv[:, None, :] if sv.ndim == 2 else sv.transpose(0, 2, 1)  # shap >= 0.45: (rows, p, outputs)
    base = np.broadcast_to(np.atleast_1d(np.asarray(explainer.expected_value, dtype=float)),
                           (Xd.shape[0], sv.shape[1])).copy()
    space = PROBABILITY if name in SHAP_FORESTS and hasattr(model, "classes_") else (
        MARGIN if hasattr(model, "classes_") else VALUE)
    return Raw(sv, base, space, "TreeSHAP (shap TreeExplainer, path-dependent)")


def _linear(model: Any, X: Any, mean: Optional[np.ndarray]) -> Optional[Raw]:
    if type(model).__module__.split(".")[0] != "sklearn" or ".linear_model" not in type(model).__module__:
        return None
    if not hasattr(model, "coef_") or not hasattr(model, "intercept_"):
        return None
    Xd = _dense(X)
    coef = np.atleast_2d(np.asarray(model.coef_, dtype=float))  # (outputs, p)
    intercept = np.atleast_1d(np.asarray(model.intercept_, dtype=float))
    mu = np.zeros(Xd.shape[1]) if mean is None else np.asarray(mean, dtype=float)
    values = coef[None, :, :] * (Xd - mu)[:, None, :]
    base = np.broadcast_to(intercept + coef @ mu, (Xd.shape[0], coef.shape[0])).copy()
    return Raw(values, base, MARGIN if hasattr(model, "classes_") else VALUE, "exact (linear coefficients)")


def exact_contributions(model: Any, X: Any, mean: Optional[np.ndarray] = None) -> Optional[Raw]:
    """The model's exact contributions on processed rows ``X``; None when no exact method applies."""
    for fn in (_xgboost, _lightgbm, _catboost, _shap_tree):
        raw = fn(model, X)
        if raw is not None:
            return raw
    return _linear(model, X, mean)


def has_exact_method(model: Any) -> bool:
    """Whether :func:`exact_contributions` handles this model (without computing anything)."""
    top = type(model).__module__.split(".")[0]
    name = type(model).__name__
    if _is_catboost(model):
        return True
    if top in ("xgboost", "lightgbm", "catboost"):
        return hasattr(model, "get_booster") or top != "xgboost"
    if top == "sklearn" and name in SHAP_FORESTS + SHAP_BOOSTING:
        return shap_available()
    return top == "sklearn" and ".linear_model" in type(model).__module__ and hasattr(model, "coef_")
