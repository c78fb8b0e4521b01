"""CatBoost on string categoricals (``processing.categorical: native``).

CatBoost splits on categories itself (ordered target statistics), which is its strength on tables
with many categorical columns. It needs to be told which columns hold them: ``cat_features``, here
a tuple of column positions (the native block comes first, see candidates/processing.py). CatBoost
copies a list it is given, which scikit-learn's ``clone`` refuses, and refuses a tuple at fit; these
classes keep the tuple as a parameter and hand CatBoost a list when they fit. Imported only when a
candidate asks for native categoricals, so catboost stays optional.
"""
from __future__ import annotations

from typing import Any

import catboost as cb


def _fit_with_list(model: Any, fit: Any, X: Any, y: Any, **kwargs: Any) -> Any:
    cats = model._init_params.get("cat_features")
    if not isinstance(cats, tuple):
        return fit(X, y, **kwargs)
    model._init_params["cat_features"] = list(cats)
    try:
        return fit(X, y, **kwargs)
    finally:
        model._init_params["cat_features"] = cats


class NativeCatBoostClassifier(cb.CatBoostClassifier):
    """CatBoostClassifier whose ``cat_features`` is a tuple (clonable by scikit-learn)."""

    def fit(self, X, y=None, **kwargs):
        return _fit_with_list(self, super().fit, X, y, **kwargs)


class NativeCatBoostRegressor(cb.CatBoostRegressor):
    """CatBoostRegressor whose ``cat_features`` is a tuple (clonable by scikit-learn)."""

    def fit(self, X, y=None, **kwargs):
        return _fit_with_list(self, super().fit, X, y, **kwargs)
