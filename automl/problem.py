"""Problem-type inference, target encoding and the class-balance check."""
from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field
from typing import List, Optional

import numpy as np
import pandas as pd

from automl.errors import ConfigError, DataError
from automl.metrics import METRICS, default_metric

log = logging.getLogger(__name__)

MAX_INT_CLASSES = 20
# A classification target is taken for an ID or a timestamp when at least this share of its rows
# hold a value that no other row has (a class of one row cannot be learned or validated).
ID_LIKE_SINGLETON_SHARE = 0.5
MIN_ROWS_PER_CLASS = 2  # below: a one-line error (cross-validation needs 2 rows of every class)
MIN_ROWS = 5  # below: a one-line error (too few rows to train and validate anything)
_POSITIVE_NAMES = {"1", "true", "yes", "y", "t", "positive", "pos", "bad", "churn"}


@dataclass
class ProblemInfo:
    problem_type: str
    metric: str
    greater_is_better: bool
    reason: str
    classes: List = field(default_factory=list)
    positive_class: Optional[object] = None
    imbalance_ratio: Optional[float] = None

    @property
    def pos_index(self) -> int:
        if self.positive_class is None or not self.classes:
            return 1
        return self.classes.index(self.positive_class)


def _python(v):
    return v.item() if hasattr(v, "item") else v


def infer_problem_type(y: pd.Series) -> tuple[str, str]:
    """Return (problem_type, why) for a target column with missing values removed."""
    n_unique = y.nunique()
    if n_unique == 2:
        return "binary", f"the target has exactly 2 distinct values ({', '.join(map(str, sorted(y.unique(), key=str)))})"
    numeric = pd.api.types.is_numeric_dtype(y) and not pd.api.types.is_bool_dtype(y)
    if not numeric:
        return "multiclass", f"the target is non-numeric with {n_unique} distinct values"
    values = y.to_numpy(dtype=float)
    integral = np.all(np.isfinite(values)) and np.all(np.mod(values, 1) == 0)
    if integral and n_unique <= MAX_INT_CLASSES:
        return "multiclass", (
            f"the target is integer-valued with {n_unique} distinct values (<= {MAX_INT_CLASSES})"
        )
    kind = "integer" if integral else "real"
    return "regression", f"the target is {kind}-valued with {n_unique} distinct values"


def _positive_class(classes: list, counts: pd.Series):
    for c in classes:
        if str(c).strip().lower() in _POSITIVE_NAMES:
            return c
    return counts.idxmin()  # the minority class is what f1/precision/recall are about


def resolve_problem(y: pd.Series, problem_type: str, metric: str, target: str) -> ProblemInfo:
    """Decide the problem type and metric, validate them against the target, record why."""
    y = y.dropna()
    if y.empty:
        raise DataError(f"target column '{target}' is all missing; choose a target with values")
    if y.nunique() < 2:
        raise DataError(
            f"target column '{target}' has a single value ({y.iloc[0]!r}); nothing to learn. "
            "Choose another target column"
        )
    if problem_type == "auto":
        problem_type, reason = infer_problem_type(y)
    else:
        reason = "given by the user (problem_type)"
        if problem_type == "regression" and not pd.api.types.is_numeric_dtype(y):
            coerced = pd.to_numeric(y, errors="coerce")
            if coerced.isna().any():
                raise DataError(
                    f"problem_type=regression needs a numeric target, but '{target}' has values "
                    f"such as {y[coerced.isna()].iloc[0]!r}; use problem_type=multiclass or binary"
                )
        if problem_type == "binary" and y.nunique() != 2:
            raise DataError(
                f"problem_type=binary needs 2 classes, but '{target}' has {y.nunique()}; "
                "use problem_type=multiclass or auto"
            )
    if metric == "auto":
        metric = default_metric(problem_type)
    elif metric not in METRICS[problem_type]:
        raise ConfigError(
            f"metric '{metric}' does not fit problem_type={problem_type} (inferred: {reason}); "
            f"use one of {', '.join(METRICS[problem_type])}"
        )
    info = ProblemInfo(problem_type, metric, METRICS[problem_type][metric].greater_is_better, reason)
    if problem_type != "regression":
        check_labels(y, target)
        counts = y.value_counts()
        info.classes = sorted((_python(c) for c in counts.index), key=lambda c: (str(type(c)), c))
        info.imbalance_ratio = float(counts.min() / counts.max())
        if problem_type == "binary":
            info.positive_class = _python(_positive_class(info.classes, counts))
        if info.imbalance_ratio < 0.2:
            log.warning(
                "classes are imbalanced: the rarest class has %.1f%% of the majority's rows (%s); "
                "consider metric=%s",
                100 * info.imbalance_ratio,
                ", ".join(f"{k}: {v}" for k, v in counts.items()),
                "balanced_accuracy" if problem_type == "multiclass" else "auc or balanced_accuracy",
            )
    return info


def _looks_like_time(y: pd.Series) -> bool:
    if pd.api.types.is_datetime64_any_dtype(y):
        return True
    if pd.api.types.is_numeric_dtype(y) or pd.api.types.is_bool_dtype(y):
        return False
    sample = y.astype(str).head(200)
    if not sample.str.contains(r"\d", regex=True).all():
        return False
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        parsed = pd.to_datetime(sample, errors="coerce", format="mixed")
    return bool(parsed.notna().mean() >= 0.9)


def check_labels(y: pd.Series, target: str) -> None:
    """Stop when a classification target looks like an ID or a timestamp: at least
    ``ID_LIKE_SINGLETON_SHARE`` of its rows hold a value no other row has."""
    counts = y.value_counts()
    if len(counts) <= 2:
        return
    singletons = int((counts == 1).sum())
    if singletons < ID_LIKE_SINGLETON_SHARE * len(y):
        return
    example = y[y.map(counts) == 1].iloc[0]
    what = f"{singletons} of its {len(y)} rows have a value no other row has, e.g. {example!r}"
    if _looks_like_time(y):
        raise DataError(f"target column '{target}' looks like a timestamp ({what}), not a class label; choose "
                        "another target, or convert it to a number (e.g. seconds since 1970) and use "
                        "problem_type=regression")
    numeric = pd.to_numeric(y, errors="coerce").notna().all()
    fix = ("if it is a quantity, use problem_type=regression; otherwise choose another target column"
           if numeric else "choose another target column (one with repeated class labels)")
    raise DataError(f"target column '{target}' looks like an ID ({what}), not a class label: "
                    f"{len(counts)} classes of mostly one row each cannot be learned; {fix}")


def check_enough_rows(y: pd.Series, problem_type: str, target: str) -> None:
    """Stop on data too small to train and validate: fewer than ``MIN_ROWS`` rows, or a class with
    fewer than ``MIN_ROWS_PER_CLASS`` rows."""
    y = y.dropna()
    if len(y) < MIN_ROWS:
        raise DataError(f"the data has {len(y)} rows with a target; automl needs at least {MIN_ROWS} "
                        "(cross-validation trains on some rows and scores the others); give more rows")
    if problem_type == "regression":
        return
    counts = y.value_counts()
    rare = counts[counts < MIN_ROWS_PER_CLASS]
    if len(rare):
        shown = ", ".join(f"{_python(c)!r} ({n} row{'s' if n != 1 else ''})" for c, n in rare.head(5).items())
        more = f" and {len(rare) - 5} more" if len(rare) > 5 else ""
        raise DataError(f"target column '{target}': class {shown}{more} has fewer than {MIN_ROWS_PER_CLASS} rows; "
                        f"every class needs at least {MIN_ROWS_PER_CLASS} (one to train on, one to validate). "
                        "Add rows, merge rare classes, or drop their rows")


def encode_target(y: pd.Series, info: ProblemInfo) -> np.ndarray:
    if info.problem_type == "regression":
        return pd.to_numeric(y).to_numpy(dtype=float)
    lookup = {c: i for i, c in enumerate(info.classes)}
    return np.array([lookup[_python(v)] for v in y], dtype=int)
