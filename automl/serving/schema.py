"""A model's input schema: the feature columns in training order, and how to cast values to them.

The endpoint and batch transform both send rows through :meth:`InputSchema.coerce`, so a row
gets the same prediction whichever way it arrives: each column takes the dtype it had in
training (a numeric column gets floats, a categorical column of integers stays integers), and a
value that does not fit raises a :class:`DataError` naming the row, column and value.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import pandas as pd

from automl.errors import DataError

log = logging.getLogger(__name__)

_TRUE = {"true", "t", "yes", "y", "1"}
_FALSE = {"false", "f", "no", "n", "0"}


@dataclass
class InputSchema:
    """Feature columns (training order), their automl types and their training dtypes."""

    columns: List[str]
    types: Dict[str, str]
    dtypes: Dict[str, str] = field(default_factory=dict)  # int | float | bool | str
    # every training column but the target (IDs and constants too): CSV rows may carry them all
    input_columns: List[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        for c in self.columns:
            self.dtypes.setdefault(c, "float" if self.types.get(c) == "numeric" else "str")
        self._float_cols = [c for c in self.columns if self.types.get(c) == "numeric" or self.dtypes[c] == "float"]
        self._all_float = len(self._float_cols) == len(self.columns)
        self._index = pd.Index(self.columns, dtype=object)  # object labels: cheaper lookups than str
        wide = [c for c in self.input_columns] if set(self.columns) <= set(self.input_columns) else []
        self._wide = wide if len(wide) > len(self.columns) else []
        self._wide_pick = [wide.index(c) for c in self.columns] if self._wide else []

    @classmethod
    def from_model(cls, bundle: Any, training_dtypes: Optional[Dict[str, str]] = None,
                   input_columns: Optional[Sequence[str]] = None) -> "InputSchema":
        cols = list(bundle.feature_columns)
        dtypes = {c: training_dtypes[c] for c in cols if training_dtypes and c in training_dtypes}
        return cls(columns=cols, types={c: bundle.column_types.get(c, "categorical") for c in cols}, dtypes=dtypes,
                   input_columns=list(input_columns or []))

    @property
    def float_columns(self) -> List[str]:
        """Columns that :meth:`coerce` always returns as float64."""
        return list(self._float_cols)

    def describe(self) -> List[Dict[str, str]]:
        return [{"name": c, "type": self.types[c], "dtype": self.dtypes[c]} for c in self.columns]

    # -- CSV rows (lists of strings) -------------------------------------------------------

    def frame_from_rows(self, rows: Sequence[Sequence[str]], first_row: int = 1) -> pd.DataFrame:
        """Rows of text fields in training column order -> a typed frame (fast for all-numeric models).

        A row holds the feature columns, or every training column but the target (ID-like and
        constant columns included, as in the training file); the model's columns are picked.
        """
        n, wide = len(self.columns), len(self._wide)
        if rows and wide and len(rows[0]) == wide:
            pick = self._wide_pick
            rows = [[r[j] for j in pick] if len(r) == wide else r for r in rows]
        for i, row in enumerate(rows):
            if len(row) != n:
                also = (f", or {wide}: every training column but the target ({_show(self._wide)})"
                        if wide else "")
                raise DataError(
                    f"row {first_row + i} has {len(row)} field(s); expected {n}: the feature columns in training "
                    f"order ({_show(self.columns)}){also}, with no header and no target column"
                )
        if self._all_float:
            try:
                return pd.DataFrame(np.array(rows, dtype=np.float64), columns=self._index)
            except ValueError:
                pass  # empty fields or bad values: the column-wise path below says which
        return self.coerce(pd.DataFrame(list(rows), columns=self._index, dtype=object), first_row)

    # -- JSON instances (dicts) --------------------------------------------------------------

    def frame_from_records(self, records: Sequence[Dict[str, Any]], first_row: int = 1) -> pd.DataFrame:
        """``[{column: value}, ...]`` -> a typed frame; extra keys are ignored."""
        for i, rec in enumerate(records):
            missing = [c for c in self.columns if c not in rec]
            if missing:
                raise DataError(f"instance {first_row + i} is missing column(s): {_show(missing)}; every "
                                f"instance needs all {len(self.columns)} feature columns (null for a missing value)")
        cols = self.columns
        if self._all_float:
            try:
                return pd.DataFrame(np.array([[r[c] for c in cols] for r in records], dtype=np.float64),
                                    columns=self._index)
            except (ValueError, TypeError):
                pass
        frame = pd.DataFrame([[r[c] for c in cols] for r in records], columns=self._index, dtype=object)
        return self.coerce(frame, first_row)

    # -- any frame ---------------------------------------------------------------------------

    def coerce(self, df: pd.DataFrame, first_row: int = 1) -> pd.DataFrame:
        """The feature columns of ``df`` in training order, cast to their training dtypes."""
        missing = [c for c in self.columns if c not in df.columns]
        if missing:
            raise DataError(f"missing column(s): {_show(missing)}; every row needs all {len(self.columns)} "
                            f"feature columns ({_show(self.columns)}); extra columns are ignored")
        out: Dict[str, Any] = {}
        block = self._float_block(df)
        if block is not None:
            out.update({c: block[:, i] for i, c in enumerate(self._float_cols)})
        for col in self.columns:
            if col not in out:
                out[col] = self._coerce_column(df[col], col, first_row)
        frame = pd.DataFrame({c: out[c] for c in self.columns}, index=pd.RangeIndex(len(df)))
        frame.columns = self._index
        return frame

    def _float_block(self, df: pd.DataFrame) -> Optional[np.ndarray]:
        if not self._float_cols:
            return None
        sub = df[self._float_cols]
        if all(pd.api.types.is_float_dtype(t) or pd.api.types.is_integer_dtype(t) for t in sub.dtypes):
            return sub.to_numpy(dtype=np.float64)
        try:
            return sub.to_numpy(dtype=object).astype(np.float64)
        except (ValueError, TypeError):
            return None  # empty strings, None or bad values: handled column by column

    def _coerce_column(self, s: pd.Series, col: str, first_row: int) -> pd.Series:
        kind = self.dtypes[col]
        s = s.reset_index(drop=True)
        missing = s.isna()
        texty = s.dtype == object or pd.api.types.is_string_dtype(s.dtype)
        if texty:
            missing = missing | (s == "").fillna(False).astype(bool)  # an empty CSV field, as read_csv reads it
        if kind in ("float", "int") or self.types[col] == "numeric":
            if texty:  # a blank field in a numeric column is missing too
                missing = missing | s.map(lambda v: isinstance(v, str) and not v.strip()).astype(bool)
            try:
                num = pd.to_numeric(s.where(~missing, np.nan), errors="coerce")
            except (TypeError, ValueError):  # lists, dicts and other objects are not numbers
                num = pd.Series([_number(v) for v in s.where(~missing, np.nan)], dtype=np.float64)
            bad = num.isna() & ~missing
            if bad.any():
                i = int(np.flatnonzero(bad.to_numpy())[0])
                raise DataError(f"column '{col}' is numeric, but row {first_row + i} has {s.iloc[i]!r}; "
                                f"send a number, or an empty field / null for a missing value")
            num = num.astype(np.float64)
            values = num.to_numpy()
            known = ~np.isnan(values)
            if kind == "int" and self.types[col] != "numeric" and np.all(np.mod(values[known], 1) == 0):
                if known.all():  # a categorical of integers: 3, not 3.0, as in training
                    return num.astype(np.int64)
                return pd.Series([int(v) if k else np.nan for v, k in zip(values, known)], dtype=object)
            return num
        if kind == "bool":
            def to_bool(v: Any) -> Any:
                if isinstance(v, (bool, np.bool_)):
                    return bool(v)
                t = str(v).strip().lower()
                return True if t in _TRUE else False if t in _FALSE else None
            vals = s.where(~missing, None).map(lambda v: None if v is None else to_bool(v))
            bad = vals.isna() & ~missing
            if bad.any():
                i = int(np.flatnonzero(bad.to_numpy())[0])
                raise DataError(f"column '{col}' is boolean, but row {first_row + i} has {s.iloc[i]!r}; "
                                f"send true or false")
            return vals.astype(bool) if not missing.any() else vals.astype(object)
        vals = s.astype(object).where(~missing, np.nan)
        if pd.api.types.infer_dtype(vals, skipna=True) in ("string", "empty"):
            return vals  # text already (the usual case): no per-value work
        return vals.map(lambda v: v if v is np.nan or isinstance(v, str) else _text(v)).astype(object)


def _number(v: Any) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return np.nan


def _text(v: Any) -> Any:
    if isinstance(v, float) and np.isnan(v):
        return np.nan
    if isinstance(v, float) and v.is_integer():
        return str(int(v))  # a categorical integer sent as JSON 3.0 means "3"
    return str(v)


def _show(cols: Sequence[str], limit: int = 8) -> str:
    head = ", ".join(map(str, cols[:limit]))
    return head + (f", … ({len(cols)} in all)" if len(cols) > limit else "")


def training_dtypes(run: Any) -> Dict[str, str]:
    """Each training column's dtype (int/float/bool/str), read from the parquet schema only."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from automl import artifacts as art
    from automl.runner import TRAIN_DATA_FILE

    url = art.join(run.run_dir, TRAIN_DATA_FILE)
    try:
        import fsspec

        with fsspec.open(url, "rb", **run.storage_options) as fh:
            schema = pq.read_schema(fh)
    except (FileNotFoundError, OSError, ValueError) as exc:
        log.info("no training schema (%s); numeric columns are read as numbers, others as text", exc)
        return {}
    out: Dict[str, str] = {}
    for f in schema:
        t = f.type
        if pa.types.is_integer(t):
            out[f.name] = "int"
        elif pa.types.is_floating(t) or pa.types.is_decimal(t):
            out[f.name] = "float"
        elif pa.types.is_boolean(t):
            out[f.name] = "bool"
        else:
            out[f.name] = "str"
    return out
