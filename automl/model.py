"""The saved model: a fitted scikit-learn pipeline plus what is needed to use it."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

import numpy as np
import pandas as pd

from automl.data.columns import require_columns
from automl.errors import DataError


def apply_temperature(proba: np.ndarray, temperature: float) -> np.ndarray:
    """Soften (T > 1) or sharpen (T < 1) class probabilities; arg-max is unchanged."""
    z = np.log(np.clip(proba, 1e-12, 1.0)) / temperature
    z -= z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def fit_temperature(y: np.ndarray, proba: np.ndarray) -> float:
    """The temperature that minimises log loss of out-of-fold probabilities."""
    from scipy.optimize import minimize_scalar
    from sklearn.metrics import log_loss

    labels = np.arange(proba.shape[1])
    res = minimize_scalar(lambda t: log_loss(y, apply_temperature(proba, t), labels=labels),
                          bounds=(0.05, 20.0), method="bounded")
    return float(res.x)


@dataclass
class ModelBundle:
    pipeline: Any
    problem_type: str
    target: str
    feature_columns: List[str]
    column_types: Dict[str, str]
    classes: List[Any] = field(default_factory=list)
    positive_class: Optional[Any] = None
    threshold: Optional[float] = None
    # Temperature applied to class probabilities (fitted on out-of-fold predictions for logloss).
    temperature: Optional[float] = None
    trial_id: str = ""
    candidate: str = ""
    metadata: Dict[str, Any] = field(default_factory=dict)

    def check_columns(self, df: pd.DataFrame) -> None:
        require_columns(self.feature_columns, df.columns)

    def predict_matrix(self, df: pd.DataFrame) -> np.ndarray:
        """Regression predictions, or class probabilities in the order of ``classes``."""
        self.check_columns(df)
        X = df[self.feature_columns]
        if self.problem_type == "regression":
            return np.asarray(self.pipeline.predict(X), dtype=float)
        proba = self.pipeline.predict_proba(X)
        if proba.shape[1] != len(self.classes):
            full = np.zeros((len(X), len(self.classes)))
            full[:, np.asarray(self.pipeline.classes_, dtype=int)] = proba
            proba = full
        if self.temperature is not None:
            proba = apply_temperature(proba, self.temperature)
        return proba

    def labels_from_matrix(self, m: np.ndarray) -> np.ndarray:
        if self.problem_type == "regression":
            return m
        if self.threshold is not None and len(self.classes) == 2:
            pos = self.classes.index(self.positive_class)
            idx = np.where(m[:, pos] >= self.threshold, pos, 1 - pos)
        else:
            idx = np.argmax(m, axis=1)
        return np.asarray(self.classes, dtype=object)[idx]

    def predict(self, df: pd.DataFrame) -> np.ndarray:
        return self.labels_from_matrix(self.predict_matrix(df))

    def predict_proba(self, df: pd.DataFrame) -> pd.DataFrame:
        if self.problem_type == "regression":
            raise DataError("predict_proba is for classification; this model does regression, use predict")
        return pd.DataFrame(self.predict_matrix(df), columns=[str(c) for c in self.classes], index=df.index)

    def predict_frame(self, df: pd.DataFrame) -> pd.DataFrame:
        """Batch-prediction output: ``predicted_label`` plus ``proba_<class>`` per class."""
        m = self.predict_matrix(df)
        out = pd.DataFrame({"predicted_label": self.labels_from_matrix(m)}, index=df.index)
        if self.problem_type != "regression":
            for i, c in enumerate(self.classes):
                out[f"proba_{c}"] = m[:, i]
        return out.reset_index(drop=True)
