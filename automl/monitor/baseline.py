"""The data-quality baseline: per-feature statistics and constraints of the training data.

Every fit writes ``baseline/statistics.json`` and ``baseline/constraints.json``; `automl monitor`
compares later batches against them. The same column summaries (:func:`column_statistics`) serve
the baseline and each checked batch, so the two are computed identically.
"""
from __future__ import annotations

import copy
import datetime as _dt
import logging
import time
import warnings
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import pandas as pd

from automl import artifacts as art
from automl.data.types import FEATURE_TYPES
from automl.rundir.layout import BASELINE_DIR, CONSTRAINTS_FILE, STATISTICS_FILE, TRAIN_DATA_FILE

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
QUANTILES = (0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99)
N_BINS = 10  # equal-frequency bins of the baseline histogram (also the drift bins)
MAX_CATEGORIES = 1000  # categorical columns with more distinct values get no domain constraint

# Monitoring thresholds written into constraints.json (the user may edit them there).
DEFAULT_MONITORING: Dict[str, Dict[str, Any]] = {
    "data_type_check": {"enabled": True, "max_invalid_increase": 0.05},
    "completeness_check": {"enabled": True, "max_missing_increase": 0.1},
    "baseline_drift_check": {"enabled": True, "numeric_method": "psi", "numeric_threshold": 0.25,
                             "categorical_method": "linf", "categorical_threshold": 0.1},
    "missing_column_check": {"enabled": True},
    "extra_column_check": {"enabled": True},
    "categorical_values_check": {"enabled": True, "max_unknown_fraction": 0.05},
    # Off by default: the features' mean-|SHAP| ranking against baseline/attributions.json (NDCG at k).
    "attribution_drift_check": {"enabled": False, "k": 10, "threshold": 0.9, "max_rows": 500},
    # With ground_truth=URL: the run's metrics on labelled captured rows against the model_quality list
    # (automl/monitor/quality.py); fires when the metric's bootstrap interval is wholly past the threshold.
    "model_quality_check": {"enabled": True, "confidence": 0.95, "n_bootstrap": 1000, "min_rows": 30},
    "significance_level": 0.001,
}

TRUE_TOKENS = {"true", "yes", "t", "y", "1", "1.0"}
FALSE_TOKENS = {"false", "no", "f", "n", "0", "0.0"}


# ----------------------------------------------------------------------------- value normalising
def missing_mask(s: pd.Series) -> pd.Series:
    """Missing = null/NaN, or a blank string."""
    mask = s.isna()
    if s.dtype == object or pd.api.types.is_string_dtype(s.dtype):
        text = s[~mask].astype(str).str.strip()
        mask.loc[text.index[text == ""]] = True
    return mask


def as_numbers(s: pd.Series) -> Tuple[np.ndarray, int]:
    """The finite numbers among present values, and how many present values are not numbers."""
    if pd.api.types.is_bool_dtype(s.dtype):
        s = s.astype(float)
    if pd.api.types.is_numeric_dtype(s.dtype):
        vals = s.to_numpy(dtype=float, na_value=np.nan)
    else:
        vals = pd.to_numeric(s.astype(str).str.strip(), errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    ok = np.isfinite(vals)
    return vals[ok], int(len(vals) - ok.sum())


def as_categories(s: pd.Series) -> pd.Series:
    """Present values as strings; integral floats (1.0, from a column with nulls) become "1"."""
    if pd.api.types.is_float_dtype(s.dtype):
        vals = s.to_numpy(dtype=float)
        integral = np.isfinite(vals) & (np.mod(vals, 1) == 0)
        out = s.astype(str)
        out[integral] = [str(int(v)) for v in vals[integral]]
        return out
    if s.dtype == object:
        return s.map(lambda v: str(int(v)) if isinstance(v, float) and v.is_integer() else str(v))
    return s.astype(str)


def as_booleans(s: pd.Series) -> Tuple[pd.Series, int]:
    """Present values as "true"/"false"; the count of values that are not boolean tokens."""
    low = as_categories(s).str.strip().str.lower()
    out = pd.Series(np.where(low.isin(TRUE_TOKENS), "true", np.where(low.isin(FALSE_TOKENS), "false", "")),
                    index=s.index)
    bad = out == ""
    return out[~bad], int(bad.sum())


def _as_dates(s: pd.Series) -> Tuple[pd.Series, int]:
    if pd.api.types.is_datetime64_any_dtype(s.dtype):
        return s, 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        parsed = pd.to_datetime(s.astype(str), errors="coerce", format="mixed")
    return parsed.dropna(), int(parsed.isna().sum())


# ----------------------------------------------------------------------------- statistics
def drift_cuts(values: np.ndarray) -> List[float]:
    """Interior cut points of ``N_BINS`` equal-frequency bins (fewer when values repeat)."""
    if len(values) == 0:
        return []
    top = float(values.max())
    qs = np.quantile(values, np.linspace(0, 1, N_BINS + 1)[1:-1])
    cuts = sorted({float(q) for q in qs if q < top})
    if not cuts:  # nine tenths of the values sit at the maximum
        below = values[values < top]
        cuts = [float(below.max())] if len(below) else []
    return cuts


def bin_counts(values: np.ndarray, cuts: List[float]) -> List[int]:
    """Counts in the bins (-inf, c1], (c1, c2], ..., (ck, +inf)."""
    idx = np.searchsorted(np.asarray(cuts, dtype=float), values, side="left")
    return np.bincount(idx, minlength=len(cuts) + 1).astype(int).tolist()


def _numeric_stats(values: np.ndarray, edges: Optional[List[float]]) -> Dict[str, Any]:
    """Moments, quantiles and a histogram; ``edges`` (the baseline's) fix the bins of a batch."""
    if len(values) == 0:
        return {"mean": None, "std": None, "min": None, "max": None, "quantiles": {}, "histogram": None}
    lo, hi = float(values.min()), float(values.max())
    if edges is None:
        edges = [lo, *drift_cuts(values), hi]
    qs = np.quantile(values, QUANTILES)
    return {
        "mean": float(values.mean()), "std": float(values.std(ddof=1)) if len(values) > 1 else 0.0,
        "min": lo, "max": hi,
        "quantiles": {f"p{round(q * 100):02d}": float(v) for q, v in zip(QUANTILES, qs)},
        "histogram": {"edges": list(edges), "counts": bin_counts(values, list(edges)[1:-1])},
    }


def _category_stats(cats: pd.Series) -> Dict[str, Any]:
    counts = cats.value_counts()
    top = counts.iloc[:MAX_CATEGORIES]
    return {"distinct": int(len(counts)), "frequencies": {str(k): int(v) for k, v in top.items()},
            "other_count": int(counts.iloc[MAX_CATEGORIES:].sum())}


def column_statistics(s: pd.Series, kind: str, reference: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    """Statistics of one column read as ``kind``; ``reference`` (baseline stats) fixes the bins."""
    missing = missing_mask(s)
    present = s[~missing]
    out: Dict[str, Any] = {"inferred_type": kind, "count": int(len(s)), "present": int(len(present)),
                           "missing": int(missing.sum()), "invalid": 0}
    if kind == "numeric":
        values, invalid = as_numbers(present)
        hist = ((reference or {}).get("numeric") or {}).get("histogram") or {}
        out["invalid"] = invalid
        out["negative"] = int((values < 0).sum())
        out["numeric"] = _numeric_stats(values, hist.get("edges") if reference is not None else None)
    elif kind in ("categorical", "boolean"):
        if kind == "boolean":
            cats, out["invalid"] = as_booleans(present)
        else:
            cats = as_categories(present)
        out["categorical"] = _category_stats(cats)
    elif kind == "datetime":
        dates, out["invalid"] = _as_dates(present)
        if len(dates):
            out["datetime"] = {"min": str(dates.min()), "max": str(dates.max())}
    elif kind == "text":
        lengths = present.astype(str).str.len()
        out["text"] = {"mean_length": float(lengths.mean()) if len(lengths) else None,
                       "distinct": int(present.nunique())}
    return out


def dataset_statistics(df: pd.DataFrame, column_types: Dict[str, str],
                       reference: Optional[Dict[str, Any]] = None, source: str = "") -> Dict[str, Any]:
    """Statistics of every column of ``df`` that ``column_types`` names (the baseline's or a batch's)."""
    ref_features = (reference or {}).get("features", {})
    features = {}
    for col, kind in column_types.items():
        if col in df.columns:
            features[col] = column_statistics(df[col], kind, ref_features.get(col) if reference else None)
    return {"version": FORMAT_VERSION, "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "dataset": {"n_rows": int(len(df)), "n_columns": int(df.shape[1]), "source": source},
            "features": features}


# ----------------------------------------------------------------------------- constraints
def _constraints_of(name: str, kind: str, st: Dict[str, Any]) -> Dict[str, Any]:
    n = max(st["count"], 1)
    present = st["present"]
    c: Dict[str, Any] = {"type": kind, "completeness": round(present / n, 6),
                         "invalid_fraction": round(st["invalid"] / present, 6) if present else 0.0}
    if kind == "numeric":
        num = st["numeric"]
        c["is_non_negative"] = bool(num["min"] is not None and num["min"] >= 0)
    elif kind == "categorical":
        cat = st["categorical"]
        c["domain"] = sorted(cat["frequencies"]) if cat["other_count"] == 0 else None
    elif kind == "boolean":
        c["domain"] = ["false", "true"]
    return c


def build_baseline(df: pd.DataFrame, column_types: Dict[str, str], target: Optional[str] = None,
                   ignored: Optional[List[str]] = None) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """(statistics, constraints) of the feature columns of ``df`` (types from ``infer_column_types``).

    Columns whose type is not a feature type (ID-like, constant) are recorded as known columns so a
    batch that carries them is not flagged; so are ``target`` and ``ignored`` (e.g. ``data.drop``).
    """
    features = {c: t for c, t in column_types.items() if t in FEATURE_TYPES and c in df.columns and c != target}
    stats = dataset_statistics(df, features, source="training data")
    cons_features = {c: _constraints_of(c, t, stats["features"][c]) for c, t in features.items()}
    known = sorted({str(c) for c in column_types if c not in features} | set(map(str, ignored or [])))
    constraints = {
        "version": FORMAT_VERSION,
        "target": target,
        "known_non_feature_columns": known,
        "features": cons_features,
        "monitoring": copy.deepcopy(DEFAULT_MONITORING),
    }
    return stats, constraints


def write_baseline(out: str, X: pd.DataFrame, column_types: Dict[str, str], storage_options: Dict[str, Any],
                   target: Optional[str] = None, ignored: Optional[List[str]] = None) -> bool:
    """Write ``baseline/`` into a run folder; a failure logs a warning and never fails the fit."""
    started = time.time()
    try:
        stats, constraints = build_baseline(X, column_types, target=target, ignored=ignored)
        art.write_json(art.join(out, STATISTICS_FILE), stats, storage_options)
        art.write_json(art.join(out, CONSTRAINTS_FILE), constraints, storage_options)
    except Exception as exc:  # monitoring must never break training
        log.warning("could not write the monitoring baseline (%s: %s); `automl monitor` will rebuild it "
                    "from %s", type(exc).__name__, exc, TRAIN_DATA_FILE)
        return False
    log.debug("monitoring baseline of %d features written to %s/ in %.2f s", len(constraints["features"]),
             BASELINE_DIR, time.time() - started)
    return True
