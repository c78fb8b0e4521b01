"""Read and write tables (CSV, TSV/TXT, Excel, Parquet, JSON Lines; gzip) on any fsspec URL."""
from __future__ import annotations

import csv
import io
import logging
from typing import Any, Dict, Optional

import fsspec
import pandas as pd

from automl.errors import DataError

log = logging.getLogger(__name__)

DEMO_DATASETS = ("sklearn:digits",)
_TEXT_SUFFIXES = (".csv", ".tsv", ".txt", ".dat", "")


def _strip_compression(path: str) -> tuple[str, Optional[str]]:
    lower = path.lower()
    for suffix, comp in ((".gz", "gzip"), (".bz2", "bz2"), (".zip", "zip"), (".xz", "xz")):
        if lower.endswith(suffix):
            return lower[: -len(suffix)], comp
    return lower, None


def table_format(path: str) -> str:
    base, _ = _strip_compression(path)
    for suffix, fmt in (
        (".parquet", "parquet"), (".pq", "parquet"), (".xlsx", "excel"), (".xls", "excel"),
        (".jsonl", "jsonl"), (".json", "jsonl"), (".tsv", "delimited"), (".txt", "delimited"),
    ):
        if base.endswith(suffix):
            return fmt
    return "csv"


def _load_demo(name: str) -> pd.DataFrame:
    from sklearn.datasets import load_digits

    frame = load_digits(as_frame=True).frame
    return frame


def _sniff_delimiter(sample: str) -> str:
    try:
        return csv.Sniffer().sniff(sample, delimiters=",;\t| ").delimiter
    except csv.Error:
        return ","


def read_table(
    path: str,
    storage_options: Optional[Dict[str, Any]] = None,
    sheet: Optional[str] = None,
    what: str = "data.path",
    nrows: Optional[int] = None,
) -> pd.DataFrame:
    """Read one table. Errors name the key (``what``), the problem and the fix."""
    if path in DEMO_DATASETS:
        return _load_demo(path)
    if not path:
        raise DataError(f"{what} is empty; give a file path or URL, e.g. {what}=data.csv")
    fmt = table_format(path)
    _, compression = _strip_compression(path)
    try:
        of = fsspec.open(path, "rb", compression=compression, **(storage_options or {}))
        with of as fh:
            raw = fh.read()
    except FileNotFoundError:
        raise DataError(f"{what}: file not found: {path}. Check the path or URL") from None
    except IsADirectoryError:
        raise DataError(f"{what}: {path} is a folder; give a file") from None
    except (PermissionError, OSError, ValueError, ImportError) as exc:
        raise DataError(f"{what}: cannot read {path}: {type(exc).__name__}: {exc}") from None
    if not raw.strip():
        raise DataError(f"{what}: {path} is empty; give a file with a header row and data rows")
    try:
        df = _parse(raw, fmt, sheet, nrows)
    except DataError:
        raise
    except Exception as exc:  # parser errors come in many types
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"{what}: cannot parse {path} as {fmt}: {first}") from None
    if df.shape[1] == 0 or len(df) == 0:
        raise DataError(f"{what}: {path} has no data rows; give a file with a header row and data rows")
    df.columns = [str(c) for c in df.columns]
    return df


def _decode(raw: bytes) -> str:
    for enc in ("utf-8-sig", "cp1252", "latin-1"):
        try:
            return raw.decode(enc)
        except UnicodeDecodeError:
            continue
    return raw.decode("latin-1")  # unreachable: latin-1 decodes every byte


def _parse(raw: bytes, fmt: str, sheet: Optional[str], nrows: Optional[int]) -> pd.DataFrame:
    if fmt == "parquet":
        return pd.read_parquet(io.BytesIO(raw))
    if fmt == "excel":
        return pd.read_excel(io.BytesIO(raw), sheet_name=sheet or 0, nrows=nrows)
    if fmt == "jsonl":
        return pd.read_json(io.BytesIO(raw), lines=True, nrows=nrows)
    text = _decode(raw)
    sep = _sniff_delimiter(text[:65536]) if fmt == "delimited" else ","
    if fmt == "csv":
        head = text[:65536].splitlines()[0] if text else ""
        if head.count(",") == 0 and (head.count(";") or head.count("\t")):
            sep = _sniff_delimiter(text[:65536])
    decimal = "," if sep == ";" else "."
    return pd.read_csv(io.StringIO(text), sep=sep, decimal=decimal, nrows=nrows, low_memory=False)


def write_table(df: pd.DataFrame, path: str, storage_options: Optional[Dict[str, Any]] = None) -> None:
    """Write CSV, or Parquet when the name ends in .parquet (gzip when it ends in .gz)."""
    fmt = table_format(path)
    _, compression = _strip_compression(path)
    with fsspec.open(path, "wb", compression=compression, auto_mkdir=True, **(storage_options or {})) as fh:
        if fmt == "parquet":
            df.to_parquet(fh, index=False)
        else:
            fh.write(df.to_csv(index=False).encode("utf-8"))
