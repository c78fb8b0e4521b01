"""Column type inference: numeric, categorical, boolean, text, datetime, id, constant.

ID-like and constant columns are recorded but not used as features.
"""
from __future__ import annotations

import re
import warnings
from typing import Dict

import numpy as np
import pandas as pd

from automl.errors import DataError

COLUMN_TYPES = ("numeric", "categorical", "boolean", "text", "datetime", "id", "constant")
FEATURE_TYPES = ("numeric", "categorical", "boolean", "text", "datetime")
_BOOL_TOKENS = {"true", "false", "yes", "no", "t", "f", "y", "n"}
_ID_NAME = re.compile(r"(^|[_\s.-])(id|key|uuid|guid|index|idx)$|^(id|key|uuid|guid|index|idx)([_\s.-]|$)", re.I)


def _is_id_name(name: str) -> bool:
    return bool(_ID_NAME.search(str(name).strip()))


def _parse_dates(s: pd.Series) -> pd.Series:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pd.to_datetime(s, errors="coerce", format="mixed")


def infer_column_type(s: pd.Series) -> str:
    """Infer one column's type from its values (and, for IDs, its name)."""
    values = s.dropna()
    n = len(values)
    if n == 0 or values.nunique() <= 1:
        return "constant"
    n_unique = values.nunique()
    if pd.api.types.is_bool_dtype(values):
        return "boolean"
    if pd.api.types.is_datetime64_any_dtype(values):
        return "datetime"
    if pd.api.types.is_numeric_dtype(values):
        vals = values.to_numpy(dtype=float)
        integral = bool(np.all(np.mod(vals[np.isfinite(vals)], 1) == 0))
        if n_unique == 2 and set(np.unique(vals)) <= {0.0, 1.0}:
            return "boolean"
        if integral and n_unique == n and n >= 20:
            span = np.nanmax(vals) - np.nanmin(vals) + 1
            if _is_id_name(s.name) or span <= 1.05 * n:
                return "id"
        return "numeric"
    text = values.astype(str).str.strip()
    lowered = set(text.str.lower().unique())
    if n_unique == 2 and lowered <= _BOOL_TOKENS:
        return "boolean"
    sample = text.iloc[: min(n, 2000)]
    numeric = pd.to_numeric(sample, errors="coerce")
    if numeric.notna().mean() >= 0.98:
        return "numeric"
    if sample.str.contains(r"\d", regex=True).mean() > 0.9 and sample.str.len().between(6, 40).mean() > 0.9:
        parsed = _parse_dates(sample)
        if parsed.notna().mean() >= 0.9:
            return "datetime"
    words = sample.str.split().str.len().mean()
    unique_ratio = n_unique / n
    if words >= 4 and unique_ratio > 0.3:
        return "text"
    if unique_ratio > 0.95 and n >= 20 and (_is_id_name(s.name) or words < 2):
        return "id"
    return "categorical"


def infer_column_types(df: pd.DataFrame) -> Dict[str, str]:
    return {str(c): infer_column_type(df[c]) for c in df.columns}


# What ``data.types`` may set a column to (the inferred-only kinds id and constant are not features).
TYPE_CHOICES = FEATURE_TYPES
_MIN_PARSED = 0.9  # a datetime override needs this share of a column's values to parse as dates


def _bad_value(s: pd.Series, ok: pd.Series) -> str:
    bad = s[s.notna() & ~ok]
    return repr(bad.iloc[0]) if len(bad) else ""


def check_override(s: pd.Series, kind: str) -> None:
    """Refuse a ``data.types`` override that the column's values cannot take: one line naming
    the column, a value that does not fit and the fix."""
    values = s.dropna()
    if kind == "numeric" and not (pd.api.types.is_numeric_dtype(values) or pd.api.types.is_bool_dtype(values)):
        parsed = pd.to_numeric(values.astype(str).str.strip(), errors="coerce")
        if parsed.isna().any():
            raise DataError(f"data.types.{s.name}=numeric, but the column holds non-numbers such as "
                            f"{_bad_value(values, parsed.notna())}; give it another type (categorical, text) or "
                            "clean the column")
    elif kind == "datetime" and len(values) and not pd.api.types.is_datetime64_any_dtype(values):
        parsed = _parse_dates(values.astype(str))
        if parsed.notna().mean() < _MIN_PARSED:
            raise DataError(f"data.types.{s.name}=datetime, but only {parsed.notna().mean():.0%} of its values "
                            f"parse as dates (e.g. not {_bad_value(values, parsed.notna())}); give it another type "
                            "or clean the column")


def apply_type_overrides(df: pd.DataFrame, inferred: Dict[str, str], overrides: Dict[str, str]) -> Dict[str, str]:
    """``inferred`` with the ``data.types`` overrides applied, each checked against its column."""
    types = dict(inferred)
    for col, kind in overrides.items():
        check_override(df[col], kind)
        types[str(col)] = kind
    return types
