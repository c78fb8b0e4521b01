"""Insights: problems found in the training data, each with a severity and a suggested action.

Checks: possible target leakage, constant and ID-like columns, duplicate rows, mostly-missing
columns, rare categories, numbers disguised as missing (-999, 9999, ...), class imbalance, too
few rows per class, and a skewed or heavy-tailed regression target.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Dict, List, Optional

import numpy as np
import pandas as pd

SEVERITIES = ("high", "medium", "low")
LEAKAGE_POWER = 0.95  # a single feature this predictive is more likely a leak than a discovery
RARE_SHARE = 0.01
MOSTLY_MISSING = 0.5
# Values people type for "unknown": 999, -999, 9999, 99999999, ... (three or more nines).
_SENTINEL_DIGITS = range(3, 10)
SENTINELS = tuple(sorted({s * (10 ** d - 1) for d in _SENTINEL_DIGITS for s in (1, -1)}))


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
                  power: Optional[pd.Series] = None, n_folds: int = 5) -> pd.DataFrame:
    """Every problem found, most severe first (columns: severity, issue, columns, detail, action)."""
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
    return _frame(items)
