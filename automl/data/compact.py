"""Compact in-memory feature columns before the search ships them to every trial.

Trials receive the feature table through Ray's object store and each worker holds its own
deserialised copy, so its size multiplies by the number of parallel trials. Repeated strings
(categorical columns) become pandas ``category`` columns (integer codes plus one copy of each
level), and date strings are parsed once into ``datetime64`` instead of in every fold.
The processing pipeline (``FeatureCaster``) accepts both forms, so predictions on raw input
are unaffected.
"""
from __future__ import annotations

import logging
import warnings
from typing import Dict

import pandas as pd

log = logging.getLogger(__name__)


def compact_features(X: pd.DataFrame, column_types: Dict[str, str]) -> pd.DataFrame:
    """A copy of ``X`` with categorical columns as ``category`` and datetime columns parsed."""
    before = int(X.memory_usage(deep=True).sum())
    out = {}
    for col in X.columns:
        s = X[col]
        kind = column_types.get(col)
        if kind == "categorical" and (s.dtype == object or pd.api.types.is_string_dtype(s.dtype)) \
                and not isinstance(s.dtype, pd.CategoricalDtype):
            out[col] = s.astype("category")
        elif kind == "datetime" and not pd.api.types.is_datetime64_any_dtype(s):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                out[col] = pd.to_datetime(s, errors="coerce", format="mixed")
        else:
            out[col] = s
    compact = pd.DataFrame(out, index=X.index)
    after = int(compact.memory_usage(deep=True).sum())
    log.debug("feature table: %.0f MB in memory (%.0f MB before compaction)", after / 1e6, before / 1e6)
    return compact
