"""Insights: problems found in the training data, each with a severity and a suggested action.

Checks: possible target leakage, constant and ID-like columns, duplicate rows, mostly-missing
columns, rare categories, numbers disguised as missing (-999, 9999, ...), class imbalance, too
few rows per class, a skewed or heavy-tailed regression target, and, while validation is plain
shuffled k-fold, repeated IDs (validation.group_column) or a time column (validation.time_column).
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any, Dict, List, Mapping, Optional

import numpy as np
import pandas as pd

SEVERITIES = ("high", "medium", "low")
LEAKAGE_POWER = 0.95  # a single feature this predictive is more likely a leak than a discovery
RARE_SHARE = 0.01
MOSTLY_MISSING = 0.5
# Values people type for "unknown": 999, -999, 9999, 99999999, ... (three or more nines).
_SENTINEL_DIGITS = range(3, 10)
SENTINELS = tuple(sorted({s * (10 ** d - 1) for d in _SENTINEL_DIGITS for s in (1, -1)}))
# Repeated IDs: a column named like an identifier or an entity whose values repeat, on average
# at least REPEATS_PER_ID rows per value, over at least MIN_IDS values.
ID_TOKENS = {"id", "key", "uuid", "guid"}
ENTITY_TOKENS = {"customer", "user", "client", "patient", "account", "session", "device", "household", "subject",
                 "member", "person", "player", "store", "shop", "site", "visitor", "group", "cluster", "family"}
TIME_TOKENS = {"time", "date", "datetime", "timestamp", "ts", "day", "week", "month", "year", "epoch", "period"}
REPEATS_PER_ID = 1.5
MIN_IDS = 5


@dataclass
class Insight:
    severity: str
    issue: str
    columns: str
    detail: str
    action: str


def _frame(items: List[Insight]) -> pd.DataFrame:
    cols = ["severity", "issue", "columns", "detail", "action"]
    if not items:
        return pd.DataFrame(columns=cols)
    out = pd.DataFrame([asdict(i) for i in items], columns=cols)
    out["_rank"] = out["severity"].map({s: i for i, s in enumerate(SEVERITIES)})
    return out.sort_values(["_rank", "issue"], kind="stable").drop(columns="_rank").reset_index(drop=True)


def disguised_missing(s: pd.Series) -> Optional[tuple[float, int]]:
    """A sentinel such as -999 or 9999 that sits far outside the column's other values."""
    v = pd.to_numeric(s, errors="coerce").astype(float)
    v = v[np.isfinite(v)]
    if len(v) < 20:
        return None
    found = None
    for sentinel in SENTINELS:
        hits = int((v == sentinel).sum())
        if hits < 2:
            continue
        others = v[v != sentinel]
        if len(others) < 10:
            continue
        lo, hi = others.quantile([0.01, 0.99])
        span = max(hi - lo, 1.0)
        if sentinel < lo - span or sentinel > hi + span:
            if found is None or hits > found[1]:
                found = (float(sentinel), hits)
    return found


def _id_like(s: pd.Series, kind: str) -> bool:
    if kind == "id":
        return True
    if kind != "numeric" or len(s) < 20:
        return False
    v = pd.to_numeric(s, errors="coerce").dropna()
    if len(v) < 0.99 * len(s) or v.nunique() != len(v) or not np.all(np.mod(v, 1) == 0):
        return False
    return bool(v.is_monotonic_increasing or v.is_monotonic_decreasing)


def _tokens(name: Any) -> List[str]:
    """A column name's words: split at separators and camelCase, lower case."""
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", str(name))
    return [t for t in re.split(r"[\s_.\-/]+", spaced.lower()) if t]


def plain_kfold(validation: Optional[Mapping[str, Any]]) -> bool:
    """Whether validation is plain shuffled k-fold: neither validation.group_column nor
    validation.time_column (a run's config) nor a group/time ``structure`` (its summary.json)."""
    v = validation or {}
    return not (v.get("group_column") or v.get("time_column") or v.get("structure") in ("group", "time"))


def repeated_id(s: pd.Series, kind: str) -> Optional[tuple[int, float]]:
    """(distinct values, rows per value) when ``s`` looks like an identifier whose values repeat."""
    words = _tokens(s.name)
    if kind not in ("id", "categorical", "numeric") or not words:
        return None
    if not (set(words) & ID_TOKENS or words[-1] in ENTITY_TOKENS):
        return None
    v = s.dropna()
    if kind == "numeric":
        num = pd.to_numeric(v, errors="coerce")
        if num.isna().any() or not np.all(np.mod(num.to_numpy(dtype=float), 1) == 0):
            return None  # a measurement (e.g. 'customer_age' is not named so; 'user_score' floats are not IDs)
    n_ids = int(v.nunique())
    per = len(v) / max(1, n_ids)
    return (n_ids, per) if n_ids >= MIN_IDS and per >= REPEATS_PER_ID else None


def looks_like_time(s: pd.Series, kind: str) -> bool:
    """A datetime column, or a numeric one named like a time (date, year, timestamp...) with many values."""
    if kind == "datetime":
        return True
    return kind == "numeric" and bool(set(_tokens(s.name)) & TIME_TOKENS) and s.nunique() >= 10


def structure_insights(df: pd.DataFrame, column_types: Dict[str, str],
                       validation: Optional[Mapping[str, Any]]) -> List[Insight]:
    """Repeated IDs and time columns, which make plain shuffled k-fold optimistic: only while
    validation is plain k-fold (no validation.group_column / time_column)."""
    if not plain_kfold(validation):
        return []
    items: List[Insight] = []
    for col, kind in column_types.items():
        if col not in df.columns:
            continue
        found = repeated_id(df[col], kind)
        if found:
            items.append(Insight(
                "high", "repeated IDs with plain k-fold", col,
                f"'{col}' looks like an identifier: {found[0]:,} values over {len(df):,} rows ({found[1]:.1f} rows "
                "each). Shuffled k-fold puts rows of one ID in both training and validation, so validation "
                "scores are optimistic for new IDs",
                f"if the model will see new {col} values, use validation.group_column={col} (group-disjoint "
                "folds and test split)"))
        elif looks_like_time(df[col], kind):
            items.append(Insight(
                "medium", "time column with plain k-fold", col,
                f"'{col}' holds times; shuffled k-fold validates on rows older than some of its training rows",
                f"if the model will predict later rows, use validation.time_column={col} (forward-chaining folds; "
                "the test split is the last period)"))
    return items


def target_insights(y: pd.Series, target: str, problem_type: str, n_folds: int) -> List[Insight]:
    """The target's own problems: a skewed regression target, tiny or imbalanced classes."""
    items: List[Insight] = []
    if problem_type == "regression":
        v = pd.to_numeric(y, errors="coerce").dropna()
        skew, kurt = float(v.skew()), float(v.kurt())
        if abs(skew) > 1 or kurt > 5:
            items.append(Insight(
                "medium", "skewed or heavy-tailed target", target,
                f"target skew {skew:.2f}, excess kurtosis {kurt:.2f}",
                "consider predicting log(target) (if positive) or metric=mae, which large values sway less"))
    elif len(y):
        counts = y.astype(object).value_counts()
        smallest = int(counts.min())
        if smallest < 20:
            items.append(Insight(
                "high" if smallest < n_folds else "medium", "too few rows per class", target,
                f"class {counts.index[-1]!r} has only {smallest} row(s)",
                "collect more rows for it, merge it with a similar class, or drop it; validation "
                "scores for it are unreliable"))
        ratio = smallest / int(counts.max())
        if ratio < 0.1:
            items.append(Insight(
                "medium", "imbalanced classes", target,
                f"the rarest class has {100 * ratio:.1f}% of the majority's rows",
                "use metric=balanced_accuracy, auc or f1 rather than accuracy"))
    return items


def find_insights(df: pd.DataFrame, target: str, problem_type: str, column_types: Dict[str, str],
                  power: Optional[pd.Series] = None, n_folds: int = 5,
                  validation: Optional[Mapping[str, Any]] = None) -> pd.DataFrame:
    """Every problem found, most severe first (columns: severity, issue, columns, detail, action).
    ``validation``: the run's ``validation`` config or summary record (None: plain k-fold)."""
    items: List[Insight] = []
    n = len(df)
    power = power if power is not None else pd.Series(dtype=float)
    for col, p in power.items():
        if p >= LEAKAGE_POWER:
            items.append(Insight(
                "high", "possible target leakage", col,
                f"'{col}' alone predicts the target almost perfectly (prediction power {p:.3f})",
                f"check that '{col}' is known at prediction time; if it is derived from the target, "
                f"drop it with data.drop=[{col}]"))
    for col, kind in column_types.items():
        if col not in df.columns:
            continue
        s = df[col]
        if kind == "constant":
            items.append(Insight("low", "constant column", col,
                                 f"'{col}' has {s.nunique()} distinct value(s); it carries no information",
                                 "nothing to do (automl ignores it); drop it from the source data"))
        elif _id_like(s, kind):
            items.append(Insight("medium", "ID-like column", col,
                                 f"'{col}' has a different value on every row ({s.nunique():,} distinct)",
                                 f"automl does not use ID-like columns as features; if '{col}' is not an "
                                 "identifier, cast it to a category or number in the source data"))
        miss = float(s.isna().mean()) if n else 0.0
        if miss >= MOSTLY_MISSING and kind != "constant":
            items.append(Insight("medium", "mostly missing", col, f"'{col}' is missing in {100 * miss:.1f}% of rows",
                                 "automl imputes it and adds a missing indicator; consider dropping it"))
        if kind == "categorical":
            share = s.value_counts(normalize=True)
            rare = share[share < RARE_SHARE]
            if len(rare) and len(share) > 2:
                items.append(Insight(
                    "low", "rare categories", col,
                    f"'{col}' has {len(rare)} of {len(share)} categories each in under {100 * RARE_SHARE:.0f}% "
                    f"of rows ({rare.sum() * 100:.1f}% of rows together), e.g. {', '.join(map(str, rare.index[:3]))}",
                    "rare categories are grouped when encoding (processing.onehot_min_frequency); merge "
                    "synonyms or collect more rows for them"))
        if kind in ("numeric", "boolean") or pd.api.types.is_numeric_dtype(s):
            found = disguised_missing(s)
            if found:
                value, hits = found
                shown = int(value) if float(value).is_integer() else value
                items.append(Insight(
                    "medium", "number disguised as missing", col,
                    f"'{col}' holds {shown} in {hits} row(s) ({100 * hits / n:.1f}%), far outside its other values",
                    f"if {shown} means 'unknown', replace it with an empty value so it is imputed "
                    "(and flagged) instead of learned as a real number"))
    dup = int(df.duplicated().sum()) if n else 0
    if dup and dup / n >= 0.01:
        items.append(Insight(
            "medium" if dup / n >= 0.1 else "low", "duplicate rows", "(all)",
            f"{dup:,} rows ({100 * dup / n:.1f}%) repeat an earlier row exactly",
            "check the data export; duplicates across validation folds make scores optimistic"))
    items += target_insights(df[target].dropna(), target, problem_type, n_folds)
    items += structure_insights(df, column_types, validation)
    return _frame(items)
