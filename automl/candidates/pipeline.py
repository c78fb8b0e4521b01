"""A candidate and its parameters as one fitted-ready scikit-learn pipeline, and its predictions.

Used by the search's trials, the selection stage's refits and the run folder's refit of any
trial (automl/rundir/refit.py), so a trial's model is built the same way everywhere.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Dict

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from automl.candidates.algorithms import get_algorithm, make_estimator
from automl.candidates.estimators import TargetTransformRegressor
from automl.candidates.processing import build_preprocessor, native_categoricals
from automl.candidates.space import split_params
from automl.errors import ConfigError

if TYPE_CHECKING:
    from automl.candidates.candidate import Candidate


def build_pipeline(candidate: "Candidate", params: Dict[str, Any], column_types: Dict[str, str],
                   problem_type: str, seed: int) -> Pipeline:
    """The candidate as one scikit-learn estimator: processing steps then the model."""
    model_params, pre_params = split_params({**candidate.space.get("fixed", {}), **params})
    processing = {**candidate.processing, **pre_params}
    target_transform = processing.pop("target_transform", "none")
    pre = build_preprocessor(column_types, processing, problem_type)
    cat_features = native_categoricals(column_types, processing)
    if processing.get("categorical") == "native" and not get_algorithm(candidate.algorithm).native_categoricals:
        raise ConfigError(f"candidate {candidate.name}: processing categorical=native needs an algorithm that "
                          f"splits on categories itself (catboost); use onehot or ordinal for {candidate.algorithm}")
    if cat_features:
        model_params = {**model_params, "cat_features": cat_features}
    model = make_estimator(candidate.algorithm, problem_type, model_params, seed)
    scale_target = problem_type == "regression" and get_algorithm(candidate.algorithm).scale_target
    if problem_type == "regression" and (target_transform not in (None, "none") or scale_target):
        model = TargetTransformRegressor(model, transform=target_transform or "none", standardize=scale_target)
    return Pipeline(pre.steps + [("model", model)])


def predict_matrix(pipeline: Pipeline, X: pd.DataFrame, problem_type: str, n_classes: int) -> np.ndarray:
    """Regression: predictions. Classification: probabilities over all run classes."""
    if problem_type == "regression":
        return np.asarray(pipeline.predict(X), dtype=float)
    proba = pipeline.predict_proba(X)
    seen = np.asarray(pipeline.classes_, dtype=int)
    if len(seen) == n_classes:
        return proba
    full = np.zeros((len(X), n_classes))
    full[:, seen] = proba  # a class absent from this fold gets probability 0
    return full
