"""Per-row sample weights: ``data.weight_column=COL`` or ``data.weights=balanced``.

The weights reach every fit (each algorithm's own ``sample_weight``), every metric (scikit-learn's
weighted scores), the ensemble selection, the re-rank and the test score. The weight column is
never a feature. A missing, non-numeric, infinite or negative weight is an error naming the
column, the count and an example, never a silent drop: the user decides what such a row means.
See docs/validation.md.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Dict, Optional

import numpy as np
import pandas as pd

from automl.errors import ConfigError, DataError

log = logging.getLogger(__name__)
WEIGHT_MODES = ("balanced",)


@dataclass
class Weighting:
    """Where a row's weight comes from: its value in ``column``, or its class (``balanced``)."""

    column: Optional[str] = None
    mode: str = "column"  # column | balanced
    class_weights: Dict[Any, float] = field(default_factory=dict)  # balanced: weight of each class label

    def of(self, df: pd.DataFrame, target: str, where: str = "training") -> Optional[np.ndarray]:
        """The weights of ``df``'s rows; None for test data that lacks the weight column."""
        if self.mode == "balanced":
            return np.array([self.class_weights.get(_python(v), 1.0) for v in df[target]], dtype=float)
        if self.column not in df.columns:
            log.warning("the %s data has no weight column '%s': its scores are unweighted", where, self.column)
            return None
        return check_weights(df[self.column], self.column, where)

    def record(self, weights: Optional[np.ndarray]) -> Dict[str, Any]:
        """For summary.json: how rows were weighted, and the weights' range."""
        rec: Dict[str, Any] = {"mode": self.mode, "column": self.column}
        if self.class_weights:
            rec["class_weights"] = {str(k): round(float(v), 6) for k, v in self.class_weights.items()}
        if weights is not None and len(weights):
            rec.update({"sum": float(weights.sum()), "min": float(weights.min()), "max": float(weights.max()),
                        "n_zero": int((weights == 0).sum())})
        return rec


def _python(v: Any) -> Any:
    return v.item() if hasattr(v, "item") else v


def weighting_for(data_cfg: Any, problem_type: str) -> Optional[Weighting]:
    """The run's weighting from ``data.weight_column`` / ``data.weights`` (None: unweighted)."""
    column, mode = data_cfg.get("weight_column"), data_cfg.get("weights")
    if mode == "balanced":
        if problem_type == "regression":
            raise ConfigError("data.weights=balanced weighs classes, but this is a regression problem; use "
                              "data.weight_column=COL for per-row weights, or drop data.weights")
        return Weighting(None, "balanced")
    return Weighting(str(column)) if column else None


def check_weights(values: pd.Series, column: str, where: str = "training") -> np.ndarray:
    """``values`` as float weights; an error when any is missing, not a number, infinite or
    negative, or when they sum to zero."""
    w = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)
    bad = ~np.isfinite(w) | (w < 0)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        example = _python(values.iloc[first])
        raise DataError(f"data.weight_column '{column}': {int(bad.sum())} of {len(w)} {where} rows have a missing, "
                        f"non-numeric or negative weight (e.g. row {first}: {example!r}); give every row a finite "
                        "weight >= 0, or drop those rows")
    if len(w) and not w.sum() > 0:
        raise DataError(f"data.weight_column '{column}': every {where} weight is 0; give some rows a positive weight")
    return w


def balanced_weights(weighting: Weighting, y: pd.Series) -> Weighting:
    """``weighting`` with class weights n / (k * n_class) from the training target ``y``
    (scikit-learn's ``class_weight='balanced'``), so every class weighs the same in total."""
    counts = y.value_counts()
    weighting.class_weights = {_python(c): len(y) / (len(counts) * int(n)) for c, n in counts.items()}
    return weighting


def weights_from_record(record: Optional[Dict[str, Any]], df: pd.DataFrame, target: str) -> Optional[np.ndarray]:
    """The rows' weights as a finished run's summary.json ``sample_weights`` record says (the
    refit of any trial from ``data/train.parquet``); None for an unweighted run."""
    if not record:
        return None
    if record.get("mode") == "balanced":
        by_label = {str(k): float(v) for k, v in (record.get("class_weights") or {}).items()}
        return np.array([by_label.get(str(_python(v)), 1.0) for v in df[target]], dtype=float)
    return Weighting(record.get("column")).of(df, target)
