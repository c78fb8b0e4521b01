"""A model's input schema: the feature columns in training order, and how to cast values to them.

The endpoint and batch transform both send rows through this class (``automl predict`` through
:meth:`InputSchema.coerce`, the endpoint through :meth:`frame_from_rows` / :meth:`frame_from_records`,
which apply the same rules), so a row gets the same prediction, or the same refusal, whichever
way it arrives: each column takes the dtype it had in training (a numeric column gets floats, a
categorical column of integers stays integers), and a value that does not fit raises a
:class:`DataError` naming the column, the row and the value (HTTP 400 at the endpoint, a
one-line error with exit 2 in batch). The input contract, per column type:

==============  =====================================  ==========================================
column type     read as missing (as in training)       refused
==============  =====================================  ==========================================
numeric         null, an empty field, NaN (JSON        inf, -inf, Infinity; a number beyond
                ``NaN``, text ``nan``), CSV missing    float64 (1e400, a 400-digit integer);
                markers (``NA``, ``N/A``, ``null``..)  text that is not a number
boolean         the same                               coded as numbers (0/1): as numeric (any
                                                       finite number is a value, as in training);
                                                       coded as text: anything but true/false,
                                                       1/0, yes/no, t/f, y/n
categorical     null, an empty field, CSV missing      inf, -inf, Infinity (as a number or as
                markers                                text), a number beyond float64, a list
                                                       or an object
==============  =====================================  ==========================================

Finite numbers are accepted whatever their size; the model's caster clips them to +-1e15, as in
training. (Training itself reads non-finite numbers as missing; at prediction time they are
refused, because a client that sends ``Infinity`` has a bug worth hearing about.)
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence

import numpy as np
import pandas as pd

from automl.data.formats import MISSING_MARKERS
from automl.errors import DataError

log = logging.getLogger(__name__)

_TRUE = {"true", "t", "yes", "y", "1", "1.0"}
_FALSE = {"false", "f", "no", "n", "0", "0.0"}
# pandas' default missing-value markers: what `automl predict` (read_csv) reads as missing in CSV
CSV_NA_TOKENS = MISSING_MARKERS  # the data layer's markers: a CSV field reads as at fit time
_NAN_TEXT = {"nan", "-nan", "+nan"}
INF_TOKENS = frozenset({"inf", "+inf", "-inf", "infinity", "+infinity", "-infinity"})
_CSV_NA = frozenset(CSV_NA_TOKENS)
CHUNK_ROWS = 2048  # rows converted per numpy call (see _float_rows)
_REFUSED = object()  # a categorical value that the contract refuses


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
                block = _float_rows(rows)
            except ValueError:
                pass  # empty fields or bad values: the column-wise path below says which
            else:
                self.check_block(block, first_row)
                return pd.DataFrame(block, columns=self._index)
        frame = pd.DataFrame(list(rows), columns=self._index, dtype=object)
        return self.coerce(frame.where(~frame.isin(CSV_NA_TOKENS), None), first_row)  # NA, null: as read_csv

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
                block = _float_rows([[r[c] for c in cols] for r in records])
            except (ValueError, TypeError, OverflowError):
                pass  # null, text, lists or integers beyond float64: the column-wise path says which
            else:
                self.check_block(block, first_row)
                return pd.DataFrame(block, columns=self._index)
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
            self.check_block(block, first_row)
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
        except (ValueError, TypeError, OverflowError):
            return None  # empty strings, None or bad values: handled column by column

    def check_block(self, block: np.ndarray, first_row: int = 1) -> None:
        """Refuse, per the input contract, infinite values in the float columns (``block``, in
        :attr:`float_columns` order, or all columns when all are float); 0/1 columns included,
        which the model reads as numbers (2 is a value there, inf is not)."""
        bad = np.isinf(block)
        if bad.any():
            row, j = (int(v) for v in np.argwhere(bad)[0])
            raise self.refusal(self._float_cols[j], first_row + row, block[row, j])

    def refusal(self, col: str, row: int, value: Any) -> DataError:
        """The contract's one-line error for a value out of range for its column's type."""
        kind = self.types.get(col, "categorical")
        shown = _shown(value)
        if kind == "boolean":
            fix = "send true or false (or 1 or 0), or an empty field / null for a missing value"
        elif kind == "numeric":
            fix = ("infinite numbers and numbers beyond float64 (about 1.8e308) are refused; send a finite number, "
                   "or an empty field / null for a missing value")
        else:
            fix = ("infinity, numbers beyond float64, lists and objects are not categories; send the category "
                   "as text or a number, or an empty field / null for a missing value")
        return DataError(f"column '{col}' is {kind}, but row {row} has {shown}; {fix}")

    def _coerce_column(self, s: pd.Series, col: str, first_row: int) -> pd.Series:
        kind = self.dtypes[col]
        s = s.reset_index(drop=True)
        missing = s.isna()
        texty = s.dtype == object or pd.api.types.is_string_dtype(s.dtype)
        if texty:
            missing = missing | (s == "").fillna(False).astype(bool)  # an empty CSV field, as read_csv reads it
        if kind in ("float", "int") or self.types[col] == "numeric":
            return self._numeric_column(s, col, missing, texty, first_row)
        if kind == "bool" or self.types[col] == "boolean":
            return self._boolean_column(s, col, missing, first_row, as_text=kind != "bool")
        return self._category_column(s, col, missing, first_row)

    def _numeric_column(self, s: pd.Series, col: str, missing: pd.Series, texty: bool, first_row: int) -> pd.Series:
        """Numbers (float64; a categorical of integers stays integers); NaN spellings are missing,
        infinities and numbers beyond float64 are refused (0/1 columns too: the model reads them as numbers)."""
        kind = self.dtypes[col]
        if texty:  # a blank field, NaN or a CSV missing marker in a numeric column is missing too
            missing = missing | s.map(_missing_text).astype(bool)
        try:
            num = pd.to_numeric(s.where(~missing, np.nan), errors="coerce")
        except (TypeError, ValueError, OverflowError):  # lists, dicts, integers beyond float64
            num = pd.Series([_number(v) for v in s.where(~missing, np.nan)], dtype=np.float64)
        bad = num.isna() & ~missing
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            raise DataError(f"column '{col}' is {self.types[col]}, but row {first_row + i} has {_shown(s.iloc[i])}; "
                            f"send a number, or an empty field / null for a missing value")
        num = num.astype(np.float64)
        values = num.to_numpy()
        out = np.isinf(values)  # a 0/1 column is a number to the model: 2 is a value, inf is not
        if out.any():
            i = int(np.flatnonzero(out)[0])
            raise self.refusal(col, first_row + i, s.iloc[i])
        known = ~np.isnan(values)
        if kind == "int" and self.types[col] != "numeric" and np.all(np.mod(values[known], 1) == 0):
            if known.all():  # a categorical of integers: 3, not 3.0, as in training
                return num.astype(np.int64)
            return pd.Series([int(v) if k else np.nan for v, k in zip(values, known)], dtype=object)
        return num

    def _boolean_column(self, s: pd.Series, col: str, missing: pd.Series, first_row: int, as_text: bool) -> pd.Series:
        """true/false, 1/0, yes/no, t/f, y/n; anything else is refused. Text stays text for a
        column that was text in training (the model's caster reads it)."""
        def to_bool(v: Any) -> Any:
            if isinstance(v, (bool, np.bool_)):
                return bool(v)
            t = str(v).strip().lower() if isinstance(v, (str, int, float, np.number)) else ""
            return True if t in _TRUE else False if t in _FALSE else None
        vals = s.where(~missing, None).map(lambda v: None if v is None else to_bool(v))
        bad = vals.isna() & ~missing
        if bad.any():
            i = int(np.flatnonzero(bad.to_numpy())[0])
            raise self.refusal(col, first_row + i, s.iloc[i])
        if as_text:
            return s.astype(object).where(~missing, np.nan)
        return vals.astype(bool) if not missing.any() else vals.astype(object)

    def _category_column(self, s: pd.Series, col: str, missing: pd.Series, first_row: int) -> pd.Series:
        """Text; a number becomes its text (3.0 -> "3"); infinity, numbers beyond float64, lists and
        objects are refused in categorical columns."""
        vals = s.astype(object).where(~missing, np.nan)
        strict = self.types[col] == "categorical"
        if pd.api.types.infer_dtype(vals, skipna=True) in ("string", "empty"):  # text already: the usual case
            if strict:
                inf = vals.map(lambda v: isinstance(v, str) and v.strip().lower() in INF_TOKENS).to_numpy(dtype=bool)
                if inf.any():
                    i = int(np.flatnonzero(inf)[0])
                    raise self.refusal(col, first_row + i, s.iloc[i])
            return vals
        out = vals.map(lambda v: v if v is np.nan else _category_text(v, strict))
        refused = out.map(lambda v: v is _REFUSED).to_numpy(dtype=bool)
        if refused.any():
            i = int(np.flatnonzero(refused)[0])
            raise self.refusal(col, first_row + i, s.iloc[i])
        return out.astype(object)


def _float_rows(rows: Sequence[Sequence[Any]]) -> np.ndarray:
    """``np.array(rows, dtype=float64)``, in slices of ``CHUNK_ROWS``: one call over 20,000 rows
    holds the GIL for a quarter second, which would stall the endpoint's event loop."""
    if len(rows) <= CHUNK_ROWS:
        return np.array(rows, dtype=np.float64)
    return np.concatenate([np.array(rows[i:i + CHUNK_ROWS], dtype=np.float64) for i in range(0, len(rows), CHUNK_ROWS)])


def _missing_text(v: Any) -> bool:
    """A text that means "missing" in a numeric column: blank, NaN, or a CSV missing marker."""
    return isinstance(v, str) and (not v.strip() or v in _CSV_NA or v.strip().lower() in _NAN_TEXT)


def _shown(v: Any) -> str:
    """A value for an error message, at most 40 characters."""
    if isinstance(v, np.generic):
        v = v.item()
    try:
        text = repr(v)
    except (ValueError, RecursionError):  # an integer of over 4,300 digits, a deeply nested list
        text = f"<a very large {type(v).__name__}>"
    return text if len(text) <= 40 else text[:37] + "..."


def _number(v: Any) -> float:
    try:
        return float(v)
    except OverflowError:  # an integer beyond float64: out of range, refused like inf
        return np.inf if v > 0 else -np.inf
    except (TypeError, ValueError):
        return np.nan


def _category_text(v: Any, strict: bool) -> Any:
    """A categorical value as text, or ``_REFUSED`` (when ``strict``) for what the contract refuses."""
    if isinstance(v, str):
        return _REFUSED if strict and v.strip().lower() in INF_TOKENS else v
    if strict and (isinstance(v, (list, dict, tuple, set)) or (isinstance(v, float) and np.isinf(v))):
        return _REFUSED
    if strict and isinstance(v, int) and not isinstance(v, bool) and abs(v) >= 2 ** 1024:
        return _REFUSED  # beyond float64
    return _text(v)


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
    from automl.rundir.layout import TRAIN_DATA_FILE

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
