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


def apply_isotonic(proba: np.ndarray, columns: List[int], knots_x: List[np.ndarray],
                   knots_y: List[np.ndarray]) -> np.ndarray:
    """Per-class isotonic maps (piecewise linear between knots, clipped at the ends), one-vs-rest.

    Binary (one map, on the positive column): the other column is 1 minus it. Multiclass (a map
    per class): rows are renormalised to sum to 1.
    """
    out = np.empty_like(proba, dtype=float)
    for col, xs, ys in zip(columns, knots_x, knots_y):
        out[:, col] = np.interp(proba[:, col], xs, ys)
    if proba.shape[1] == 2 and len(columns) == 1:
        out[:, 1 - columns[0]] = 1.0 - out[:, columns[0]]
        return out
    return out / out.sum(axis=1, keepdims=True)


@dataclass
class Calibrator:
    """Maps a model's class probabilities to calibrated ones; fitted on out-of-fold predictions
    by ``automl/selection/calibration.py``. Predicted labels never go through it."""

    method: str  # temperature | isotonic
    temperature: float = 1.0  # temperature: the softmax temperature of the log-probabilities
    columns: List[int] = field(default_factory=list)  # isotonic: the class column each map applies to
    knots_x: List[np.ndarray] = field(default_factory=list)  # isotonic: each map's scores ...
    knots_y: List[np.ndarray] = field(default_factory=list)  # ... and calibrated probabilities there

    def transform(self, proba: np.ndarray) -> np.ndarray:
        if self.method == "temperature":
            return apply_temperature(proba, self.temperature)
        return apply_isotonic(proba, self.columns, self.knots_x, self.knots_y)

    def describe(self) -> str:
        if self.method == "temperature":
            return f"temperature scaling (T={self.temperature:.3g})"
        return f"isotonic regression ({len(self.columns)} one-vs-rest map(s))"


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
    # Temperature of run folders written before `select.calibration` (fitted for logloss only);
    # newer models keep it in `calibration`.
    temperature: Optional[float] = None
    trial_id: str = ""
    candidate: str = ""
    metadata: Dict[str, Any] = field(default_factory=dict)
    # Calibrated probabilities (select.calibration); labels and the threshold use the raw ones.
    calibration: Optional[Calibrator] = None

    def check_columns(self, df: pd.DataFrame) -> None:
        require_columns(self.feature_columns, df.columns)

    def raw_matrix(self, df: pd.DataFrame) -> np.ndarray:
        """Regression predictions, or the model's own (uncalibrated) class probabilities in the
        order of ``classes``: what predicted labels and the tuned threshold are computed from."""
        self.check_columns(df)
        X = df[self.feature_columns]
        if self.problem_type == "regression":
            return np.asarray(self.pipeline.predict(X), dtype=float)
        proba = self.pipeline.predict_proba(X)
        if proba.shape[1] != len(self.classes):
            full = np.zeros((len(X), len(self.classes)))
            full[:, np.asarray(self.pipeline.classes_, dtype=int)] = proba
            proba = full
        return proba

    def calibrate(self, raw: np.ndarray) -> np.ndarray:
        """The probabilities users see, from ``raw_matrix``'s (regression values pass through)."""
        if self.problem_type == "regression":
            return raw
        if self.calibration is not None:  # a class default: models saved before it existed load as None
            return self.calibration.transform(raw)
        if self.temperature is not None:
            return apply_temperature(raw, self.temperature)
        return raw

    def predict_matrix(self, df: pd.DataFrame) -> np.ndarray:
        """Regression predictions, or calibrated class probabilities in the order of ``classes``."""
        return self.calibrate(self.raw_matrix(df))

    def labels_from_matrix(self, raw: np.ndarray) -> np.ndarray:
        """Predicted labels from ``raw_matrix``'s output (not the calibrated probabilities: a
        calibration never changes a label)."""
        if self.problem_type == "regression":
            return raw
        if self.threshold is not None and len(self.classes) == 2:
            pos = self.classes.index(self.positive_class)
            idx = np.where(raw[:, pos] >= self.threshold, pos, 1 - pos)
        else:
            idx = np.argmax(raw, axis=1)
        return np.asarray(self.classes, dtype=object)[idx]

    def predict(self, df: pd.DataFrame) -> np.ndarray:
        return self.labels_from_matrix(self.raw_matrix(df))

    def predict_proba(self, df: pd.DataFrame) -> pd.DataFrame:
        if self.problem_type == "regression":
            raise DataError("predict_proba is for classification; this model does regression, use predict")
        return pd.DataFrame(self.predict_matrix(df), columns=[str(c) for c in self.classes], index=df.index)

    def predict_frame(self, df: pd.DataFrame) -> pd.DataFrame:
        """Batch-prediction output: ``predicted_label`` plus ``proba_<class>`` per class."""
        raw = self.raw_matrix(df)
        out = pd.DataFrame({"predicted_label": self.labels_from_matrix(raw)}, index=df.index)
        if self.problem_type != "regression":
            m = self.calibrate(raw)
            for i, c in enumerate(self.classes):
                out[f"proba_{c}"] = m[:, i]
        return out.reset_index(drop=True)
