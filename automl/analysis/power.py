"""How much each feature predicts the target on its own, and how the strongest ones correlate.

"Prediction power" is the cross-validated score of a small single-feature model (a shallow
decision tree), normalised to [0, 1]: 0 is no better than chance, 1 predicts perfectly.
Classification uses balanced accuracy rescaled so that chance (1/k) is 0; regression uses R²
clipped at 0. Rows are subsampled (5,000 by default) so this takes well under a second per
hundred features.
"""
from __future__ import annotations

from typing import Dict, Optional

import numpy as np
import pandas as pd
from sklearn.metrics import balanced_accuracy_score, r2_score
from sklearn.model_selection import KFold, StratifiedKFold
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

MAX_ROWS = 5_000
MAX_FEATURES = 300
_MAX_CODES = 31  # categorical: the most frequent categories keep their own code, the rest share one


def _encode(s: pd.Series, kind: str) -> Optional[np.ndarray]:
    """One feature as a numeric column a tree can split (missing -> a value of its own)."""
    if kind == "boolean" and not (pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s)):
        kind = "categorical"  # yes/no, true/false as text
    if kind in ("numeric", "boolean"):
        v = pd.to_numeric(s, errors="coerce").astype(float).to_numpy()
        v = np.where(np.isfinite(v), v, np.nan)
        if np.isnan(v).all():
            return None
        fill = np.nanmin(v) - 1.0 - abs(np.nanmin(v))
        return np.where(np.isnan(v), fill, v)
    if kind == "datetime":
        d = pd.to_datetime(s, errors="coerce", format="mixed", utc=True)
        v = (d - pd.Timestamp("1970-01-01", tz="UTC")).dt.total_seconds().to_numpy(dtype=float, na_value=np.nan)
        return None if np.isnan(v).all() else np.where(np.isnan(v), np.nanmin(v) - 1, v)
    if kind in ("categorical", "text"):
        text = s.astype(object).where(s.notna(), "__missing__").astype(str)
        top = text.value_counts().index[:_MAX_CODES]
        codes = {c: i for i, c in enumerate(top)}
        return text.map(codes).fillna(len(top)).to_numpy(dtype=float)
    return None


def _target_codes(y: pd.Series, problem_type: str) -> np.ndarray:
    if problem_type == "regression":
        return pd.to_numeric(y, errors="coerce").to_numpy(dtype=float)
    return pd.factorize(y.astype(str))[0]


def prediction_power(df: pd.DataFrame, target: str, problem_type: str, column_types: Dict[str, str],
                     max_rows: int = MAX_ROWS, n_folds: int = 3, seed: int = 0) -> pd.Series:
    """Prediction power in [0, 1] of every usable column, strongest first (name: ``power``)."""
    data = df[df[target].notna()]
    if len(data) > max_rows:
        data = data.sample(max_rows, random_state=seed)
    y = _target_codes(data[target], problem_type)
    keep = np.isfinite(y) if problem_type == "regression" else np.ones(len(y), dtype=bool)
    data, y = data[keep], y[keep]
    cols = [c for c, t in column_types.items() if c in data.columns and t not in ("constant", "id")][:MAX_FEATURES]
    out: Dict[str, float] = {}
    if len(data) < 2 * n_folds or not cols:
        return pd.Series(out, name="power", dtype=float)
    if problem_type == "regression":
        splits = list(KFold(n_folds, shuffle=True, random_state=seed).split(y))
    else:
        min_count = int(np.bincount(y).min())
        splits = (list(StratifiedKFold(min(n_folds, min_count), shuffle=True, random_state=seed).split(y, y))
                  if min_count >= 2 else list(KFold(n_folds, shuffle=True, random_state=seed).split(y)))
    leaf = max(1, len(y) // 200)
    k = len(np.unique(y)) if problem_type != "regression" else 0
    for col in cols:
        x = _encode(data[col], column_types[col])
        if x is None:
            continue
        depth = 5 if column_types[col] in ("categorical", "text") else 4
        pred = np.empty(len(y), dtype=float)
        for tr, va in splits:
            if problem_type == "regression":
                model = DecisionTreeRegressor(max_depth=depth, min_samples_leaf=leaf, random_state=seed)
            else:
                model = DecisionTreeClassifier(max_depth=depth, min_samples_leaf=leaf, class_weight="balanced",
                                               random_state=seed)
            model.fit(x[tr, None], y[tr])
            pred[va] = model.predict(x[va, None])
        if problem_type == "regression":
            score = r2_score(y, pred)
        else:
            chance = 1.0 / max(2, k)
            score = (balanced_accuracy_score(y, pred.astype(int)) - chance) / (1 - chance)
        out[str(col)] = float(np.clip(score, 0.0, 1.0))
    return pd.Series(out, name="power", dtype=float).sort_values(ascending=False).round(4)


def top_correlations(df: pd.DataFrame, power: pd.Series, column_types: Dict[str, str], k: int = 10,
                     max_rows: int = 20_000, seed: int = 0) -> pd.DataFrame:
    """Spearman correlations among the ``k`` numeric features with the most prediction power."""
    numeric = [c for c in power.index if column_types.get(c) == "numeric"][:k]
    if len(numeric) < 2:
        return pd.DataFrame()
    data = df[numeric]
    if len(data) > max_rows:
        data = data.sample(max_rows, random_state=seed)
    data = data.apply(pd.to_numeric, errors="coerce")
    return data.corr(method="spearman").round(3)
